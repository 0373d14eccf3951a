"""The call frame of ``GuardedChannel``: which deadline each call shape gets, the gate
that counts, refuses and drains calls, and the SharedPlugin's restart jitter."""

from __future__ import annotations

import threading
from typing import Any

import grpc
import pytest

from pyvider_rpcplugin_sync import (
    BrokerError,
    CallTimeout,
    HostConfig,
    PluginClosed,
    RPCPluginError,
)
from pyvider_rpcplugin_sync._broker.broker import Broker
from pyvider_rpcplugin_sync._constants import DEFAULT_CALL_TIMEOUT
from pyvider_rpcplugin_sync._host import shared as shared_module
from pyvider_rpcplugin_sync._host.shared import SharedPlugin
from pyvider_rpcplugin_sync._transport.gate import CallGate
from pyvider_rpcplugin_sync._transport.guard import GuardedChannel

pytestmark = pytest.mark.timeout(30)


class Deadline(grpc.RpcError):  # type: ignore[misc]
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.DEADLINE_EXCEEDED

    def details(self) -> str:
        return "Deadline Exceeded"


class Recorder:
    """A fake multicallable: records the timeout it got; ``hold`` blocks it; ``fail``."""

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []
        self.hold: threading.Event | None = None
        self.entered = threading.Event()
        self.fail: BaseException | None = None

    def __call__(self, request: Any, timeout: float | None = None, *rest: Any, **kw: Any) -> Any:
        self.timeouts.append(kw.get("timeout", timeout))
        self.entered.set()
        if self.hold is not None:
            self.hold.wait(10)
        if self.fail is not None:
            raise self.fail
        return request

    def with_call(self, request: Any, timeout: float | None = None, *rest: Any) -> Any:
        return self(request, timeout), None


class FakeChannel:
    def __init__(self) -> None:
        self.calls = Recorder()

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Recorder:
        return self.calls

    unary_stream = stream_unary = stream_stream = unary_unary


def guarded(**kwargs: Any) -> tuple[GuardedChannel, Recorder]:
    inner = FakeChannel()
    return GuardedChannel(inner, lambda exc: None, **kwargs), inner.calls


def test_unary_calls_get_the_default_deadline_unless_the_caller_gives_one() -> None:
    channel, calls = guarded()
    for shape in (channel.unary_unary, channel.stream_unary):
        frame = shape("/svc/M")
        frame("x")
        frame.with_call("x")
        frame("x", timeout=2.5)
    assert calls.timeouts == [DEFAULT_CALL_TIMEOUT, DEFAULT_CALL_TIMEOUT, 2.5] * 2
    assert DEFAULT_CALL_TIMEOUT == 300.0
    assert HostConfig().call_timeout == 300.0


def test_streams_get_only_the_callers_timeout() -> None:
    channel, calls = guarded(call_timeout=1.0)
    for shape in (channel.unary_stream, channel.stream_stream):
        shape("/svc/S")("x")
        shape("/svc/S")("x", timeout=4.0)
    assert calls.timeouts == [None, 4.0] * 2


def test_none_is_no_deadline_and_bad_values_fail_when_built() -> None:
    channel, calls = guarded(call_timeout=None)
    channel.unary_unary("/svc/M")("x")
    assert calls.timeouts == [None]
    for bad in (0, -1, True, "5"):
        with pytest.raises(ValueError, match="call_timeout"):
            HostConfig(call_timeout=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="drain_timeout"):
        HostConfig(drain_timeout=-1)
    with pytest.raises(BrokerError):  # the broker checks the id first, then the timeout
        Broker("host").dial(-1, call_timeout=1)
    with pytest.raises(ValueError, match="call_timeout"):
        Broker("host").dial(1, call_timeout=0)


def test_a_deadline_becomes_call_timeout_naming_the_option() -> None:
    channel, calls = guarded(call_timeout=7)
    calls.fail = Deadline()
    frame = channel.unary_unary("/svc/M")
    with pytest.raises(CallTimeout, match="call_timeout=") as raised:
        frame("x")
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert raised.value.details() == "Deadline Exceeded"
    assert isinstance(raised.value, grpc.RpcError) and isinstance(raised.value, RPCPluginError)
    assert "/svc/M" in str(raised.value) and "7 s" in str(raised.value)
    with pytest.raises(CallTimeout, match="longer timeout="):
        frame("x", timeout=1)


def test_without_any_deadline_deadline_exceeded_is_the_plugins_own_status() -> None:
    channel, calls = guarded(call_timeout=None)
    calls.fail = Deadline()
    with pytest.raises(Deadline):
        channel.unary_unary("/svc/M")("x")


def test_the_gate_counts_refuses_and_drains() -> None:
    gate = CallGate(lambda: PluginClosed("the plugin is closing"))
    channel, calls = guarded(gate=gate)
    frame = channel.unary_unary("/svc/M")
    frame("x")
    assert gate.in_flight() == 0
    calls.hold = threading.Event()
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(frame("slow")))
    worker.start()
    assert calls.entered.wait(10)
    assert gate.in_flight() == 1
    gate.close()
    with pytest.raises(PluginClosed, match="closing"):
        frame("new")
    assert gate.in_flight() == 1  # the refused call counted itself out
    assert gate.drain(0.05) == 1  # still running when the drain ends
    releaser = threading.Timer(0.2, calls.hold.set)
    releaser.start()
    assert gate.drain(10) == 0  # woken when the call ended, not at the timeout
    worker.join(10)
    releaser.join(10)
    assert done == ["slow"]


def test_a_failed_call_is_counted_out_too() -> None:
    gate = CallGate(lambda: PluginClosed("closed"))
    channel, calls = guarded(gate=gate)
    calls.fail = Deadline()
    with pytest.raises(CallTimeout):
        channel.unary_unary("/svc/M")("x")
    assert gate.in_flight() == 0


@pytest.mark.parametrize(("draw", "expected"), [(1.0, 1.0), (0.0, 0.5), (0.5, 0.75)])
def test_restart_backoff_has_equal_jitter(
    monkeypatch: pytest.MonkeyPatch, draw: float, expected: float
) -> None:
    monkeypatch.setattr(shared_module, "_random", lambda: draw)
    plugin = SharedPlugin(["/nonexistent"], restart_backoff=0.25, max_restart_backoff=2.0)
    try:
        # 0.25 doubled: 0.25, 0.5, 1.0, then the maximum 2.0; each in [half, all] of it
        delays = [plugin._failures.delay(n, shared_module._random()) for n in range(1, 6)]
    finally:
        plugin.close()
    full = [0.25, 0.5, 1.0, 2.0, 2.0]
    assert delays == pytest.approx([f * expected for f in full])
    assert plugin._failures.delay(0, draw) == 0.0
