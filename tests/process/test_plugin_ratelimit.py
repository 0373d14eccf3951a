"""A plugin limited through PLUGIN_RATE_LIMIT_*: excess app calls fail fast, health never does."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from plugin_harness import KV_ENV, module_cmd, run_to_exit, started

from pyvider_rpcplugin_sync._protos import kv_pb2, kv_pb2_grpc

pytestmark = pytest.mark.timeout(60)

KV = module_cmd("pyvider_rpcplugin_sync.examples.kv_plugin")
LIMITED = {
    **KV_ENV,
    "PLUGIN_RATE_LIMIT_ENABLED": "true",
    # One token per 1,000 s: no refill during the test.
    "PLUGIN_RATE_LIMIT_REQUESTS_PER_SECOND": "0.001",
    "PLUGIN_RATE_LIMIT_BURST_CAPACITY": "5",
}


def test_burst_over_capacity_gets_resource_exhausted_and_health_stays_up() -> None:
    with started(KV, LIMITED) as plugin, plugin.channel() as channel:
        kv = kv_pb2_grpc.KVStub(channel)
        codes = []
        for n in range(12):
            try:
                kv.Put(kv_pb2.PutRequest(key=f"k{n}", value=b"v"), timeout=5)
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())
                if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    assert "rate limit exceeded for /proto.KV/Put" in exc.details()
        assert codes == [grpc.StatusCode.OK] * 5 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 7
        health = health_pb2_grpc.HealthStub(channel)
        for _ in range(20):
            reply = health.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        plugin.proc.terminate()
        assert plugin.proc.wait(timeout=5) == 0


def test_invalid_rate_limit_environment_is_a_clear_start_failure() -> None:
    result = run_to_exit(KV, {**LIMITED, "PLUGIN_RATE_LIMIT_REQUESTS_PER_SECOND": "-3"})
    assert result.returncode == 1
    assert "invalid rate limit configuration" in result.stderr
    assert "PLUGIN_RATE_LIMIT_REQUESTS_PER_SECOND" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_rate_limit_environment_fails_even_when_not_enabled() -> None:
    env = {"PLUGIN_RATE_LIMIT_BURST_CAPACITY": "lots"}
    result = run_to_exit(KV, {**LIMITED, "PLUGIN_RATE_LIMIT_ENABLED": "false", **env})
    assert result.returncode == 1
    assert "PLUGIN_RATE_LIMIT_BURST_CAPACITY='lots' is not a number" in result.stderr
    assert "Traceback" not in result.stderr
