"""SharedPlugin's restarts against real plugins: a plugin that fails every start stays
down after ``max_start_failures`` (``PluginDown`` names the attempts and the last
cause) until ``reset()``; ``restart_in_background`` restarts a dead plugin, and retries
failed starts with a capped backoff, without waiting for a request."""

from __future__ import annotations

import logging
import os
import select
import signal
import threading
from collections.abc import Iterator

import pytest
from process_helpers import KV, scenario

from pyvider_rpcplugin_sync import PluginClosed, PluginDown, PluginStartError, SharedPlugin
from pyvider_rpcplugin_sync._host import shared as shared_module
from pyvider_rpcplugin_sync._protos import kv_pb2, kv_pb2_grpc
from pyvider_rpcplugin_sync.examples.kv_plugin import KV_HANDSHAKE

pytestmark = pytest.mark.timeout(60)
FAILING = scenario("faults", "exit", "3", "no such luck")
FAILED_START = "PluginStartError: plugin exited before printing its handshake line [exit code 3]"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Awaited(logging.Handler):
    """Sets ``seen`` once a record of the shared logger contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__(level=1)
        self.text = text
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


@pytest.fixture
def awaited() -> Iterator[list[Awaited]]:
    handlers: list[Awaited] = []
    target = logging.getLogger("pyvider_rpcplugin_sync.shared")
    old_level = target.level
    target.setLevel(logging.DEBUG)
    try:
        yield handlers
    finally:
        for handler in handlers:
            target.removeHandler(handler)
        target.setLevel(old_level)


def await_log(handlers: list[Awaited], text: str) -> Awaited:
    handler = Awaited(text)
    logging.getLogger("pyvider_rpcplugin_sync.shared").addHandler(handler)
    handlers.append(handler)
    return handler


def kill_and_wait(pid: int) -> None:
    fd = os.pidfd_open(pid)
    try:
        os.kill(pid, signal.SIGKILL)
        assert select.select([fd], [], [], 10)[0], f"plugin {pid} did not die"
    finally:
        os.close(fd)


def test_a_plugin_that_never_starts_stays_down_until_reset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = Clock()
    monkeypatch.setattr(shared_module, "_now", clock)
    monkeypatch.setattr(shared_module, "_random", lambda: 1.0)
    plugin = SharedPlugin(
        FAILING,
        handshake=KV_HANDSHAKE,
        restart_backoff=1,
        max_restart_backoff=2,
        max_start_failures=3,
    )
    with plugin:
        for _ in range(3):
            with pytest.raises(PluginStartError):
                plugin.ping()
            clock.now += 2  # past the capped pause
        with pytest.raises(PluginDown) as down:
            plugin.ping()
        assert isinstance(down.value, PluginClosed)
        assert down.value.attempts == 3
        assert down.value.last_error == FAILED_START
        assert "stays down after 3 failures in a row (failed starts" in str(down.value)
        assert "reset()" in str(down.value.hint)
        clock.now += 3600  # however long: it stays down, with no start attempt
        with pytest.raises(PluginDown):
            _ = plugin.stub
        summary = plugin.health()
        assert (summary["status"], summary["stays_down"], summary["failed_starts"]) == (
            "down",
            True,
            3,
        )
        plugin.reset()
        with pytest.raises(PluginStartError):  # tried again
            plugin.ping()
        assert plugin.health(start=False)["failed_starts"] == 4


def test_max_start_failures_is_checked() -> None:
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="max_start_failures"):
            SharedPlugin(KV, max_start_failures=bad)  # type: ignore[arg-type]


def test_a_dead_plugin_is_restarted_in_the_background(awaited: list[Awaited]) -> None:
    shared = SharedPlugin(
        KV, handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub, restart_in_background=True
    )
    with shared:
        shared.stub.Put(kv_pb2.PutRequest(key="a", value=b"1"), timeout=5)
        first = shared.pid
        assert first is not None
        restarted = await_log(awaited, "start 2 of process")
        kill_and_wait(first)
        assert restarted.seen.wait(30), "no background restart"
        summary = shared.health(start=False)  # starts nothing: it runs already
        assert (summary["ok"], summary["starts"], summary["deaths"]) == (True, 2, 1)
        assert shared.pid not in (None, first)


def test_failed_starts_are_retried_in_the_background_until_the_cap(
    awaited: list[Awaited],
) -> None:
    shared = SharedPlugin(
        FAILING,
        handshake=KV_HANDSHAKE,
        restart_backoff=0.05,
        max_restart_backoff=0.1,
        max_start_failures=3,
        restart_in_background=True,
    )
    with shared:
        gave_up = await_log(awaited, "stays down after 3 failures in a row")
        with pytest.raises(PluginStartError):
            shared.ping()  # the first attempt; the two others run in the background
        assert gave_up.seen.wait(30), "the background attempts did not reach the cap"
        with pytest.raises(PluginDown) as down:
            shared.ping()
        assert (down.value.attempts, down.value.last_error) == (3, FAILED_START)
        assert shared.health(start=False)["failed_starts"] == 3


def test_close_stops_the_background_restarts() -> None:
    shared = SharedPlugin(
        FAILING,
        handshake=KV_HANDSHAKE,
        restart_backoff=30,
        max_restart_backoff=30,
        restart_in_background=True,
    )
    with pytest.raises(PluginStartError):
        shared.ping()
    thread = shared._restarter.thread
    assert thread is not None and thread.is_alive()  # waiting out its 30 s pause
    shared.close()
    thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(PluginClosed):
        shared.ping()
