"""Retries and the circuit breaker, against real plugin processes (``echo_flaky``).

- ``retry=RetryPolicy(...)``: a call that fails with UNAVAILABLE twice succeeds on
  its third attempt; one past ``max_attempts`` fails; the call's one deadline covers
  every attempt; a plugin that dies still raises ``PluginClosed``; methods the policy
  does not name are not retried.
- ``circuit_breaker=CircuitBreaker(...)``: consecutive failures open it (the calls
  then fail fast with ``CircuitOpen``, without reaching the plugin), a trial call after
  the cool-down closes it; timeouts count as failures.
"""

from __future__ import annotations

import time

import grpc
import pytest
from process_helpers import scenario

from pyvider_rpcplugin_sync import (
    BreakerState,
    CallTimeout,
    CircuitBreaker,
    CircuitOpen,
    PluginClosed,
    PluginProcess,
    RetryPolicy,
    SharedPlugin,
)
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.timeout(120)

FLAKY = scenario("echo_flaky")
ECHO = "pyvider_rpcplugin_sync.echo.Echo"
RETRY_ECHO = RetryPolicy(
    methods=[f"/{ECHO}/Echo"], max_attempts=3, initial_backoff=0.05, max_backoff=0.2
)


def echo(payload: bytes) -> echo_pb2.EchoRequest:
    return echo_pb2.EchoRequest(payload=payload)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "automtls"])
def test_unavailable_twice_then_success(tls: bool) -> None:
    with PluginProcess(FLAKY, stub=echo_pb2_grpc.EchoStub, tls=tls, retry=RETRY_ECHO) as p:
        assert p.stub.Echo(echo(b"flaky:2:a")).payload == b"a:3"  # the third attempt
        assert p.stub.Echo.future(echo(b"flaky:2:f")).result().payload == b"f:3"
        with pytest.raises(grpc.RpcError) as raised:
            p.stub.Echo(echo(b"flaky:3:b"))  # a fourth attempt is past max_attempts
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
        assert not isinstance(raised.value, PluginClosed)  # the plugin lives: its own status
        assert p.stub.Echo(echo(b"flaky:0:b")).payload == b"b:4"  # three attempts were made


def test_without_a_policy_nothing_is_retried() -> None:
    with PluginProcess(FLAKY, stub=echo_pb2_grpc.EchoStub, tls=False) as p:
        with pytest.raises(grpc.RpcError) as raised:
            p.stub.Echo(echo(b"flaky:1:a"))
        assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
        assert p.stub.Echo(echo(b"flaky:1:a")).payload == b"a:2"


def test_methods_the_policy_does_not_name_are_not_retried() -> None:
    other = RetryPolicy(methods=[f"/{ECHO}/Stream"], initial_backoff=0.05)
    with (
        PluginProcess(FLAKY, stub=echo_pb2_grpc.EchoStub, tls=False, retry=other) as p,
        pytest.raises(grpc.RpcError),
    ):
        p.stub.Echo(echo(b"flaky:1:a"))


def test_one_deadline_covers_every_attempt() -> None:
    slow = RetryPolicy(methods=[ECHO], max_attempts=5, initial_backoff=5, max_backoff=5)
    with PluginProcess(FLAKY, stub=echo_pb2_grpc.EchoStub, tls=False, retry=slow) as p:
        began = time.monotonic()
        with pytest.raises(CallTimeout) as raised:
            p.stub.Echo(echo(b"flaky:9:a"), timeout=0.5)
        assert time.monotonic() - began < 4  # not the 5 s backoff, let alone four of them
        assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    with (
        PluginProcess(
            FLAKY, stub=echo_pb2_grpc.EchoStub, tls=False, retry=slow, call_timeout=0.5
        ) as p,
        pytest.raises(CallTimeout, match="call_timeout="),
    ):
        p.stub.Echo(echo(b"flaky:9:a"))


def test_a_plugin_that_dies_still_raises_plugin_closed() -> None:
    with PluginProcess(FLAKY, stub=echo_pb2_grpc.EchoStub, tls=False, retry=RETRY_ECHO) as p:
        with pytest.raises(PluginClosed) as raised:
            p.stub.Echo(echo(b"crash"))
        assert raised.value.returncode == 7
        with pytest.raises(PluginClosed):
            p.stub.Echo(echo(b"again"))


def test_the_breaker_opens_fails_fast_and_closes_after_a_trial() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cool_down=30, clock=clock)
    with PluginProcess(FLAKY, stub=echo_pb2_grpc.EchoStub, tls=False, circuit_breaker=breaker) as p:
        for _ in range(2):
            with pytest.raises(grpc.RpcError):
                p.stub.Echo(echo(b"fail"))
        assert p.stub.Echo(echo(b"ok")).payload == b"ok"  # a success resets the count
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as failed:
                p.stub.Echo(echo(b"fail"))
            assert failed.value.code() is grpc.StatusCode.INTERNAL
        assert breaker.state is BreakerState.OPEN
        with pytest.raises(CircuitOpen) as refused:
            p.stub.Echo(echo(b"flaky:0:never"))  # refused here: it never reaches the plugin
        assert "last: INTERNAL" in str(refused.value)
        with pytest.raises(CircuitOpen):  # behind grpc's interceptors: at the first message
            next(p.stub.Stream(echo_pb2.StreamRequest(payload=b"s", count=1)))
        assert p.ping()  # the library's health check passes by the breaker
        clock.now = 30
        assert p.stub.Echo(echo(b"flaky:0:never")).payload == b"never:1"  # the trial call
        assert breaker.state is BreakerState.CLOSED
        streamed = p.stub.Stream(echo_pb2.StreamRequest(payload=b"s", count=2))
        assert [message.payload for message in streamed] == [b"s", b"s"]


def test_timeouts_count_as_failures() -> None:
    breaker = CircuitBreaker(threshold=2, cool_down=60)
    with PluginProcess(
        FLAKY, stub=echo_pb2_grpc.EchoStub, tls=False, circuit_breaker=breaker, call_timeout=0.3
    ) as p:
        for _ in range(2):
            with pytest.raises(CallTimeout):
                p.stub.Echo.future(echo(b"sleep:30")).result()
        with pytest.raises(CircuitOpen, match="last: DEADLINE_EXCEEDED"):
            p.stub.Echo(echo(b"quick"))


def test_a_shared_plugin_keeps_its_breaker_across_restarts() -> None:
    breaker = CircuitBreaker(threshold=1, cool_down=60)
    shared = SharedPlugin(
        FLAKY,
        stub=echo_pb2_grpc.EchoStub,
        tls=False,
        circuit_breaker=breaker,
        restart_backoff=0.01,
        max_restart_backoff=0.02,
    )
    with shared:
        with pytest.raises(PluginClosed):
            shared.stub.Echo(echo(b"crash"))  # UNAVAILABLE underneath: a failure
        with pytest.raises(CircuitOpen):
            shared.stub.Echo(echo(b"ok"))
        assert breaker.times_opened == 1
