"""SharedPlugin: lazy start, threads, restart with backoff, fork, close, exit."""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from process_helpers import KV, PYTHON, Records, child_processes, scenario

from pyvider_rpcplugin_sync import PluginClosed, PluginStartError, RPCPluginError
from pyvider_rpcplugin_sync._host import shared as shared_module
from pyvider_rpcplugin_sync._host.shared import SharedPlugin
from pyvider_rpcplugin_sync._protos import kv_pb2, kv_pb2_grpc
from pyvider_rpcplugin_sync.examples.kv_plugin import KV_HANDSHAKE

pytestmark = pytest.mark.timeout(60)


class Clock:
    """A monotonic clock the test moves by hand (for the backoff)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(shared_module, "_now", fake)
    monkeypatch.setattr(shared_module, "_random", lambda: 1.0)  # the jitter's top: exact
    return fake


@pytest.fixture
def records() -> Iterator[Records]:
    """Every record of the library's loggers."""
    handler = Records()
    target = logging.getLogger("pyvider_rpcplugin_sync")
    old_level = target.level
    target.addHandler(handler)
    target.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)


@pytest.fixture
def kv() -> Iterator[SharedPlugin]:
    with SharedPlugin(KV, handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub) as plugin:
        yield plugin


def put(plugin: SharedPlugin, key: str, value: bytes) -> None:
    plugin.stub.Put(kv_pb2.PutRequest(key=key, value=value), timeout=5)


def get(plugin: SharedPlugin, key: str) -> bytes:
    return bytes(plugin.stub.Get(kv_pb2.GetRequest(key=key), timeout=5).value)


def kill_and_wait(pid: int) -> None:
    """SIGKILL the plugin and wait for its exit (a pidfd: no reaping, no polling)."""
    fd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        assert select.select([fd], [], [], 10)[0], f"plugin {pid} did not die"
    finally:
        os.close(fd)


def messages(records: Records, logger: str) -> list[str]:
    return [r.getMessage() for r in records.records if r.name == logger]


def test_nothing_starts_before_the_first_use(kv: SharedPlugin) -> None:
    assert kv.pid is None
    assert child_processes() == {}
    summary = kv.health(start=False)
    assert (summary["ok"], summary["status"], summary["pid"]) == (False, "not started", None)
    put(kv, "a", b"1")
    assert kv.pid in child_processes()
    assert kv.ping()


def test_options_are_checked_when_built() -> None:
    with pytest.raises(ValueError, match="transport"):
        SharedPlugin(KV, transport="udp")
    with pytest.raises(ValueError, match="backoff"):
        SharedPlugin(KV, restart_backoff=0)


def test_threads_share_one_plugin(kv: SharedPlugin, records: Records) -> None:
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait(10)
            for i in range(25):
                put(kv, f"t{n}-{i}", b"x")
                assert get(kv, f"t{n}-{i}") == b"x"
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert kv.health()["starts"] == 1
    started = [m for m in messages(records, "pyvider_rpcplugin_sync.shared") if "started" in m]
    assert len(started) == 1


def test_a_killed_plugin_is_replaced_on_the_next_call(kv: SharedPlugin, records: Records) -> None:
    put(kv, "a", b"1")
    first = kv.pid
    assert first is not None
    kill_and_wait(first)
    assert kv.pid is None  # seen at once, without waiting for the reaper thread
    put(kv, "a", b"2")  # the next call restarts it
    assert kv.pid not in (None, first)
    assert get(kv, "a") == b"2"
    summary = kv.health()
    assert (summary["ok"], summary["starts"], summary["deaths"]) == (True, 2, 1)
    logged = messages(records, "pyvider_rpcplugin_sync.shared")
    assert any(
        f"(pid {first}) exited with code -9" in m and "restarting it now" in m for m in logged
    )


def test_failed_starts_back_off_exponentially_up_to_the_maximum(
    clock: Clock, records: Records
) -> None:
    plugin = SharedPlugin(["/nonexistent/plugin"], restart_backoff=0.1, max_restart_backoff=1.0)
    delays = []
    with plugin:
        for _ in range(6):
            with pytest.raises(PluginStartError):
                _ = plugin.stub
            with pytest.raises(PluginClosed, match="next start attempt in") as refused:
                _ = plugin.stub  # backing off: refused at once
            assert "could not start plugin" in str(refused.value.hint)
            delays.append(plugin.health(start=False)["retry_in"])
            clock.now += delays[-1]
    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    logged = messages(records, "pyvider_rpcplugin_sync.shared")
    assert sum("next attempt in" in m for m in logged) == 6


def test_a_crash_loop_backs_off_and_a_stable_plugin_restarts_at_once(
    kv: SharedPlugin, clock: Clock
) -> None:
    put(kv, "a", b"1")
    kill_and_wait(kv.pid or 0)
    put(kv, "a", b"1")  # the first death: restarted at once
    kill_and_wait(kv.pid or 0)  # died again right away: a crash loop
    with pytest.raises(PluginClosed, match=r"next start attempt in 0\.1 s"):
        put(kv, "a", b"1")
    clock.now += 0.1
    put(kv, "a", b"1")
    clock.now += 5.0  # this one runs long enough to count as stable
    kill_and_wait(kv.pid or 0)
    put(kv, "a", b"1")
    assert kv.health()["deaths"] == 3


def test_threads_waiting_for_a_failed_start_do_not_retry_it(clock: Clock) -> None:
    plugin = SharedPlugin(scenario("faults", "exit", "3", "no such luck"), handshake=KV_HANDSHAKE)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def call() -> None:
        barrier.wait(10)
        try:
            plugin.ping()
        except RPCPluginError as exc:
            outcomes.append(type(exc).__name__)

    with plugin:
        threads = [threading.Thread(target=call) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        summary = plugin.health(start=False)
    assert sorted(outcomes) == ["PluginClosed"] * 5 + ["PluginStartError"]
    assert summary["failed_starts"] == 1
    assert (
        summary["error"]
        == "PluginStartError: plugin exited before printing its handshake line [exit code 3]"
    )


def test_close_is_final_and_idempotent(kv: SharedPlugin) -> None:
    put(kv, "a", b"1")
    live = kv._live_plugin
    assert live is not None
    process = live.plugin
    kv.close()
    kv.close()
    assert process.returncode == 0  # a graceful Shutdown
    assert kv.closed and kv.pid is None
    with pytest.raises(PluginClosed, match="closed"):
        _ = kv.stub
    assert kv.health()["status"] == "closed"


def run_script(body: str, tmp_path: Path) -> dict[str, Any]:
    """Run PRELUDE + body in a fresh interpreter; its report, printed at its exit.

    Its own session, killed whole on timeout: a hung forked child must not outlive
    the test. GRPC_ENABLE_FORK_SUPPORT is left unset, as docs/web.md recommends.
    """
    script = tmp_path / "script.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    env = {k: v for k, v in os.environ.items() if k != "GRPC_ENABLE_FORK_SUPPORT"}
    env["KV_STORE_DIR"] = ":memory:"  # each process's plugin keeps its own values
    with subprocess.Popen(
        [PYTHON, str(script), *KV],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    ) as proc:
        try:
            out, err = proc.communicate(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"the script hung:\n{err}") from None
    assert proc.returncode == 0, err
    report: dict[str, Any] = json.loads(out)
    return report


PRELUDE = """\
import atexit, json, os, sys, threading

report, out, process = {}, 1, None

def emit():  # registered before the library's exit hook, so it runs after it
    report["returncode"] = process.returncode if process is not None else None
    os.write(out, json.dumps(report).encode())

atexit.register(emit)

from pyvider_rpcplugin_sync._host.shared import SharedPlugin
from pyvider_rpcplugin_sync._protos import kv_pb2, kv_pb2_grpc
from pyvider_rpcplugin_sync.examples.kv_plugin import KV_HANDSHAKE

kv = SharedPlugin(sys.argv[1:], handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub)

def put(key, value):
    kv.stub.Put(kv_pb2.PutRequest(key=key, value=value), timeout=5)

def get(key):
    return kv.stub.Get(kv_pb2.GetRequest(key=key), timeout=5).value.decode()

def parent_of(pid):
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])
"""


def test_the_plugin_is_shut_down_gracefully_at_exit(tmp_path: Path) -> None:
    report = run_script(
        """
        put("a", b"1")
        process = kv._live_plugin.plugin
        report["pid"] = kv.pid
        """,
        tmp_path,
    )
    assert report["pid"]
    assert report["returncode"] == 0  # Shutdown at exit: not killed, not left behind


FORKS = """
put("a", b"parent")
report["plugin"] = kv.pid
stop = threading.Event()

def busy():  # calls in flight on the parent's plugin while the process forks
    while not stop.is_set():
        assert get("a") == "parent"

caller = threading.Thread(target=busy)
caller.start()
report["children"] = []
for i in range(3):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        out, report = w, {"me": os.getpid(), "inherited": kv.pid}
        put("a", f"child {i}".encode())
        report["value"] = get("a")
        report["plugin"] = kv.pid
        report["plugin_parent"] = parent_of(kv.pid)
        process = kv._live_plugin.plugin
        sys.exit(0)  # atexit closes the child's plugin, and only that one
    os.close(w)
    with os.fdopen(r) as pipe:
        child = json.loads(pipe.read())
    child["status"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    report["children"].append(child)
stop.set()
caller.join()
report["plugin_after"] = kv.pid
report["value_after"] = get("a")
process = kv._live_plugin.plugin
"""


def test_a_forked_child_gets_its_own_plugin_and_leaves_the_parents_alone(
    tmp_path: Path,
) -> None:
    report = run_script(FORKS, tmp_path)
    parent_plugin = report["plugin"]
    assert report["plugin_after"] == parent_plugin
    assert report["value_after"] == "parent"
    assert report["returncode"] == 0
    assert len(report["children"]) == 3
    plugins = {parent_plugin}
    for i, child in enumerate(report["children"]):
        assert child["status"] == 0
        assert child["inherited"] is None  # the parent's plugin is not the child's
        assert child["value"] == f"child {i}"
        assert child["plugin_parent"] == child["me"]
        assert child["returncode"] == 0  # closed by the child at its exit
        plugins.add(child["plugin"])
    assert len(plugins) == 4
