"""A real Go go-plugin 1.0.1 host (``go/cmd/kvhost``) loading our Python KV plugin.

The host runs ``sh -c "exec $KV_PLUGIN"`` with
``KV_PLUGIN="<python> -m pyvider_rpcplugin_sync.examples.kv_plugin"`` and passes its
whole environment to the plugin (go-plugin does), which is how ``PLUGIN_TRANSPORT``
reaches our ``serve()``. ``kvhost check`` prints one JSON line (see its source).

Every host run carries a unique marker variable; after the host exits no process with
that marker may remain (a leftover plugin), and teardown kills any that do.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.interop

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON_KV_PLUGIN = f"{shlex.quote(sys.executable)} -m pyvider_rpcplugin_sync.examples.kv_plugin"
MARKER_VAR = "PYVIDER_INTEROP_MARKER"
HOST_TIMEOUT = 45.0  # per kvhost run; tests allow 60 s
KILL_FALLBACK_MS = 2000  # go-plugin: wait 2 s after Shutdown, then SIGKILL
START_FAILURE = re.compile(
    r"Unrecognized remote plugin message|plugin exited before we could connect", re.I
)


@dataclass
class HostRun:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return (
            f"kvhost {' '.join(self.args)} exited {self.returncode}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    def expect_ok(self) -> dict[str, Any]:
        assert self.returncode == 0 and self.result.get("ok") is True, self.describe()
        return self.result

    def expect_start_failure(self) -> dict[str, Any]:
        assert self.returncode == 1, self.describe()
        assert self.result.get("ok") is False, self.describe()
        assert self.result.get("stage") == "start", self.describe()
        assert "kvhost: check failed at start" in self.stderr, self.describe()
        return self.result


def _marked_pids(marker: str) -> list[int]:
    """Live processes whose environment carries ``MARKER_VAR=marker``."""
    needle = f"{MARKER_VAR}={marker}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, a zombie, or not ours
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


class KVHost:
    """Runs the Go kvhost with a clean environment and a per-test marker."""

    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.marker = uuid.uuid4().hex

    def env(self, plugin: str, extra: dict[str, str] | None) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("KV_", "PLUGIN_", "BASIC_PLUGIN"))
        }
        env.update(
            KV_PLUGIN=plugin,
            KV_START_TIMEOUT="30s",
            PYTHONUNBUFFERED="1",
            **{MARKER_VAR: self.marker},
        )
        env.update(extra or {})
        return env

    def run(self, *args: str, plugin: str, env: dict[str, str] | None = None) -> HostRun:
        proc = subprocess.Popen(
            [str(self.binary), *args],
            env=self.env(plugin, env),
            cwd=REPO_ROOT,  # `-m pyvider_rpcplugin_sync...` works without an install
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=HOST_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)  # kvhost kills its plugin, then exits
            try:
                stdout, stderr = proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, stderr = proc.communicate()
            pytest.fail(
                f"kvhost {' '.join(args)} did not finish in {HOST_TIMEOUT:.0f} s\n"
                f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
            )
        run = HostRun(args, proc.returncode, stdout, stderr)
        if args and args[0] in ("check", "threads"):
            lines = stdout.strip().splitlines()
            assert lines, run.describe()
            run.result = json.loads(lines[-1])
        return run

    def leftovers(self, wait: float = 2.0) -> list[int]:
        """Marked processes still alive after up to ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while True:
            pids = _marked_pids(self.marker)
            if not pids or time.monotonic() >= deadline:
                return pids
            time.sleep(0.05)

    def kill_leftovers(self) -> list[int]:
        pids = _marked_pids(self.marker)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return pids


@pytest.fixture
def kvhost(go_bins: dict[str, Path]) -> Iterator[KVHost]:
    host = KVHost(go_bins["kvhost"])
    yield host
    leaked = host.kill_leftovers()
    assert not leaked, f"processes left behind (killed now): {leaked}"


def assert_clean_check(r: dict[str, Any], *, version: int = 1) -> None:
    """A full ``kvhost check`` run: calls verified, ping, fast graceful kill, exit 0."""
    assert r["protocol"] == "grpc", r
    assert r["negotiated_version"] == version, r
    assert r["puts"] == 6 and r["keys_verified"] == 5, r
    assert r["missing_key_code"] == "NotFound", r
    assert r["ping"] == "ok", r
    assert r["forced_kill"] is False, f"go-plugin had to SIGKILL the plugin: {r}"
    assert r["timings_ms"]["kill"] < KILL_FALLBACK_MS, r
    assert r["plugin_exit"] == "exit status 0", r
    assert r["plugin_alive_after_kill"] is False, r
    if r["network"] == "unix":
        socket_path = Path(r["address"])
        assert not socket_path.exists(), f"socket file left behind: {socket_path}"
        if socket_path.parent.name.startswith("pyvider-"):  # our plugin's private dir
            assert not socket_path.parent.exists(), f"socket dir left behind: {r}"


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- harness sanity: Go host -> Go plugin ------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("automtls", [False, True], ids=["plain", "automtls"])
def test_go_host_to_go_plugin_sanity(
    kvhost: KVHost, go_bins: dict[str, Path], automtls: bool
) -> None:
    env = {"KV_AUTOMTLS": "1"} if automtls else {}
    r = kvhost.run("check", plugin=str(go_bins["kvplugin"]), env=env).expect_ok()
    assert r["automtls"] is automtls
    assert r["network"] == "unix"
    assert_clean_check(r)
    assert kvhost.leftovers() == []


@pytest.mark.timeout(60)
def test_go_host_to_go_plugin_negotiates_highest_common_version(
    kvhost: KVHost, go_bins: dict[str, Path]
) -> None:
    env = {"KV_VERSIONS": "1,2", "KV_PLUGIN_VERSIONS": "1,2,3"}
    r = kvhost.run("check", plugin=str(go_bins["kvplugin"]), env=env).expect_ok()
    assert_clean_check(r, version=2)


@pytest.mark.timeout(60)
def test_go_host_to_go_plugin_wrong_cookie(kvhost: KVHost, go_bins: dict[str, Path]) -> None:
    env = {"KV_COOKIE_VALUE": "wrong", "KV_PLUGIN_COOKIE_VALUE": "hello"}
    run = kvhost.run("check", plugin=str(go_bins["kvplugin"]), env=env)
    r = run.expect_start_failure()
    assert START_FAILURE.search(r["error"]), run.describe()
    assert "This binary is a plugin" in run.stderr, run.describe()
    assert r["plugin_exit_code"] == 1, r
    assert kvhost.leftovers() == []


# --- Go host -> our Python plugin ---------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_go_host_loads_python_plugin(kvhost: KVHost, transport: str) -> None:
    run = kvhost.run("check", plugin=PYTHON_KV_PLUGIN, env={"PLUGIN_TRANSPORT": transport})
    r = run.expect_ok()
    assert r["network"] == transport, r
    if transport == "tcp":
        host, port = r["address"].rsplit(":", 1)
        assert host == "127.0.0.1", r
        assert 10000 <= int(port) <= 25000, r  # go-plugin's default PLUGIN_MIN/MAX_PORT
    assert_clean_check(r)
    assert kvhost.leftovers() == []


@pytest.mark.timeout(60)
def test_go_host_python_plugin_honours_port_range(kvhost: KVHost) -> None:
    port = free_tcp_port()
    env = {"PLUGIN_TRANSPORT": "tcp", "KV_PORT_RANGE": f"{port}-{port}"}
    r = kvhost.run("check", plugin=PYTHON_KV_PLUGIN, env=env).expect_ok()
    assert r["address"] == f"127.0.0.1:{port}", r
    assert_clean_check(r)


@pytest.mark.timeout(60)
def test_go_host_python_plugin_put_get(kvhost: KVHost) -> None:
    args = ("put", "greeting", "hello", "put", "word", "wörld ✓", "get", "greeting", "get", "word")
    run = kvhost.run(*args, plugin=PYTHON_KV_PLUGIN)
    assert run.returncode == 0, run.describe()
    assert run.stdout == "hello\nwörld ✓\n", run.describe()
    assert kvhost.leftovers() == []


@pytest.mark.timeout(60)
def test_go_host_python_plugin_get_missing_key_fails(kvhost: KVHost) -> None:
    run = kvhost.run("get", "nope", plugin=PYTHON_KV_PLUGIN)
    assert run.returncode == 1, run.describe()
    assert "NotFound" in run.stderr, run.describe()
    assert kvhost.leftovers() == []


@pytest.mark.timeout(60)
def test_go_host_python_plugin_wrong_cookie(kvhost: KVHost) -> None:
    # The plugin's expected cookie is in its code (BASIC_PLUGIN=hello); the host
    # sends another value.
    run = kvhost.run("check", plugin=PYTHON_KV_PLUGIN, env={"KV_COOKIE_VALUE": "wrong"})
    r = run.expect_start_failure()
    assert START_FAILURE.search(r["error"]), run.describe()
    assert "this binary is a plugin" in run.stderr.lower(), run.describe()
    assert r["plugin_exit_code"] == 1, r
    assert kvhost.leftovers() == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("versions", ["1,2", "2,1", "1,7,3"])
def test_go_host_python_plugin_version_negotiation(kvhost: KVHost, versions: str) -> None:
    r = kvhost.run("check", plugin=PYTHON_KV_PLUGIN, env={"KV_VERSIONS": versions}).expect_ok()
    assert r["host_versions"] == [int(v) for v in versions.split(",")], r
    assert_clean_check(r, version=1)


@pytest.mark.timeout(60)
def test_go_host_python_plugin_no_common_version(kvhost: KVHost) -> None:
    run = kvhost.run("check", plugin=PYTHON_KV_PLUGIN, env={"KV_VERSIONS": "2,3"})
    r = run.expect_start_failure()
    # Either the plugin answers its lowest version and the host rejects it
    # (docs/protocol.md, "Start-up checks in the plugin"), or the plugin refuses with a
    # message and exits non-zero.
    assert re.search(r"Incompatible API version", r["error"], re.I) or (
        START_FAILURE.search(r["error"]) and "version" in run.stderr.lower()
    ), run.describe()
    assert kvhost.leftovers() == []


@pytest.mark.timeout(90)
def test_go_host_python_plugin_threads(kvhost: KVHost) -> None:
    r = kvhost.run("threads", "50", "8", plugin=PYTHON_KV_PLUGIN).expect_ok()
    assert r["goroutines"] == 8 and r["calls"] == 2 * 50 * 8, r
    assert r["forced_kill"] is False, r
    assert r["plugin_exit"] == "exit status 0", r
    assert kvhost.leftovers() == []
