"""PluginServer embedded in this process, on real loopback sockets with plain grpcio."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from pyvider_rpcplugin_sync import BrokerTimeout, HandshakeConfig, HandshakeError, PluginServer
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc, goplugin_pb2
from pyvider_rpcplugin_sync.examples import echo_plugin, kv_plugin

pytestmark = pytest.mark.timeout(30)

HANDSHAKE = HandshakeConfig("TEST_COOKIE", "v", (5, 6))
ENV = {"TEST_COOKIE": "v", "PLUGIN_PROTOCOL_VERSIONS": "6,5"}


def target(server: PluginServer) -> str:
    assert server.handshake_line is not None
    line = server.handshake_line
    return f"unix:{line.address}" if line.network == "unix" else line.address


def test_versioned_registrars_pick_the_highest_common_version() -> None:
    calls: list[int] = []

    def register_for(version: int) -> Callable[[grpc.Server], None]:
        def register(server: grpc.Server) -> None:
            calls.append(version)
            echo_plugin.register(server)

        return register

    registrars = {5: register_for(5), 6: register_for(6), 7: register_for(7)}
    with PluginServer(registrars, handshake=HANDSHAKE, environ=ENV) as server:
        assert server.negotiated_version == 6
        assert calls == [6]
        with grpc.insecure_channel(target(server)) as channel:
            stub = echo_pb2_grpc.EchoStub(channel)
            assert stub.Echo(echo_pb2.EchoRequest(payload=b"hi"), timeout=5).payload == b"hi"
            replies = list(stub.Stream(echo_pb2.StreamRequest(count=3, payload=b"s"), timeout=5))
            assert [r.payload for r in replies] == [b"s"] * 3


def test_reflection_lists_app_and_internal_services() -> None:
    with PluginServer(kv_plugin.register, handshake=HANDSHAKE, environ=ENV) as server:
        assert server.service_names == ("proto.KV",)
        with grpc.insecure_channel(target(server)) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            reply = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))
            names = {s.name for s in reply.list_services_response.service}
    assert {"proto.KV", "plugin.GRPCController", "grpc.health.v1.Health"} <= names


def test_cookie_checked_before_anything_binds(tmp_path: Path) -> None:
    env = {**ENV, "TEST_COOKIE": "wrong", "PLUGIN_UNIX_SOCKET_DIR": str(tmp_path)}
    server = PluginServer(kv_plugin.register, handshake=HANDSHAKE, environ=env)
    with pytest.raises(HandshakeError, match="This binary is a plugin"):
        server.start()
    assert list(tmp_path.iterdir()) == []


def test_shutdown_rpc_stops_without_blocking_its_own_handler(tmp_path: Path) -> None:
    env = {**ENV, "PLUGIN_UNIX_SOCKET_DIR": str(tmp_path)}
    server = PluginServer(kv_plugin.register, handshake=HANDSHAKE, environ=env)
    server.start()
    with grpc.insecure_channel(target(server)) as channel:
        shutdown = channel.unary_unary(
            "/plugin.GRPCController/Shutdown",
            request_serializer=goplugin_pb2.Empty.SerializeToString,
            response_deserializer=goplugin_pb2.Empty.FromString,
        )
        assert shutdown(goplugin_pb2.Empty(), timeout=5) == goplugin_pb2.Empty()
    assert server.wait(timeout=5)
    assert list(tmp_path.iterdir()) == []
    server.stop()  # idempotent


def test_stop_from_many_threads_at_once() -> None:
    server = PluginServer(kv_plugin.register, handshake=HANDSHAKE, environ=ENV)
    server.start()
    threads = [threading.Thread(target=server.stop) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert server.wait(timeout=0)
    assert server.address is None


def test_broker_stream_parks_what_the_host_sends_and_streams_what_the_plugin_serves() -> None:
    with PluginServer(kv_plugin.register, handshake=HANDSHAKE, environ=ENV) as server:
        with grpc.insecure_channel(target(server)) as channel:
            outgoing = [goplugin_pb2.ConnInfo(service_id=7, network="unix", address="/x")]
            stream = channel.stream_stream(
                "/plugin.GRPCBroker/StartStream",
                request_serializer=goplugin_pb2.ConnInfo.SerializeToString,
                response_deserializer=goplugin_pb2.ConnInfo.FromString,
            )
            done = threading.Event()

            def requests() -> Iterator[goplugin_pb2.ConnInfo]:
                yield from outgoing
                done.wait(5)

            replies = stream(requests(), timeout=10)
            assert server.broker._claim(7, timeout=5).address == "/x"
            served = server.broker.accept_and_serve(server.broker.next_id(), echo_plugin.register)
            announced = next(iter(replies))
            assert (announced.service_id, announced.network, announced.address) == (
                served.service_id,
                "unix",
                served.address,
            )
            with pytest.raises(BrokerTimeout, match="broker id 99"):
                server.broker.dial(99, timeout=0.1)
            done.set()
            replies.cancel()
        # The host ended the stream: a plugin's broker is single-use, as in go-plugin.
        assert served.wait(timeout=10)
        assert server.broker.closed


def test_a_tcp_port_of_a_plugin_cannot_be_shared() -> None:
    # grpcio sets SO_REUSEPORT by default: two plugins that both found a port free
    # would both bind it and split its connections between them.
    with PluginServer(echo_plugin.register, handshake=HANDSHAKE, environ=ENV, transport="tcp") as s:
        assert s.handshake_line is not None
        port = int(s.handshake_line.address.rsplit(":", 1)[1])
        other = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
        try:
            with pytest.raises(RuntimeError):
                other.add_insecure_port(f"127.0.0.1:{port}")
        finally:
            other.stop(None)
