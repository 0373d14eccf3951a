"""The program Terraform runs: ``terraform-provider-pyecho``, and a CLI config that finds it.

Terraform executes a provider binary with no arguments, so the launcher is a
two-line shell script that runs this package with a fixed interpreter.
``dev_overrides`` points Terraform at the launcher's directory: no registry,
no ``terraform init``, no network.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from .schema import PROVIDER_ADDRESS

LAUNCHER_NAME = "terraform-provider-pyecho"
MODULE = "pyvider_rpcplugin_sync.examples.terraform_provider"


def write_launcher(directory: Path, python: str = sys.executable) -> Path:
    """Write an executable ``terraform-provider-pyecho`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    launcher = directory / LAUNCHER_NAME
    launcher.write_text(
        f'#!/bin/sh\nexec {shlex.quote(python)} -m {MODULE} "$@"\n', encoding="utf-8"
    )
    launcher.chmod(0o755)
    return launcher


def cli_config(launcher_dir: Path) -> str:
    """A Terraform CLI configuration (``TF_CLI_CONFIG_FILE``) that uses the launcher."""
    return (
        "provider_installation {\n"
        "  dev_overrides {\n"
        f"    {_hcl_string(PROVIDER_ADDRESS)} = {_hcl_string(str(launcher_dir))}\n"
        "  }\n"
        "  direct {}\n"
        "}\n"
    )


def _hcl_string(text: str) -> str:
    # HCL strings share JSON's escapes; ${ and %{ would start a template.
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + escaped.replace("${", "$${").replace("%{", "%%{") + '"'
