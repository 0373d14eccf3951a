"""The rpcplugin_server fixture (pyvider_rpcplugin_sync.testing.serve_in_process)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pyvider_rpcplugin_sync import HandshakeConfig, ProtocolVersionError
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc, kv_pb2, kv_pb2_grpc
from pyvider_rpcplugin_sync.examples import echo_plugin, kv_plugin
from pyvider_rpcplugin_sync.testing import InProcessPlugin, serve_in_process

pytestmark = pytest.mark.timeout(30)
Serve = Callable[..., InProcessPlugin]


@pytest.mark.parametrize("tls", [False, True])
def test_serves_a_registrar_with_stubs_on_a_real_channel(
    rpcplugin_server: Serve, tls: bool
) -> None:
    plugin = rpcplugin_server(
        kv_plugin.register, handshake=kv_plugin.KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub, tls=tls
    )
    plugin.stub.Put(kv_pb2.PutRequest(key="fixture", value=b"works"), timeout=5)
    assert plugin.stub.Get(kv_pb2.GetRequest(key="fixture"), timeout=5).value == b"works"
    assert plugin.ping()
    line = plugin.handshake_line
    assert line.network == "unix" and os.path.exists(line.address)
    assert bool(line.server_cert) is tls  # AutoMTLS ran: the server's cert came back
    assert plugin.negotiated_version == 1


def test_internal_services_are_served_too(rpcplugin_server: Serve) -> None:
    plugin = rpcplugin_server(echo_plugin.register)
    stub = plugin.make_stub(reflection_pb2_grpc.ServerReflectionStub)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    reply = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))
    names = {s.name for s in reply.list_services_response.service}
    assert {"plugin.GRPCController", "plugin.GRPCStdio", "grpc.health.v1.Health"} <= names


def test_versions_are_negotiated_as_with_a_host(rpcplugin_server: Serve) -> None:
    handshake = HandshakeConfig("K", "V", (2, 3))
    versions = {1: echo_plugin.register, 3: echo_plugin.register}
    assert rpcplugin_server(versions, handshake=handshake).negotiated_version == 3
    with pytest.raises(ProtocolVersionError):
        rpcplugin_server({4: echo_plugin.register}, handshake=handshake)


def test_close_stops_the_server_and_removes_its_socket() -> None:
    with serve_in_process(echo_plugin.register, stub=echo_pb2_grpc.EchoStub) as plugin:
        reply = plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"x"), timeout=5)
        assert reply.payload == b"x"
        socket_dir = os.path.dirname(plugin.handshake_line.address)
    assert not os.path.exists(socket_dir)
    assert plugin.server.wait(0)  # stopped
    plugin.close()  # idempotent


def test_host_and_server_interceptors_and_message_size(rpcplugin_server: Serve) -> None:
    seen: list[str] = []

    class Recorder(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            seen.append(details.method)
            return continuation(details, request)

    class Refuser(grpc.ServerInterceptor):  # type: ignore[misc]
        def intercept_service(self, continuation: Any, details: Any) -> Any:
            if dict(details.invocation_metadata).get("refuse"):
                return None  # UNIMPLEMENTED
            return continuation(details)

    plugin = rpcplugin_server(
        echo_plugin.register,
        stub=echo_pb2_grpc.EchoStub,
        interceptors=[Recorder()],
        server_interceptors=[Refuser()],
        max_message_size=1024,
    )
    assert plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"ok"), timeout=5).payload == b"ok"
    with pytest.raises(grpc.RpcError) as refused:
        plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"x"), metadata=[("refuse", "1")], timeout=5)
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    with pytest.raises(grpc.RpcError) as too_big:
        plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"x" * 2048), timeout=5)
    assert too_big.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(seen) == 3


def test_no_stub_class_is_a_clear_error(rpcplugin_server: Serve) -> None:
    plugin = rpcplugin_server(echo_plugin.register)
    with pytest.raises(AttributeError, match="stub="):
        _ = plugin.stub
