"""Terraform 1.11 plans, applies and destroys with the pyecho provider served by this library.

Real ``terraform``, real provider processes, AutoMTLS on (Terraform's default,
P-521 host certificate: the plugin side goes through the ssl TLS bridge).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from tf_helpers import MTLS_LINE, Result, Terraform

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

CONFIG = """
terraform {
  required_providers {
    pyecho = { source = "registry.terraform.io/pyvider/pyecho" }
  }
}

provider "pyecho" {
  prefix = "py:"
}

data "pyecho_echo" "hello" {
  input = "hello"
}

resource "pyecho_file" "note" {
  path    = "%(path)s"
  content = "${data.pyecho_echo.hello.result}%(suffix)s"
}

output "echo" {
  value = data.pyecho_echo.hello.result
}

output "file_id" {
  value = pyecho_file.note.id
}
"""

SHUTDOWN = "/plugin.GRPCController/Shutdown"
# What OpenTofu 1.12 asks every provider for besides Terraform 1.11's calls; the
# example provider does not serve it (UNIMPLEMENTED), which OpenTofu accepts.
HOST_PROBES = {"GetResourceIdentitySchemas"}
GO_PLUGIN_STREAMS = {"/plugin.GRPCStdio/StreamStdio", "/plugin.GRPCBroker/StartStream"}


def provider_calls(result: Result) -> list[list[str]]:
    """Each provider process's tfplugin6 calls, after checking its go-plugin framing."""
    assert "plugin failed to exit gracefully" not in result.log  # no SIGKILL after 2 s
    calls = []
    for methods in result.processes():
        assert methods, "a provider process served no call"
        assert set(methods) >= GO_PLUGIN_STREAMS
        assert methods[-1] == SHUTDOWN, methods
        provider = [
            m.rsplit("/", 1)[1]
            for m in methods
            if m.startswith("/tfplugin6.") and m.rsplit("/", 1)[1] not in HOST_PROBES
        ]
        assert provider[0] == "GetProviderSchema", provider
        if "ConfigureProvider" in provider:
            configured_at = provider.index("ConfigureProvider")
            for call in provider[:configured_at]:
                assert call.startswith(("Get", "Validate")), provider
        calls.append(provider)
    return calls


def assert_calls(result: Result, expected: list[list[str]]) -> None:
    # Validate* calls for independent blocks may come in either order.
    assert [Counter(c) for c in provider_calls(result)] == [Counter(e) for e in expected]


VALIDATE = ["GetProviderSchema", "ValidateProviderConfig", "ValidateDataResourceConfig",
            "ValidateResourceConfig"]  # fmt: skip
PLAN_CREATE = [
    "GetProviderSchema", "ValidateProviderConfig", "ConfigureProvider",
    "ValidateDataResourceConfig", "ReadDataSource", "ValidateResourceConfig",
    "PlanResourceChange",
]  # fmt: skip


def test_plan_apply_update_destroy_over_automtls(terraform: Terraform, tmp_path: Path) -> None:
    target = tmp_path / "note.txt"
    terraform.write_config(CONFIG % {"path": target, "suffix": ""})

    plan = terraform.ok("plan")
    assert "pyecho_file.note will be created" in plan.stdout
    assert '+ echo    = "py:hello"' in plan.stdout
    assert not target.exists()
    assert plan.log.count(MTLS_LINE) == 3  # one AutoMTLS handshake per provider process
    assert_calls(plan, [["GetProviderSchema"], VALIDATE, PLAN_CREATE])

    apply = terraform.ok("apply", "-auto-approve")
    assert "Apply complete! Resources: 1 added, 0 changed, 0 destroyed." in apply.stdout
    assert_calls(
        apply,
        [
            ["GetProviderSchema"],
            VALIDATE,
            PLAN_CREATE,
            ["GetProviderSchema", "ValidateProviderConfig", "ConfigureProvider",
             "ValidateResourceConfig", "PlanResourceChange", "ApplyResourceChange"],
        ],
    )  # fmt: skip
    assert target.read_text() == "py:hello"
    outputs = terraform.outputs()
    assert outputs["echo"] == "py:hello"
    file_id = outputs["file_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", file_id)
    [resource] = terraform.state_resources()
    assert resource["address"] == "pyecho_file.note"
    assert resource["values"] == {"id": file_id, "path": str(target), "content": "py:hello"}

    # Drift: ReadResource sees the file as it is, the plan puts it back.
    target.write_text("changed behind Terraform's back")
    drift = terraform.run("plan", "-detailed-exitcode")
    assert drift.returncode == 2, drift.stderr
    assert "pyecho_file.note will be updated in-place" in drift.stdout

    terraform.write_config(CONFIG % {"path": target, "suffix": "!"})
    update = terraform.ok("apply", "-auto-approve")
    assert "Resources: 0 added, 1 changed, 0 destroyed." in update.stdout
    # With the resource in the state: upgrade and refresh it before planning.
    planning = provider_calls(update)[2]
    assert planning.index("UpgradeResourceState") < planning.index("ReadResource")
    assert planning.index("ReadResource") < planning.index("PlanResourceChange")
    assert target.read_text() == "py:hello!"
    assert terraform.outputs()["file_id"] == file_id  # an update keeps the id

    destroy = terraform.ok("destroy", "-auto-approve")
    assert "Destroy complete! Resources: 1 destroyed." in destroy.stdout
    refresh_and_plan = [
        "GetProviderSchema", "ValidateProviderConfig", "ConfigureProvider",
        "ValidateDataResourceConfig", "ReadDataSource", "UpgradeResourceState", "ReadResource",
        "ValidateResourceConfig", "PlanResourceChange",
    ]  # fmt: skip
    connect = ["GetProviderSchema", "ValidateProviderConfig", "ConfigureProvider"]
    assert_calls(
        destroy,
        [
            ["GetProviderSchema"],
            VALIDATE,
            refresh_and_plan,
            [*connect, "UpgradeResourceState"],
            [*connect, "UpgradeResourceState", "ApplyResourceChange"],
        ],
    )
    assert not target.exists()
    assert terraform.state_resources() == []


def test_changing_the_path_replaces_the_file(terraform: Terraform, tmp_path: Path) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    terraform.write_config(CONFIG % {"path": first, "suffix": ""})
    terraform.ok("apply", "-auto-approve")
    old_id = terraform.outputs()["file_id"]

    terraform.write_config(CONFIG % {"path": second, "suffix": ""})
    replace = terraform.ok("apply", "-auto-approve")
    assert "must be replaced" in replace.stdout
    assert "Resources: 1 added, 0 changed, 1 destroyed." in replace.stdout
    assert not first.exists()
    assert second.read_text() == "py:hello"
    assert terraform.outputs()["file_id"] != old_id
    terraform.ok("destroy", "-auto-approve")
    assert not second.exists()


def test_plugin_tls_turned_off(terraform: Terraform, tmp_path: Path) -> None:
    # TF_DISABLE_PLUGIN_TLS=1: no client certificate, so the plugin serves plaintext.
    terraform.write_config(CONFIG % {"path": tmp_path / "plain.txt", "suffix": ""})
    plan = terraform.ok("plan", extra_env={"TF_DISABLE_PLUGIN_TLS": "1"})
    assert "pyecho_file.note will be created" in plan.stdout
    assert MTLS_LINE not in plan.log
    assert len(plan.processes()) == 3


def test_import_an_existing_file(terraform: Terraform, tmp_path: Path) -> None:
    target = tmp_path / "existing.txt"
    target.write_text("py:hello")
    terraform.write_config(CONFIG % {"path": target, "suffix": ""})
    imported = terraform.ok("import", "pyecho_file.note", str(target))
    assert "Import successful!" in imported.stdout
    importing = provider_calls(imported)[-1]
    assert importing.index("ImportResourceState") < importing.index("ReadResource")
    [resource] = terraform.state_resources()
    assert resource["values"]["path"] == str(target)
    assert resource["values"]["content"] == "py:hello"
    # The imported state matches the configuration: nothing to do.
    assert terraform.run("plan", "-detailed-exitcode").returncode == 0


def test_a_crash_in_the_provider_shows_the_python_traceback(terraform: Terraform) -> None:
    terraform.write_config(
        """
terraform {
  required_providers {
    pyecho = { source = "registry.terraform.io/pyvider/pyecho" }
  }
}

data "pyecho_crash" "boom" {
  message = "deliberate failure"
}
"""
    )
    result = terraform.run("plan")
    assert result.returncode == 1
    error = result.stderr
    assert "Error: Plugin error" in error
    assert "code = Internal desc =\nReadDataSource: RuntimeError: deliberate failure" in error
    assert "Traceback (most recent call last):" in error
    assert "raise RuntimeError(message)" in error
    assert error.rstrip().endswith("RuntimeError: deliberate failure")
    # The provider's own log, in Terraform's (TF_LOG), has it as an hclog ERROR line.
    assert "[ERROR] provider.terraform-provider-pyecho: ReadDataSource failed" in result.log
