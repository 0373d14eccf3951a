"""The multiplexed broker between our host and our plugins (``multiplex=True``): real
processes, one socket, yamux streams for the main connection and every brokered one,
knocks, TLS inside each stream; and what a closed session leaves (nothing)."""

from __future__ import annotations

import os
import threading

import grpc
import pytest
from process_helpers import PYTHON, scenario

from pyvider_rpcplugin_sync import HandshakeConfig, PluginProcess
from pyvider_rpcplugin_sync._protos import counter_pb2, counter_pb2_grpc, echo_pb2, echo_pb2_grpc
from pyvider_rpcplugin_sync.examples.counter_plugin import COUNTER_HANDSHAKE

pytestmark = pytest.mark.timeout(60)

COUNTER = [PYTHON, "-m", "pyvider_rpcplugin_sync.examples.counter_plugin"]
BROKER_PLUGIN = scenario("broker_plugin")
HANDSHAKE = HandshakeConfig("BROKER_TEST_COOKIE", "broker", (1,))
MODES = [(tls, transport) for tls in (False, True) for transport in ("unix", "tcp")]
MODE_IDS = [f"{'tls' if tls else 'plain'}-{transport}" for tls, transport in MODES]


class Adder(counter_pb2_grpc.AddHelperServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def Sum(
        self, request: counter_pb2.SumRequest, context: grpc.ServicerContext
    ) -> counter_pb2.SumResponse:
        self.calls.append((request.a, request.b))
        return counter_pb2.SumResponse(r=request.a + request.b)


class HostEcho(echo_pb2_grpc.EchoServicer):
    def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.ServicerContext
    ) -> echo_pb2.EchoResponse:
        return echo_pb2.EchoResponse(payload=b"host:" + request.payload)


def mux_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("mux")}


def echo(plugin: PluginProcess, text: str) -> str:
    reply = plugin.stub.Echo(echo_pb2.EchoRequest(payload=text.encode()), timeout=15)
    return str(reply.payload.decode())


@pytest.mark.parametrize(("tls", "transport"), MODES, ids=MODE_IDS)
def test_counter_plugin_calls_back_over_the_one_connection(tls: bool, transport: str) -> None:
    adder = Adder()
    before = mux_threads()
    with PluginProcess(
        COUNTER,
        handshake=COUNTER_HANDSHAKE,
        stub=counter_pb2_grpc.CounterStub,
        tls=tls,
        transport=transport,
        multiplex=True,
    ) as plugin:
        assert plugin.handshake_line is not None and plugin.handshake_line.multiplex is True
        assert plugin.network == transport
        broker = plugin.broker
        private = set()
        for value in (2, 40, -3):
            add_id = broker.next_id()
            with broker.accept_and_serve(
                add_id, lambda s: counter_pb2_grpc.add_AddHelperServicer_to_server(adder, s)
            ) as served:
                # Whatever the transport, brokered servers listen only on private sockets.
                assert served.network == "unix"
                private.add(os.path.dirname(served.address))
                request = counter_pb2.CounterPutRequest(add_server=add_id, key="k", value=value)
                plugin.stub.Put(request, timeout=15)
        total = plugin.stub.Get(counter_pb2.CounterGetRequest(key="k"), timeout=15).value
        assert mux_threads() - before  # the session's reader, writer, relays
    assert total == 39
    assert adder.calls == [(0, 2), (2, 40), (42, -3)]
    assert plugin.returncode == 0
    assert mux_threads() == before
    assert len(private) == 1 and not os.path.exists(private.pop())


@pytest.mark.parametrize(("tls", "transport"), MODES, ids=MODE_IDS)
def test_host_and_plugin_dial_each_other_by_knock(tls: bool, transport: str) -> None:
    with PluginProcess(
        BROKER_PLUGIN,
        handshake=HANDSHAKE,
        stub=echo_pb2_grpc.EchoStub,
        tls=tls,
        transport=transport,
        multiplex=True,
    ) as plugin:
        broker = plugin.broker
        # Host -> plugin: two brokered servers, each dialed twice (each dial knocks).
        for _ in range(2):
            service_id = int(echo(plugin, "serve"))
            for payload in (b"x", b"y" * 300_000):
                with broker.dial(service_id) as channel:
                    reply = echo_pb2_grpc.EchoStub(channel).Echo(
                        echo_pb2.EchoRequest(payload=payload), timeout=15
                    )
                assert reply.payload == b"brokered:" + payload
        # Plugin -> host.
        host_id = broker.next_id()
        with broker.accept_and_serve(
            host_id, lambda s: echo_pb2_grpc.add_EchoServicer_to_server(HostEcho(), s)
        ):
            assert echo(plugin, f"dial:{host_id}:hello") == "host:hello"
            assert echo(plugin, f"dial:{host_id}:again") == "host:again"
    assert plugin.returncode == 0


def test_a_knock_for_an_id_nobody_serves_fails_the_call() -> None:
    """The acknowledgement carries the error; the dialed channel's calls fail, nothing hangs."""
    with PluginProcess(
        BROKER_PLUGIN, handshake=HANDSHAKE, stub=echo_pb2_grpc.EchoStub, multiplex=True
    ) as plugin:
        with plugin.broker.dial(4242) as channel, pytest.raises(grpc.RpcError) as refused:
            echo_pb2_grpc.EchoStub(channel).Echo(echo_pb2.EchoRequest(payload=b"x"), timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        # The session is unharmed.
        assert echo(plugin, "still") == "still"


def test_reattach_cannot_multiplex() -> None:
    from pyvider_rpcplugin_sync import ReattachConfig

    config = ReattachConfig(network="unix", address="/nonexistent", protocol="grpc", pid=0)
    with pytest.raises(ValueError, match="reattach"):
        PluginProcess.reattach(config, multiplex=True)
