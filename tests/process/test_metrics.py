"""Call metrics against real plugin processes, on both sides: per-method counts, errors
by status code, latency and in-flight calls; ``ping()`` and the health checks appear in
them; nothing is installed when no hook is given."""

from __future__ import annotations

import json
import threading

import grpc
import pytest
from process_helpers import scenario

from pyvider_rpcplugin_sync import (
    CallStats,
    CircuitBreaker,
    CircuitOpen,
    HostConfig,
    PluginProcess,
    PluginServer,
)
from pyvider_rpcplugin_sync._metrics.server import MetricsServerInterceptor
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.timeout(120)

FLAKY = scenario("echo_flaky")
ECHO = "/pyvider_rpcplugin_sync.echo.Echo/Echo"
STREAM = "/pyvider_rpcplugin_sync.echo.Echo/Stream"
CHECK = "/grpc.health.v1.Health/Check"


def echo(payload: bytes) -> echo_pb2.EchoRequest:
    return echo_pb2.EchoRequest(payload=payload)


class Recorder:
    """A hook that keeps every event and lets a test wait for the n-th ``ended``."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, grpc.StatusCode | None, float]] = []
        self._changed = threading.Condition()

    def started(self, method: str) -> None:
        with self._changed:
            self.events.append(("started", method, None, 0.0))

    def ended(self, method: str, code: grpc.StatusCode | None, seconds: float) -> None:
        with self._changed:
            self.events.append(("ended", method, code, seconds))
            self._changed.notify_all()

    def wait_ended(self, count: int) -> None:
        with self._changed:
            done = self._changed.wait_for(
                lambda: sum(e[0] == "ended" for e in self.events) >= count, 30
            )
        assert done, f"fewer than {count} calls ended: {self.events}"


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "automtls"])
def test_host_side_counts_errors_latency_and_ping(tls: bool) -> None:
    stats = CallStats()
    with PluginProcess(FLAKY, stub=echo_pb2_grpc.EchoStub, tls=tls, metrics=stats) as p:
        for _ in range(3):
            p.stub.Echo(echo(b"ok"))
        with pytest.raises(grpc.RpcError):
            p.stub.Echo(echo(b"fail"))
        with pytest.raises(grpc.RpcError):
            p.stub.Echo(echo(b"flaky:1:a"))
        assert p.stub.Echo.future(echo(b"sleep:0.2")).result().payload == b"sleep:0.2"
        assert len(list(p.stub.Stream(echo_pb2.StreamRequest(payload=b"s", count=3)))) == 3
        assert p.ping()
        snapshot = stats.snapshot()
    echo_stats = snapshot[ECHO]
    assert echo_stats["calls"] == 6 and echo_stats["in_flight"] == 0
    assert echo_stats["errors"] == {"INTERNAL": 1, "UNAVAILABLE": 1}
    assert echo_stats["seconds_max"] >= 0.2  # the sleep
    assert echo_stats["seconds_total"] >= echo_stats["seconds_max"]
    assert snapshot[STREAM] == {**snapshot[STREAM], "calls": 1, "in_flight": 0, "errors": {}}
    assert snapshot[CHECK]["calls"] == 1  # ping(): the start's own check is not counted


def test_in_flight_calls_and_a_cancelled_one() -> None:
    recorder = Recorder()
    with PluginProcess(FLAKY, stub=echo_pb2_grpc.EchoStub, tls=False, metrics=recorder) as p:
        hung = p.stub.Echo.future(echo(b"sleep:30"))
        assert recorder.events == [("started", ECHO, None, 0.0)]  # in flight
        hung.cancel()
        recorder.wait_ended(1)
    assert recorder.events[-1][:3] == ("ended", ECHO, grpc.StatusCode.CANCELLED)


def test_a_refused_call_counts_as_local_failure() -> None:
    stats = CallStats()
    breaker = CircuitBreaker(threshold=1, cool_down=60)
    with PluginProcess(
        FLAKY, stub=echo_pb2_grpc.EchoStub, tls=False, metrics=stats, circuit_breaker=breaker
    ) as p:
        with pytest.raises(grpc.RpcError):
            p.stub.Echo(echo(b"fail"))
        with pytest.raises(CircuitOpen):
            p.stub.Echo(echo(b"ok"))
    assert stats.snapshot()[ECHO]["errors"] == {"INTERNAL": 1, "LOCAL": 1}


def test_plugin_side_counts_the_calls_and_health_checks() -> None:
    with PluginProcess(FLAKY, stub=echo_pb2_grpc.EchoStub, tls=False, env={"METRICS": "1"}) as p:
        p.stub.Echo(echo(b"ok"))
        with pytest.raises(grpc.RpcError):
            p.stub.Echo(echo(b"fail"))
        with pytest.raises(grpc.RpcError):
            p.stub.Echo(echo(b"flaky:x:t"))  # not a number: the handler raises
        list(p.stub.Stream(echo_pb2.StreamRequest(payload=b"s", count=2)))
        before = json.loads(p.stub.Echo(echo(b"stats")).payload)
        p.ping()
        after = json.loads(p.stub.Echo(echo(b"stats")).payload)
    assert before[ECHO]["calls"] == 3 and before[ECHO]["in_flight"] == 1  # this very call
    assert before[ECHO]["errors"] == {"INTERNAL": 1, "UNKNOWN": 1}
    assert before[STREAM]["calls"] == 1
    assert after[CHECK]["calls"] == before[CHECK]["calls"] + 1  # the start's check and ping()
    assert not any("GRPCController" in m or "Stdio" in m or "Broker" in m for m in after)


def test_no_hook_no_interceptor() -> None:
    assert HostConfig().call_interceptors() == ()
    assert len(HostConfig(metrics=CallStats()).call_interceptors()) == 1
    server = PluginServer(lambda s: None, environ={})
    assert not any(isinstance(i, MetricsServerInterceptor) for i in server._interceptors)
    with pytest.raises(TypeError, match="started"):
        HostConfig(metrics=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="started"):
        PluginServer(lambda s: None, environ={}, metrics=object())  # type: ignore[arg-type]
