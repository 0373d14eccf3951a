"""Start-up failures: every fault is a distinct typed error, fast, with nothing left behind."""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from process_helpers import ECHO, PYTHON, scenario

from pyvider_rpcplugin_sync import (
    HandshakeConfig,
    HandshakeError,
    PluginStartError,
    ProtocolVersionError,
    RPCPluginError,
    StartTimeout,
    TLSError,
    TransportError,
)
from pyvider_rpcplugin_sync._host.process import PluginProcess

pytestmark = pytest.mark.timeout(60)


def start(cmd: list[str], **options: object) -> PluginProcess:
    plugin = PluginProcess(cmd, **options)  # type: ignore[arg-type]
    plugin.start()
    return plugin


def test_noise_before_the_handshake_is_a_handshake_error() -> None:
    with pytest.raises(HandshakeError) as caught:
        start(scenario("echo_faults", "noise"))
    assert "My Plugin v1.2.3 starting up" in str(caught.value)
    assert type(caught.value) is HandshakeError


@pytest.mark.parametrize(
    "line",
    [
        "",
        "hello",
        "1|1|unix",
        "x|1|unix|/tmp/sock|grpc|",
        "1|y|unix|/tmp/sock|grpc|",
        "1|1|pipe|/tmp/sock|grpc|",
        "1|1|unix||grpc|",
        "1|1|unix|/tmp/sock|netrpc|",
        "1|1|unix|/tmp/sock||",
    ],
)
def test_malformed_lines_are_handshake_errors(line: str) -> None:
    with pytest.raises(HandshakeError):
        start(scenario("faults", "line", line), tls=False)


def test_wrong_core_version() -> None:
    with pytest.raises(ProtocolVersionError, match="core API version"):
        start(scenario("faults", "line", "2|1|unix|/tmp/sock|grpc|"), tls=False)


def test_app_version_the_host_does_not_accept() -> None:
    with pytest.raises(ProtocolVersionError, match="Plugin version: 9"):
        start(scenario("faults", "line", "1|9|unix|/tmp/sock|grpc|"), tls=False)


def test_plugin_that_shares_no_version_exits_with_its_reason() -> None:
    with pytest.raises(PluginStartError) as caught:
        start(scenario("echo_faults", "versions"), handshake=HandshakeConfig())
    assert caught.value.returncode == 1
    assert "no common protocol version" in caught.value.stderr_tail


def test_early_exit_reports_exit_code_and_stderr() -> None:
    began = time.monotonic()
    with pytest.raises(PluginStartError) as caught:
        start(scenario("faults", "exit", "3", "fatal: config file missing"))
    assert time.monotonic() - began < 5
    assert type(caught.value) is PluginStartError
    assert caught.value.returncode == 3
    assert "fatal: config file missing" in caught.value.stderr_tail
    assert "fatal: config file missing" in str(caught.value)


def test_wrong_cookie_is_refused_by_the_plugin() -> None:
    wrong = HandshakeConfig(magic_cookie_value="not-the-cookie")
    with pytest.raises(PluginStartError) as caught:
        start(ECHO, handshake=wrong)
    assert caught.value.returncode == 1
    assert "This binary is a plugin" in caught.value.stderr_tail
    assert "not-the-cookie" not in str(caught.value)


def test_hang_past_the_start_timeout() -> None:
    began = time.monotonic()
    with pytest.raises(StartTimeout) as caught:
        start(scenario("faults", "hang"), start_timeout=1.0)
    elapsed = time.monotonic() - began
    assert 1.0 <= elapsed < 4.0
    assert "timeout while waiting for plugin to start" in str(caught.value)
    assert caught.value.returncode is not None  # killed and reaped


def test_partial_line_times_out() -> None:
    with pytest.raises(StartTimeout):
        start(scenario("faults", "partial", "1|1|unix|/tmp/x|grpc|"), start_timeout=1.0)


def test_closed_stdout_without_a_line() -> None:
    with pytest.raises(PluginStartError, match="closed its stdout"):
        start(scenario("faults", "close-stdout"), start_timeout=10.0)


def test_plugin_dying_right_after_its_handshake() -> None:
    with pytest.raises(PluginStartError) as caught:
        start(scenario("echo_faults", "die-after-handshake"), tls=False)
    assert caught.value.returncode == 5


def test_command_not_found() -> None:
    with pytest.raises(PluginStartError, match="could not start plugin"):
        start(["/nonexistent/plugin-binary"])


def test_unreachable_address_is_a_transport_error() -> None:
    with pytest.raises(TransportError):
        start(scenario("faults", "line", "1|1|unix|/nonexistent/dir/sock|grpc|"), tls=False)


def test_plugin_ignoring_automtls() -> None:
    with pytest.raises(TLSError, match="no certificate") as caught:
        start(scenario("faults", "line", "1|1|unix|/tmp/sock|grpc|"), tls=True)
    assert "tls=False" in str(caught.value)


def test_unrequested_certificate_is_refused() -> None:
    cert = base64.b64encode(b"\x30" * 300).decode().rstrip("=")
    with pytest.raises(TLSError, match="not requested"):
        start(scenario("faults", "line", f"1|1|unix|/tmp/sock|grpc|{cert}"), tls=False)


def test_certificate_mismatch_is_a_tls_error() -> None:
    with pytest.raises(TLSError, match="TLS handshake with the plugin"):
        start(scenario("echo_faults", "wrong-cert"), tls=True, connect_timeout=5)


def _p521_cert_field() -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP521R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA512())
    )
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode().rstrip("=")


def test_p521_plugin_certificate_goes_through_the_bridge(tmp_path: os.PathLike[str]) -> None:
    # Nothing listens at the announced address: the bridge's connect error is reported.
    missing = os.path.join(tmp_path, "nobody-listens")
    line = f"1|1|unix|{missing}|grpc|{_p521_cert_field()}"
    with pytest.raises(TransportError, match="could not connect to the plugin") as caught:
        start(scenario("faults", "line", line), tls=True, connect_timeout=5)
    assert missing in str(caught.value)


def test_checksum_of_an_explicit_file(tmp_path: os.PathLike[str]) -> None:
    script = scenario("echo_faults")[1]
    with open(script, "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    with PluginProcess(scenario("echo_faults"), checksum=digest, checksum_file=script) as plugin:
        assert plugin.ping()
    with pytest.raises(PluginStartError, match="checksums did not match"):
        start(scenario("echo_faults"), checksum="0" * 64, checksum_file=script)


def test_checksum_defaults_to_the_resolved_executable() -> None:
    with open(os.path.realpath(PYTHON), "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    with PluginProcess(ECHO, checksum=digest, tls=False) as plugin:
        assert plugin.ping()
    with pytest.raises(PluginStartError, match="checksums did not match"):
        start(ECHO, checksum="f" * 64)


def test_start_twice_and_after_close() -> None:
    plugin = start(ECHO, tls=False)
    try:
        with pytest.raises(RPCPluginError, match="running"):
            plugin.start()
    finally:
        plugin.close()
    with pytest.raises(RPCPluginError, match="closed"):
        plugin.start()


def test_failed_start_leaves_no_socket_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(HandshakeError):
        start(scenario("faults", "line", "junk"), tls=False)
    with pytest.raises(StartTimeout):
        start(scenario("faults", "hang"), tls=False, start_timeout=0.5)
    assert list(tmp_path.iterdir()) == []


def test_socket_dir_path_too_long(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 40)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    with pytest.raises(TransportError, match="107 bytes"):
        start(ECHO, tls=False)
    assert list(deep.iterdir()) == []
    # TCP needs no socket directory (ours honour PLUGIN_TRANSPORT; the dir is not passed).
    with PluginProcess(ECHO, tls=False, transport="tcp") as plugin:
        assert plugin.network == "tcp"
        assert plugin.ping()
    assert list(deep.iterdir()) == []


junk_text = st.text(
    alphabet=st.characters(blacklist_characters="\n\r\x00", blacklist_categories=("Cs",)),
    max_size=120,
)
junk_lines = st.one_of(
    junk_text,
    st.lists(junk_text.filter(lambda s: "|" not in s), min_size=1, max_size=8).map("|".join),
)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(line=junk_lines)
def test_any_first_line_fails_cleanly(line: str) -> None:
    os.environ["SCENARIO_LINE"] = line
    try:
        with pytest.raises(RPCPluginError):
            start(scenario("faults", "line-env"), tls=False, start_timeout=10, connect_timeout=2)
    finally:
        del os.environ["SCENARIO_LINE"]
