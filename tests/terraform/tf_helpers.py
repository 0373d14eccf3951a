"""Run the real ``terraform`` against the pyecho example provider, and check what it leaves.

Each Terraform command starts its own provider processes. Terraform gives them
no PLUGIN_UNIX_SOCKET_DIR, so each provider makes a private socket directory
under TMPDIR: the helper hands Terraform a fresh, short TMPDIR (socket paths
must fit in 107 bytes) and a marker variable, and after every command checks
that no process carrying the marker is left and that TMPDIR is empty again.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyvider_rpcplugin_sync.examples.terraform_provider.launcher import (
    cli_config,
    write_launcher,
)

MARKER_ENV = "PYECHO_TEST_MARKER"
COMMAND_TIMEOUT = 90
# What the provider logs per call (crash.CallReporter), as Terraform's trace log shows it.
RPC_LINE = re.compile(r"provider\.terraform-provider-pyecho: rpc (/[\w.]+/\w+)")
PLUGIN_START = "provider: starting plugin:"
MTLS_LINE = "configuring client automatic mTLS"


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str
    log: str

    def processes(self) -> list[list[str]]:
        """The gRPC methods each provider process served, per process, in order."""
        calls: list[list[str]] = []
        for line in self.log.splitlines():
            if PLUGIN_START in line:
                calls.append([])
            elif match := RPC_LINE.search(line):
                calls[-1].append(match[1])
        return calls


@dataclass
class Terraform:
    binary: str
    workdir: Path
    launcher_dir: Path
    tmpdir: Path
    env: dict[str, str] = field(default_factory=dict)
    # Providers the test started itself (debug mode): Terraform must leave them running.
    unmanaged: set[int] = field(default_factory=set)

    @classmethod
    @contextlib.contextmanager
    def create(cls, binary: str, root: Path) -> Iterator[Terraform]:
        workdir = root / "config"
        workdir.mkdir()
        launcher_dir = root / "bin"
        write_launcher(launcher_dir)
        (root / "terraform.rc").write_text(cli_config(launcher_dir))
        # Short and private: the providers' socket directories go here.
        tmpdir = Path(tempfile.mkdtemp(prefix="tf-", dir="/tmp"))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "PLUGIN_"))}
        env.update(
            TF_CLI_CONFIG_FILE=str(root / "terraform.rc"),
            CHECKPOINT_DISABLE="1",
            TF_IN_AUTOMATION="1",
            TMPDIR=str(tmpdir),
            PLUGIN_LOG_LEVEL="debug",  # the provider logs each RPC at debug
            TF_LOG="trace",
            **{MARKER_ENV: uuid.uuid4().hex},
        )
        tf = cls(binary, workdir, launcher_dir, tmpdir, env)
        try:
            yield tf
        finally:
            leftovers = marked_processes(env[MARKER_ENV])
            for pid in leftovers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            shutil.rmtree(tmpdir, ignore_errors=True)
        assert not leftovers, f"provider processes left behind: {leftovers}"

    def write_config(self, text: str) -> None:
        (self.workdir / "main.tf").write_text(text)

    def run(self, *args: str, extra_env: dict[str, str] | None = None) -> Result:
        """``terraform ARGS -no-color``; then assert nothing of the providers is left."""
        log = self.workdir.parent / f"tf-{uuid.uuid4().hex}.log"
        env = {**self.env, "TF_LOG_PATH": str(log), **(extra_env or {})}
        completed = subprocess.run(
            [self.binary, *args, "-no-color"],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        log_text = log.read_text(errors="replace") if log.exists() else ""
        self.assert_nothing_left()
        return Result(completed.returncode, completed.stdout, completed.stderr, log_text)

    def ok(self, *args: str, extra_env: dict[str, str] | None = None) -> Result:
        result = self.run(*args, extra_env=extra_env)
        assert result.returncode == 0, f"terraform {' '.join(args)} failed:\n{result.stderr}"
        return result

    def outputs(self) -> dict[str, Any]:
        values = json.loads(self.ok("output", "-json").stdout)
        return {name: entry["value"] for name, entry in values.items()}

    def state_resources(self) -> list[dict[str, Any]]:
        """The managed resources in the state (``terraform show -json``)."""
        shown = json.loads(self.ok("show", "-json").stdout)
        resources = shown.get("values", {}).get("root_module", {}).get("resources", [])
        return [r for r in resources if r["mode"] == "managed"]

    def assert_nothing_left(self) -> None:
        left = [p for p in marked_processes(self.env[MARKER_ENV]) if p not in self.unmanaged]
        assert not left, f"provider processes still running after terraform exited: {left}"
        assert not list(self.tmpdir.iterdir()), (
            f"socket directories left in TMPDIR: {sorted(os.listdir(self.tmpdir))}"
        )


def marked_processes(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``MARKER_ENV=marker``."""
    needle = f"{MARKER_ENV}={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
            with open(f"/proc/{entry}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if needle in environ and state != "Z":
            found.append(int(entry))
    return found
