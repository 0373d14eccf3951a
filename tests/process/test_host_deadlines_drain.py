"""Deadlines and the drain, against real plugin processes.

- ``call_timeout=``: a hung handler ends in ``CallTimeout`` (also grpc's
  ``DEADLINE_EXCEEDED`` error) at its deadline; the caller's ``timeout=`` wins;
  response streams get no deadline from it.
- ``close()`` refuses new calls at once (``PluginClosed``), lets the calls in flight
  finish within ``drain_timeout``, and a call still running when the drain ends
  raises ``PluginClosing``; a crash stays plain ``PluginClosed``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from process_helpers import Records, scenario

from pyvider_rpcplugin_sync import (
    CallTimeout,
    PluginClosed,
    PluginClosing,
    PluginProcess,
    SharedPlugin,
)
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.timeout(120)

FAULTS = scenario("echo_faults")


def echo(payload: bytes) -> echo_pb2.EchoRequest:
    return echo_pb2.EchoRequest(payload=payload)


class Arrivals(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Meets ``barrier`` inside the call frame: the call has passed the gate (is counted)."""

    def __init__(self, barrier: threading.Barrier) -> None:
        self.barrier = barrier

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        if request.payload.startswith(b"sleep:"):
            self.barrier.wait(30)
        return continuation(details, request)


@pytest.fixture
def records() -> Iterator[Records]:
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


# --- deadlines ---------------------------------------------------------------------------

CALL_SHAPES: dict[str, Callable[[Any, echo_pb2.EchoRequest], object]] = {
    "call": lambda stub, request: stub.Echo(request),
    "with_call": lambda stub, request: stub.Echo.with_call(request),
    "future": lambda stub, request: stub.Echo.future(request).result(),
}


@pytest.mark.parametrize("how", sorted(CALL_SHAPES))
def test_a_hung_call_runs_out_of_call_timeout(how: str) -> None:
    with PluginProcess(FAULTS, stub=echo_pb2_grpc.EchoStub, tls=False, call_timeout=1.0) as p:
        began = time.monotonic()
        with pytest.raises(CallTimeout) as raised:
            CALL_SHAPES[how](p.stub, echo(b"sleep:60"))
        elapsed = time.monotonic() - began
        assert p.stub.Echo(echo(b"after")).payload == b"after"  # the plugin lives on
    error = raised.value
    assert isinstance(error, grpc.RpcError)
    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert error.details()
    assert "call_timeout=" in str(error)
    assert "/plugin.Echo/Echo" in str(error) or "Echo/Echo" in str(error)
    assert 0.95 <= elapsed < 5.0


def test_grpc_users_catch_it_as_deadline_exceeded() -> None:
    with PluginProcess(FAULTS, stub=echo_pb2_grpc.EchoStub, tls=False, call_timeout=0.5) as p:
        try:
            p.stub.Echo(echo(b"sleep:60"))
        except grpc.RpcError as exc:  # the code grpc users wrote before
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        else:
            pytest.fail("no deadline")


def test_the_callers_timeout_wins_both_ways() -> None:
    with PluginProcess(FAULTS, stub=echo_pb2_grpc.EchoStub, tls=False, call_timeout=0.5) as p:
        assert p.stub.Echo(echo(b"sleep:1.5"), timeout=30).payload == b"sleep:1.5"
    with PluginProcess(FAULTS, stub=echo_pb2_grpc.EchoStub, tls=False, call_timeout=60) as p:
        began = time.monotonic()
        with pytest.raises(CallTimeout, match="timeout=") as raised:
            p.stub.Echo(echo(b"sleep:60"), timeout=0.5)
        assert time.monotonic() - began < 5.0
        assert "call_timeout" not in str(raised.value)


def test_none_means_no_deadline() -> None:
    with PluginProcess(FAULTS, stub=echo_pb2_grpc.EchoStub, tls=False, call_timeout=None) as p:
        assert p.stub.Echo(echo(b"sleep:1")).payload == b"sleep:1"


def test_response_streams_get_no_deadline_from_call_timeout() -> None:
    with PluginProcess(FAULTS, stub=echo_pb2_grpc.EchoStub, tls=False, call_timeout=0.3) as p:
        request = echo_pb2.StreamRequest(count=2, payload=b"sleep:0.6")
        assert [m.payload for m in p.stub.Stream(request)] == [b"sleep:0.6"] * 2
        with pytest.raises(CallTimeout, match="timeout="):
            list(p.stub.Stream(request, timeout=0.3))  # its own timeout= still applies


def test_shared_plugin_takes_call_timeout() -> None:
    with SharedPlugin(FAULTS, stub=echo_pb2_grpc.EchoStub, tls=False, call_timeout=0.5) as shared:
        with pytest.raises(CallTimeout):
            shared.stub.Echo(echo(b"sleep:60"))
        assert shared.ping()


# --- the drain ---------------------------------------------------------------------------


def test_close_drains_sixteen_threads_in_flight(records: Records) -> None:
    barrier = threading.Barrier(17)  # 16 callers inside the call frame, and this thread
    replies: dict[int, bytes] = {}
    errors: list[BaseException] = []
    plugin = PluginProcess(
        scenario("echo_faults", "slow-stop", "0.5"),
        stub=echo_pb2_grpc.EchoStub,
        tls=False,
        drain_timeout=5.0,
        interceptors=[Arrivals(barrier)],
    ).start()
    stub = plugin.stub

    def call(n: int) -> None:
        try:
            replies[n] = stub.Echo(echo(b"sleep:2:%d" % n)).payload
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(16)]
    for thread in threads:
        thread.start()
    barrier.wait(30)  # every call is in flight

    closer = threading.Thread(target=plugin.close)
    closer.start()
    records.wait_for(f"plugin {plugin.logger.name}: draining 16 call(s) for up to 5 s")
    with pytest.raises(PluginClosed) as refused:  # new calls: refused at once
        stub.Echo(echo(b"new"))
    assert type(refused.value) is PluginClosed
    closer.join(30)
    for thread in threads:
        thread.join(30)
    assert not closer.is_alive()
    assert errors == []
    assert replies == {n: b"sleep:2:%d" % n for n in range(16)}


def test_a_call_still_running_when_the_drain_ends_raises_plugin_closing() -> None:
    barrier = threading.Barrier(2)
    outcome: list[BaseException] = []
    plugin = PluginProcess(
        FAULTS,
        stub=echo_pb2_grpc.EchoStub,
        tls=False,
        drain_timeout=0.5,
        interceptors=[Arrivals(barrier)],
    ).start()

    def call() -> None:
        try:
            plugin.stub.Echo(echo(b"sleep:60"))
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    barrier.wait(30)
    began = time.monotonic()
    plugin.close()
    caller.join(30)
    assert time.monotonic() - began < 10.0
    assert len(outcome) == 1
    assert isinstance(outcome[0], PluginClosing), repr(outcome[0])
    assert "drain" in str(outcome[0])


def test_a_crash_stays_plain_plugin_closed() -> None:
    plugin = PluginProcess(FAULTS, stub=echo_pb2_grpc.EchoStub, tls=False)
    with plugin, pytest.raises(PluginClosed) as raised:
        plugin.stub.Echo(echo(b"crash"))
    assert not isinstance(raised.value, PluginClosing)
    assert "exited" in str(raised.value)
