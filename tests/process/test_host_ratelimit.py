"""rate_limit=: app calls through plugin.stub take tokens; the library's own calls do not."""

from __future__ import annotations

import time

import pytest
from process_helpers import ECHO

from pyvider_rpcplugin_sync import RateLimited
from pyvider_rpcplugin_sync._host.process import PluginProcess
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc
from pyvider_rpcplugin_sync._ratelimit.bucket import TokenBucket

pytestmark = pytest.mark.timeout(60)


def echo(plugin: PluginProcess) -> bytes:
    return bytes(plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"x"), timeout=5).payload)


def test_fail_mode_refuses_beyond_the_burst() -> None:
    bucket = TokenBucket(rate=0.001, capacity=3)
    with PluginProcess(
        ECHO, stub=echo_pb2_grpc.EchoStub, tls=False, rate_limit=bucket, rate_limit_mode="fail"
    ) as plugin:
        assert [echo(plugin) for _ in range(3)] == [b"x"] * 3
        with pytest.raises(RateLimited):
            echo(plugin)
        assert plugin.ping()  # health, Shutdown, stdio and broker are never limited
        with pytest.raises(RateLimited):
            plugin.make_stub(echo_pb2_grpc.EchoStub).Echo(echo_pb2.EchoRequest(), timeout=5)
    assert plugin.returncode == 0


def test_wait_mode_spaces_calls_out() -> None:
    bucket = TokenBucket(rate=50, capacity=1)
    with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, tls=False, rate_limit=bucket) as plugin:
        began = time.monotonic()
        for _ in range(6):
            assert echo(plugin) == b"x"
        assert time.monotonic() - began >= 0.09  # 5 waits of 20 ms


def test_bad_mode_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="rate_limit_mode"):
        PluginProcess(ECHO, rate_limit=TokenBucket(rate=1, capacity=1), rate_limit_mode="drop")
