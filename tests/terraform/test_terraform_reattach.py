"""Terraform attaches to a provider in debug mode (``serve(debug=True)``) via TF_REATTACH_PROVIDERS.

The provider runs unmanaged: Terraform starts no provider process of its own,
uses the one plugin for every phase and leaves it running; Ctrl-C stops it
cleanly, socket directory included.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tf_helpers import PLUGIN_START, Terraform

from pyvider_rpcplugin_sync.examples.terraform_provider.launcher import LAUNCHER_NAME

pytestmark = [pytest.mark.interop, pytest.mark.timeout(180)]

BANNER_PREFIX = "\tTF_REATTACH_PROVIDERS='"
ADDRESS = "registry.terraform.io/pyvider/pyecho"

CONFIG = """
terraform {
  required_providers {
    pyecho = { source = "registry.terraform.io/pyvider/pyecho" }
  }
}

data "pyecho_echo" "hello" {
  input = "attached"
}

resource "pyecho_file" "note" {
  path    = "%s"
  content = data.pyecho_echo.hello.result
}

output "echo" {
  value = data.pyecho_echo.hello.result
}
"""


class DebugProvider:
    def __init__(self, launcher: Path, env: dict[str, str], stderr_path: Path) -> None:
        self.tmpdir = Path(tempfile.mkdtemp(prefix="tfd-", dir="/tmp"))
        self._stderr = stderr_path.open("wb")
        self.process = subprocess.Popen(
            [str(launcher), "--debug"],
            env={**env, "TMPDIR": str(self.tmpdir)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def reattach_json(self, timeout: float = 30) -> str:
        while (line := self._lines.get(timeout=timeout)) is not None:
            if line.startswith(BANNER_PREFIX):
                return line[len(BANNER_PREFIX) :].rstrip().removesuffix("'")
        raise AssertionError(f"debug provider exited ({self.process.wait()}) without a banner")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._stderr.close()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


@pytest.fixture
def debug_provider(terraform: Terraform, tmp_path: Path) -> Iterator[DebugProvider]:
    provider = DebugProvider(
        terraform.launcher_dir / LAUNCHER_NAME, terraform.env, tmp_path / "provider.err"
    )
    terraform.unmanaged.add(provider.process.pid)
    try:
        yield provider
    finally:
        provider.close()


def test_terraform_reattaches_to_the_debug_mode(
    terraform: Terraform, debug_provider: DebugProvider, tmp_path: Path
) -> None:
    text = debug_provider.reattach_json()
    config = json.loads(text)[ADDRESS]
    assert config["Test"] is True
    assert config["ProtocolVersion"] == 6
    assert config["Pid"] == debug_provider.process.pid
    assert Path(config["Addr"]["String"]).parent.parent == debug_provider.tmpdir

    target = tmp_path / "attached.txt"
    terraform.write_config(CONFIG % target)
    reattach = {"TF_REATTACH_PROVIDERS": text}
    plan = terraform.ok("plan", extra_env=reattach)
    assert "pyecho_file.note will be created" in plan.stdout
    assert PLUGIN_START not in plan.log
    apply = terraform.ok("apply", "-auto-approve", extra_env=reattach)
    assert PLUGIN_START not in apply.log  # Terraform used ours, started none
    assert target.read_text() == "attached"
    assert debug_provider.process.poll() is None  # and left it running
    assert terraform.ok("output", "-raw", "echo", extra_env=reattach).stdout == "attached"

    destroy = terraform.ok("destroy", "-auto-approve", extra_env=reattach)
    assert "Destroy complete! Resources: 1 destroyed." in destroy.stdout
    assert not target.exists()
    assert debug_provider.process.poll() is None

    debug_provider.process.send_signal(signal.SIGINT)
    assert debug_provider.process.wait(timeout=20) == 0
    assert os.listdir(debug_provider.tmpdir) == []  # its socket directory is gone
    # Every phase went to this one process (its own log, at debug level).
    served = (tmp_path / "provider.err").read_text()
    for method in ("ConfigureProvider", "ReadDataSource", "ApplyResourceChange"):
        assert f"rpc /tfplugin6.Provider/{method}" in served
