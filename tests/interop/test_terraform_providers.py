"""The example Terraform host (``examples/terraform_host.py``) drives real providers.

- HashiCorp's ``terraform-provider-random`` and ``terraform-provider-local`` (MPL-2.0;
  terraform-plugin-framework 1.19, protocol 5, go-plugin 1.7.0), built from the Go module
  proxy at pinned versions by ``make interop-deps`` (``tests/interop/gomodules.py``);
- ``tests/interop/tfprovider6``: a tiny provider of ours on terraform-plugin-framework
  serving protocol 6 (HashiCorp's providers here serve 5).

Each test: Terraform's handshake with AutoMTLS on (the provider's certificate is
go-plugin's ECDSA P-521, reached through the ssl TLS bridge), the schema read, the
provider configured, a resource planned (computed values unknown), applied, read back
and destroyed with the values checked, and the provider stopped by ``Shutdown`` (exit
0) with no process or socket directory left.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fakehost import MARKER_VAR
from interop_tools import require_tool

from pyvider_rpcplugin_sync.examples.terraform_host import (
    UNKNOWN,
    ProviderError,
    TerraformProvider,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(120)]


@pytest.fixture
def provider_env(marker: str, tmpdir_short: Path) -> Iterator[dict[str, str]]:
    yield {"TMPDIR": str(tmpdir_short), MARKER_VAR: marker}
    assert list(tmpdir_short.iterdir()) == [], "the provider left files in its TMPDIR"


def start(name: str, env: dict[str, str], *, tls: bool = True) -> TerraformProvider:
    return TerraformProvider(str(require_tool(name)), env=env, tls=tls, start_timeout=60)


def assert_p521(provider: TerraformProvider) -> None:
    """The provider answered with an AutoMTLS certificate: go-plugin's P-521 one."""
    field = provider.process.handshake_line.server_cert
    assert field, "no certificate in the handshake line"
    der = base64.b64decode(field + "=" * (-len(field) % 4))
    key = x509.load_der_x509_certificate(der).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp521r1"


@pytest.mark.parametrize("tls", [True, False], ids=["automtls", "plain"])
def test_random_string_plan_apply_read_destroy(provider_env: dict[str, str], tls: bool) -> None:
    """Plaintext: no PLUGIN_CLIENT_CERT, as with Terraform's TF_DISABLE_PLUGIN_TLS=1."""
    with start("terraform-provider-random", provider_env, tls=tls) as provider:
        assert provider.protocol_version == 5
        if tls:
            assert_p521(provider)
        else:
            assert provider.process.handshake_line.server_cert == ""
        schema = provider.schema()
        assert {"random_string", "random_password", "random_integer", "random_id"} <= set(
            schema.resource_schemas
        )
        attributes = {a.name: a for a in provider.resource_block("random_string").attributes}
        assert attributes["length"].required and attributes["length"].type == b'"number"'
        assert attributes["result"].computed and not attributes["result"].required
        provider.configure({})

        planned = provider.plan_create("random_string", {"length": 24, "special": False})
        assert planned.state is not None
        assert planned.state["length"] == 24 and planned.state["special"] is False
        assert planned.state["result"] is UNKNOWN and planned.state["id"] is UNKNOWN
        assert planned.state["upper"] is True  # the provider's default, planned

        created = provider.apply(planned)
        assert created.state is not None
        result = created.state["result"]
        assert re.fullmatch(r"[A-Za-z0-9]{24}", result), result
        assert created.state["id"] == result
        assert provider.read(created).state == created.state  # nothing drifted

        assert provider.destroy(created).state is None
        process = provider.process
    assert process.returncode == 0, process.stderr_tail  # Shutdown, no signal


def test_random_integer_is_seeded_and_in_range(provider_env: dict[str, str]) -> None:
    config = {"min": 1, "max": 6, "seed": "pyvider"}
    results = []
    for _ in range(2):
        with start("terraform-provider-random", provider_env) as provider:
            provider.configure({})
            created = provider.apply(provider.plan_create("random_integer", config))
            assert created.state is not None
            assert provider.read(created).state == created.state
            provider.destroy(created)
        results.append(created.state["result"])
    assert results[0] == results[1] and 1 <= results[0] <= 6, results  # same seed, same pick


def test_random_rejects_an_invalid_value_with_its_diagnostic(
    provider_env: dict[str, str],
) -> None:
    with start("terraform-provider-random", provider_env) as provider:
        provider.configure({})
        with pytest.raises(ProviderError, match=r"length value must be at least 1, got: 0"):
            provider.plan_create("random_string", {"length": 0})
        with pytest.raises(ValueError, match="no such attribute or block: colour"):
            provider.plan_create("random_string", {"length": 4, "colour": "red"})
        process = provider.process
    assert process.returncode == 0, process.stderr_tail


@pytest.mark.parametrize("tls", [True, False], ids=["automtls", "plain"])
def test_protocol_6_framework_provider(provider_env: dict[str, str], tls: bool) -> None:
    with start("terraform-provider-echo6", provider_env, tls=tls) as provider:
        assert provider.protocol_version == 6
        if tls:
            assert_p521(provider)
        else:
            assert provider.process.handshake_line.server_cert == ""
        assert set(provider.schema().resource_schemas) == {"echo6_value"}
        provider.configure({"prefix": "py:"})
        planned = provider.plan_create("echo6_value", {"input": "hello"})
        assert planned.state == {"id": UNKNOWN, "input": "hello", "result": UNKNOWN}
        created = provider.apply(planned)
        assert created.state == {"id": "echo6-hello", "input": "hello", "result": "py:hello"}
        assert provider.read(created).state == created.state
        assert provider.destroy(created).state is None
        process = provider.process
    assert process.returncode == 0, process.stderr_tail


def test_local_file_writes_reads_and_removes_the_file(
    provider_env: dict[str, str], tmp_path: Path
) -> None:
    """HashiCorp's local provider: the resource is a real file, so every step shows on disk."""
    target = tmp_path / "nested" / "note.txt"
    content = "written by a Terraform provider, driven from Python ✓\n"
    with start("terraform-provider-local", provider_env) as provider:
        assert provider.protocol_version == 5
        assert_p521(provider)
        provider.configure({})
        planned = provider.plan_create("local_file", {"filename": str(target), "content": content})
        assert planned.state is not None and planned.state["id"] is UNKNOWN
        assert not target.exists()  # planning changes nothing

        created = provider.apply(planned)
        assert created.state is not None
        assert target.read_text(encoding="utf-8") == content
        digest = hashlib.sha1(content.encode()).hexdigest()  # the provider's id
        assert created.state["id"] == created.state["content_sha1"] == digest
        assert created.state["content_sha256"] == hashlib.sha256(content.encode()).hexdigest()
        assert provider.read(created).state == created.state

        target.unlink()  # gone behind the provider's back: the refresh drops it
        assert provider.read(created).state is None
        target.write_text(content, encoding="utf-8")
        assert provider.destroy(created).state is None
        assert not target.exists()
        process = provider.process
    assert process.returncode == 0, process.stderr_tail
