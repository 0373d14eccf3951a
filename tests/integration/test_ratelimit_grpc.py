"""Rate limiting through a real grpc server and channel on a loopback unix socket."""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from pyvider_rpcplugin_sync._errors import RateLimited
from pyvider_rpcplugin_sync._ratelimit.bucket import TokenBucket
from pyvider_rpcplugin_sync._ratelimit.interceptors import (
    RateLimitClientInterceptor,
    RateLimitServerInterceptor,
)

pytestmark = pytest.mark.timeout(30)

ECHO = "/test.Echo/Echo"
REPEAT = "/test.Echo/Repeat"
CHAT = "/test.Echo/Chat"
# Refill negligible over a test: one token per 10,000 s.
NO_REFILL = 1e-4


class EchoServer:
    """A bytes-in/bytes-out service plus the official health servicer."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.calls += 1

    def echo(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        self._count()
        return request

    def repeat(self, request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        self._count()
        for _ in range(3):
            yield request

    def chat(self, requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
        self._count()
        yield from requests

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(
            "test.Echo",
            {
                "Echo": grpc.unary_unary_rpc_method_handler(self.echo),
                "Repeat": grpc.unary_stream_rpc_method_handler(self.repeat),
                "Chat": grpc.stream_stream_rpc_method_handler(self.chat),
            },
        )


@contextmanager
def serving(
    interceptors: tuple[grpc.ServerInterceptor, ...] = (),
) -> Iterator[tuple[EchoServer, grpc.Channel]]:
    # A short private directory: unix socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="rl-") as tmp:
        address = f"unix:{tmp}/s.sock"
        app = EchoServer()
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), interceptors=interceptors)
        server.add_generic_rpc_handlers((app.handler(),))
        servicer = health.HealthServicer()
        servicer.set("plugin", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
        server.add_insecure_port(address)
        server.start()
        channel = grpc.insecure_channel(address)
        try:
            grpc.channel_ready_future(channel).result(timeout=10)
            yield app, channel
        finally:
            channel.close()
            server.stop(None).wait(5)


def limited_server(
    bucket: TokenBucket | None, per_method: Mapping[str, TokenBucket] | None = None
) -> tuple[RateLimitServerInterceptor, Any]:
    interceptor = RateLimitServerInterceptor(bucket, per_method=per_method)
    return interceptor, serving((interceptor,))


def echo(channel: grpc.Channel, payload: bytes = b"hi", timeout: float | None = 5) -> bytes:
    result: bytes = channel.unary_unary(ECHO)(payload, timeout=timeout)
    return result


def repeat(channel: grpc.Channel) -> list[bytes]:
    return list(channel.unary_stream(REPEAT)(b"r", timeout=5))


def status_of(call: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def health_check(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    response = stub.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=5)
    return int(response.status)


# --- plugin side --------------------------------------------------------------------


def test_burst_over_capacity_yields_exactly_the_excess_as_resource_exhausted() -> None:
    interceptor, server = limited_server(TokenBucket(NO_REFILL, 5))
    with server as (app, channel):
        ok, denied = 0, []
        for i in range(8):
            try:
                assert echo(channel, b"%d" % i) == b"%d" % i
                ok += 1
            except grpc.RpcError as rpc_error:
                denied.append(rpc_error)
        assert ok == 5
        assert len(denied) == 3
        for error in denied:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert error.details() == (
                "rate limit exceeded for /test.Echo/Echo: 0.0001 requests/s, burst 5; retry later"
            )
        assert app.calls == 5  # denied calls never reached the app
        assert interceptor.denied == 3


def test_health_keeps_working_while_throttled() -> None:
    _, server = limited_server(TokenBucket(NO_REFILL, 1))
    with server as (_app, channel):
        echo(channel)
        assert status_of(lambda: echo(channel)).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        serving_status = health_pb2.HealthCheckResponse.SERVING
        assert [health_check(channel) for _ in range(20)] == [serving_status] * 20


def test_streaming_methods_are_denied_with_resource_exhausted() -> None:
    _, server = limited_server(TokenBucket(NO_REFILL, 2))
    with server as (app, channel):
        assert repeat(channel) == [b"r"] * 3
        assert list(channel.stream_stream(CHAT)(iter([b"a", b"b"]), timeout=5)) == [b"a", b"b"]
        error = status_of(lambda: repeat(channel))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "rate limit exceeded for /test.Echo/Repeat" in (error.details() or "")
        chat = channel.stream_stream(CHAT)
        error = status_of(lambda: list(chat(iter([b"a"]), timeout=5)))
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "/test.Echo/Chat" in (error.details() or "")
        assert app.calls == 2


def test_per_method_buckets() -> None:
    per_method = {ECHO: TokenBucket(NO_REFILL, 2)}
    _, server = limited_server(None, per_method)
    with server as (_app, channel):
        echo(channel)
        echo(channel)
        assert status_of(lambda: echo(channel)).code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        # Methods without their own bucket, and no default: unlimited.
        for _ in range(10):
            assert repeat(channel) == [b"r"] * 3


def test_unknown_method_is_unimplemented_and_spends_no_token() -> None:
    _, server = limited_server(TokenBucket(NO_REFILL, 1))
    with server as (_app, channel):
        missing = channel.unary_unary("/test.Echo/Missing")
        for _ in range(3):
            error = status_of(lambda: missing(b"", timeout=5))
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED
        assert echo(channel) == b"hi"
        assert status_of(lambda: echo(channel)).code() == grpc.StatusCode.RESOURCE_EXHAUSTED


# --- host side ------------------------------------------------------------------------


def test_client_fail_mode_raises_rate_limited() -> None:
    with serving() as (app, channel):
        limited = grpc.intercept_channel(
            channel, RateLimitClientInterceptor(TokenBucket(NO_REFILL, 3), "fail")
        )
        for _ in range(3):
            assert echo(limited) == b"hi"
        with pytest.raises(RateLimited, match=r"/test\.Echo/Echo"):
            echo(limited)
        with pytest.raises(RateLimited, match=r"/test\.Echo/Repeat"):
            repeat(limited)
        assert app.calls == 3
        # Health (internal) is never limited on the host either.
        assert health_check(limited) == health_pb2.HealthCheckResponse.SERVING


def test_client_wait_mode_waits_for_tokens() -> None:
    rate, capacity, calls = 50.0, 2.0, 12
    with serving() as (app, channel):
        limited = grpc.intercept_channel(
            channel, RateLimitClientInterceptor(TokenBucket(rate, capacity), "wait")
        )
        began = time.monotonic()
        for i in range(calls):
            assert echo(limited, b"%d" % i, timeout=5) == b"%d" % i
        assert repeat(limited) == [b"r"] * 3
        elapsed = time.monotonic() - began
        assert app.calls == calls + 1
        assert elapsed >= (calls + 1 - capacity) / rate - 0.01


def test_client_wait_mode_raises_when_the_call_timeout_is_too_short() -> None:
    with serving() as (app, channel):
        limited = grpc.intercept_channel(
            channel, RateLimitClientInterceptor(TokenBucket(1.0, 1), "wait")
        )
        echo(limited)
        began = time.monotonic()
        with pytest.raises(RateLimited, match=r"^/test\.Echo/Echo: .*within 0\.2 s"):
            echo(limited, timeout=0.2)
        assert time.monotonic() - began < 0.2  # raised at once, not after sleeping
        assert app.calls == 1
