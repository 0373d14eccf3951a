"""Real go-plugin 1.8.0 (and 1.6.0) Go hosts loading our Python plugins.

The hosts are ``go18/cmd/kvhost18`` and ``go18/cmd/counterhost18``, built as a Go module
against go-plugin v1.8.0 (``go18/go.mod``) and, from the same sources, v1.6.0
(``go18/go16.mod``, Terraform 1.11's go-plugin). Each run is one plugin session; the
host prints a JSON report (``go18/kit``): where the plugin listened, how its socket and
directory looked while it ran, every operation's result, how long ``Kill()`` took and
whether go-plugin had to SIGKILL. Cells:

- KV (go-plugin's examples/grpc wire), unix and TCP, plaintext and AutoMTLS (the Go
  host's P-521 certificate: our plugin serves it through the ssl TLS bridge);
- counter (examples/bidirectional wire) in both broker directions: our plugin dials
  the host's AddHelper on every ``put``; the host dials an AddHelper our plugin serves
  (``reverse``); unix and TCP, plaintext and AutoMTLS;
- ``Kill()``: Shutdown, the plugin exits 0 well within go-plugin's 2 s, nothing left,
  also with a call still waiting in the plugin;
- ``UnixSocketConfig{Group, TempDir}``: with a ``RunnerFunc`` the socket is in a
  ``plugin-dir*`` directory inside TempDir, 0660 in the group (directory 0770), and the
  directory is gone after ``Kill()``; with ``Cmd`` only the group reaches the plugin;
- hclog: our plugin's records at trace..error, an exception in an RPC handler and one
  in a thread arrive in the Go host's own hclog output at their levels (tracebacks at
  ERROR);
- ``StreamStdio``: what our plugin prints to stdout and stderr reaches the host's
  ``SyncStdout`` and ``SyncStderr``;
- ``GRPCBrokerMultiplex``: the host refuses our plugin at start, by go-plugin's message.
"""

from __future__ import annotations

import grp
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fakehost import MARKER_VAR

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS = Path(__file__).resolve().parent / "pyplugins"
PYTHON = shlex.quote(sys.executable)
KV_PLUGIN = f"{PYTHON} -m pyvider_rpcplugin_sync.examples.kv_plugin"
LOGGING_PLUGIN = f"{PYTHON} {shlex.quote(str(PLUGINS / 'logging_kv_plugin.py'))}"
COUNTER_PLUGIN = f"{PYTHON} {shlex.quote(str(PLUGINS / 'helper_counter_plugin.py'))}"
HOST_TIMEOUT = 60.0
KILL_FALLBACK_MS = 2000  # go-plugin: 2 s after Shutdown, then SIGKILL
FLAVOURS = ["go18", "go16"]  # go-plugin v1.8.0, v1.6.0
BIG = "x" * 65536
ONE_MIB = 1 << 20
CELLS = [(transport, tls) for transport in ("unix", "tcp") for tls in (False, True)]
CELL_IDS = [f"{transport}-{'automtls' if tls else 'plain'}" for transport, tls in CELLS]


@dataclass
class HostRun:
    returncode: int
    report: dict[str, Any]
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"exit {self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"
        )

    def expect_ok(self) -> dict[str, Any]:
        assert self.returncode == 0 and self.report.get("ok") is True, self.describe()
        return self.report


def run_host(
    binary: Path, plugin: str, ops: list[str], marker: str, tmpdir: Path, **env: str
) -> HostRun:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("GO18_", "PLUGIN_", "KV_"))}
    full_env = {
        **clean,
        "GO18_PLUGIN": plugin,
        "TMPDIR": str(tmpdir),
        "PYTHONUNBUFFERED": "1",
        MARKER_VAR: marker,
        **env,
    }
    proc = subprocess.run(
        [str(binary), *ops],
        env=full_env,
        cwd=REPO_ROOT,  # `-m pyvider_rpcplugin_sync...` works without an install
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=HOST_TIMEOUT,
        check=False,
    )
    lines = proc.stdout.strip().splitlines()
    report = json.loads(lines[-1]) if lines else {}
    return HostRun(proc.returncode, report, proc.stdout, proc.stderr)


def assert_clean_session(r: dict[str, Any], *, network: str, automtls: bool) -> None:
    """Ping worked, Kill() was Shutdown alone: exit 0 well within 2 s, no SIGKILL."""
    assert r["network"] == network, r
    assert r["automtls"] is automtls, r
    assert r["negotiated_version"] == 1, r
    assert r["ping"] == "ok", r
    assert r["forced_kill"] is False, f"go-plugin had to SIGKILL the plugin: {r}"
    assert r["kill_ms"] < KILL_FALLBACK_MS, r
    assert r["plugin_exit"] == "exit status 0", r
    assert r["plugin_alive_after_kill"] is False, r
    if network == "tcp":
        host, port = r["address"].rsplit(":", 1)
        assert host == "127.0.0.1" and 10000 <= int(port) <= 25000, r
    else:
        assert not Path(r["address"]).exists(), f"socket left behind: {r['address']}"


Programs = Callable[[str], dict[str, Path]]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
def test_kv(
    go_module_programs: Programs,
    marker: str,
    tmpdir_short: Path,
    flavour: str,
    cell: tuple[str, bool],
) -> None:
    ops = ["put", "greeting", "hello ✓", "put", "big", BIG, "put", "greeting", "again",
           "fill", "mib", str(ONE_MIB), "get", "greeting", "get", "big", "check", "mib",
           str(ONE_MIB), "get", "missing"]  # fmt: skip
    transport, automtls = cell
    env = {"PLUGIN_TRANSPORT": transport, "GO18_AUTOMTLS": "1" if automtls else "0"}
    binary = go_module_programs(flavour)["kvhost18"]
    r = run_host(binary, KV_PLUGIN, ops, marker, tmpdir_short, **env).expect_ok()
    assert_clean_session(r, network=transport, automtls=automtls)
    results = r["results"]
    assert [x["code"] for x in results] == ["OK"] * 7 + ["NotFound"], results
    assert [x.get("value") for x in results[4:6]] == ["again", BIG]
    assert results[6]["verified"] is True and results[6]["size"] == ONE_MIB, results[6]
    assert "missing" in results[7]["error"]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("versions", ["1,2", "2,1"])
def test_version_negotiation(
    go_module_programs: Programs, marker: str, tmpdir_short: Path, flavour: str, versions: str
) -> None:
    binary = go_module_programs(flavour)["kvhost18"]
    ops = ["put", "k", "v", "get", "k"]
    run = run_host(binary, KV_PLUGIN, ops, marker, tmpdir_short, GO18_VERSIONS=versions)
    r = run.expect_ok()
    assert r["negotiated_version"] == 1, r  # the plugin speaks 1: the highest common one
    assert r["results"][1]["value"] == "v", r


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize(
    "case",
    [
        ({"GO18_VERSIONS": "2,3"}, r"no common protocol version: the host offers \[2, 3\]"),
        ({"GO18_COOKIE_VALUE": "wrong"}, r"this binary is a plugin"),
    ],
    ids=["no-common-version", "wrong-cookie"],
)
def test_refused_start(
    go_module_programs: Programs,
    marker: str,
    tmpdir_short: Path,
    flavour: str,
    case: tuple[dict[str, str], str],
) -> None:
    """Our plugin refuses with its reason on stderr and exit 1; the host reports it."""
    env, expected = case
    binary = go_module_programs(flavour)["kvhost18"]
    run = run_host(binary, KV_PLUGIN, ["get", "k"], marker, tmpdir_short, **env)
    assert run.returncode == 1 and run.report["ok"] is False, run.describe()
    assert run.report["error"].startswith("start: "), run.describe()
    assert re.search(expected, run.report["error"] + run.stderr, re.I), run.describe()
    assert run.report["plugin_alive_after_kill"] is False, run.describe()


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("cell", CELLS, ids=CELL_IDS)
@pytest.mark.parametrize("multiplex", [False, True], ids=["sockets", "multiplexed"])
def test_brokered_callbacks_both_ways(
    go_module_programs: Programs,
    marker: str,
    tmpdir_short: Path,
    *,
    flavour: str,
    cell: tuple[str, bool],
    multiplex: bool,
) -> None:
    """``put``: our plugin dials the Go host's AddHelper; ``reverse``: the Go host dials ours.
    Multiplexed (``GRPCBrokerMultiplex``): every connection is a yamux stream over the one
    socket, each brokered one after a knock, TLS inside each stream."""
    ops = ["put", "a", "2", "put", "a", "40", "put", "b", "-5", "get", "a", "get", "b",
           "reverse", "20", "22", "reverse", "-7", "3"]  # fmt: skip
    transport, automtls = cell
    env = {"PLUGIN_TRANSPORT": transport, "GO18_AUTOMTLS": "1" if automtls else "0"}
    if multiplex:
        env["GO18_MULTIPLEX"] = "1"
    binary = go_module_programs(flavour)["counterhost18"]
    r = run_host(binary, COUNTER_PLUGIN, ops, marker, tmpdir_short, **env).expect_ok()
    assert_clean_session(r, network=transport, automtls=automtls)
    results = r["results"]
    assert [x.get("value") for x in results] == [None, None, None, 42, -5, 42, -4], r
    reverse_ids = [x["broker_id"] for x in results if x["op"] == "reverse"]
    assert len(set(reverse_ids)) == 2 and all(i > 0 for i in reverse_ids), r


def other_group() -> str:
    """A group the socket can be given that is not our own primary group."""
    candidates = os.getgroups() if os.geteuid() != 0 else [g.gr_gid for g in grp.getgrall()]
    for gid in candidates:
        if gid != os.getgid():
            return str(gid)
    pytest.fail("no group other than our primary one to hand the socket to")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_unix_socket_config_with_a_runner_func(
    go_module_programs: Programs, marker: str, tmpdir_short: Path, flavour: str
) -> None:
    group = other_group()
    temp_dir = tmpdir_short / "sockets"
    temp_dir.mkdir()
    env = {"GO18_SOCKET_GROUP": group, "GO18_SOCKET_TEMPDIR": str(temp_dir), "GO18_RUNNER": "1"}
    binary = go_module_programs(flavour)["kvhost18"]
    ops = ["put", "k", "v", "get", "k"]
    r = run_host(binary, KV_PLUGIN, ops, marker, tmpdir_short, **env).expect_ok()
    assert_clean_session(r, network="unix", automtls=False)
    socket_dir = Path(r["runner_socket_dir"])
    assert socket_dir.parent == temp_dir and socket_dir.name.startswith("plugin-dir"), r
    assert Path(r["socket"]["path"]).parent == socket_dir, r
    assert r["socket"]["mode"] == "0660" and str(r["socket"]["gid"]) == group, r
    assert r["socket_dir"]["mode"] == "0770" and str(r["socket_dir"]["gid"]) == group, r
    assert r["results"][1]["value"] == "v", r
    assert r["runner_socket_dir_removed"] is True, r
    assert list(temp_dir.iterdir()) == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_unix_socket_config_with_cmd_sends_only_the_group(
    go_module_programs: Programs, marker: str, tmpdir_short: Path, flavour: str
) -> None:
    """go-plugin makes (and sends as PLUGIN_UNIX_SOCKET_DIR) a socket directory only for a
    RunnerFunc; with Cmd, TempDir is unused and our plugin makes its own 0700 directory
    in $TMPDIR, while the group still applies to the socket."""
    group = other_group()
    temp_dir = tmpdir_short / "unused"
    temp_dir.mkdir()
    env = {"GO18_SOCKET_GROUP": group, "GO18_SOCKET_TEMPDIR": str(temp_dir)}
    binary = go_module_programs(flavour)["kvhost18"]
    r = run_host(binary, KV_PLUGIN, ["get", "k"], marker, tmpdir_short, **env).expect_ok()
    assert_clean_session(r, network="unix", automtls=False)
    assert "runner_socket_dir" not in r
    socket_dir = Path(r["socket"]["path"]).parent
    assert socket_dir.parent == tmpdir_short and socket_dir != temp_dir, r
    assert r["socket"]["mode"] == "0660" and str(r["socket"]["gid"]) == group, r
    assert not socket_dir.exists(), "our plugin's socket directory was left behind"
    assert list(temp_dir.iterdir()) == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_plugin_logs_reach_the_go_hosts_hclog_at_their_levels(
    go_module_programs: Programs, marker: str, tmpdir_short: Path, flavour: str
) -> None:
    log_file = tmpdir_short / "host.log"
    ops = [
        *("put", "log:trace", "trace-mark", "put", "log:debug", "debug-mark"),
        *("put", "log:info", "info-mark", "put", "log:warn", "warn-mark"),
        *("put", "log:error", "error-mark", "get", "raise", "put", "thread-raise", "thread-mark"),
    ]
    binary = go_module_programs(flavour)["kvhost18"]
    r = run_host(
        binary, LOGGING_PLUGIN, ops, marker, tmpdir_short, GO18_HOST_LOG=str(log_file)
    ).expect_ok()
    assert_clean_session(r, network="unix", automtls=False)
    assert [x["code"] for x in r["results"]] == ["OK"] * 5 + ["Unknown", "OK"], r
    entries = [json.loads(line) for line in log_file.read_text().splitlines() if line]
    # go-plugin re-logs each plugin record under the record's own @module (ours:
    # "__main__", "grpc._server", ...); the host's own records are "host18"/"host18.*".
    plugin_entries = [e for e in entries if not e.get("@module", "").startswith("host18")]

    def levels_of(text: str) -> list[str]:
        return [e["@level"] for e in plugin_entries if text in e["@message"]]

    for level in ("trace", "debug", "info", "warn", "error"):
        assert levels_of(f"{level}-mark") == [level], (level, plugin_entries)
    handler = [e for e in plugin_entries if "deliberate failure in Get" in e["@message"]]
    assert handler and all(e["@level"] == "error" for e in handler), plugin_entries
    assert any("Traceback (most recent call last)" in e["@message"] for e in handler), handler
    thread = [e for e in plugin_entries if "RuntimeError: thread-mark" in e["@message"]]
    assert [e["@level"] for e in thread] == ["error"], plugin_entries
    assert "uncaught exception in thread loud-worker" in thread[0]["@message"]
    assert "Traceback (most recent call last)" in thread[0]["@message"]


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("handler", ["block", "hang"], ids=["watches-context", "ignores-it"])
def test_kill_with_a_call_in_flight(
    go_module_programs: Programs, marker: str, tmpdir_short: Path, flavour: str, handler: str
) -> None:
    """Kill() while a call waits in our plugin: Shutdown ends the call and the plugin, which
    exits 0 within go-plugin's 2 s (no SIGKILL), and nothing is left; also when the
    handler ignores the cancellation and never returns."""
    binary = go_module_programs(flavour)["kvhost18"]
    ops = ["put", "k", "v", "pending", handler, "get", "k"]
    r = run_host(binary, LOGGING_PLUGIN, ops, marker, tmpdir_short).expect_ok()
    assert_clean_session(r, network="unix", automtls=False)
    results = r["results"]
    assert results[2]["value"] == "v", results  # other calls go on meanwhile
    assert results[1]["code"] in ("Unavailable", "Canceled"), results


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_plugin_stdout_and_stderr_reach_the_go_host_over_streamstdio(
    go_module_programs: Programs, marker: str, tmpdir_short: Path, flavour: str
) -> None:
    """go-plugin 1.1.0+ hosts read StreamStdio into SyncStdout and SyncStderr."""
    out, err = tmpdir_short / "stdout.txt", tmpdir_short / "stderr.txt"
    ops = ["put", "print:stdout", "to stdout ✓", "put", "print:stderr", "to stderr ✓"]
    binary = go_module_programs(flavour)["kvhost18"]
    env = {"GO18_SYNC_STDOUT": str(out), "GO18_SYNC_STDERR": str(err)}
    r = run_host(binary, LOGGING_PLUGIN, ops, marker, tmpdir_short, **env).expect_ok()
    assert_clean_session(r, network="unix", automtls=False)
    assert out.read_text(encoding="utf-8") == "to stdout ✓\n"
    assert err.read_text(encoding="utf-8") == "to stderr ✓\n"


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("automtls", [False, True], ids=["plain", "automtls"])
def test_a_host_that_requires_broker_multiplexing_gets_it(
    go_module_programs: Programs, marker: str, tmpdir_short: Path, flavour: str, automtls: bool
) -> None:
    """PLUGIN_MULTIPLEX_GRPC=true: our plugin answers field 7 ``true`` and serves the main
    connection as the first yamux stream; the socket and its directory are gone after."""
    binary = go_module_programs(flavour)["kvhost18"]
    env = {"GO18_MULTIPLEX": "1", "GO18_AUTOMTLS": "1" if automtls else "0"}
    ops = ["put", "k", BIG, "get", "k"]
    r = run_host(binary, KV_PLUGIN, ops, marker, tmpdir_short, **env).expect_ok()
    assert_clean_session(r, network="unix", automtls=automtls)
    assert r["results"][-1]["value"] == BIG, r
    assert not Path(r["socket_dir"]["path"]).exists(), r
