"""GRPCBroker between our host and our plugins: real processes, sockets, grpc and TLS.

Both directions (the host serves a callback the plugin dials; the plugin serves
a brokered server the host dials), plaintext and AutoMTLS, unix and TCP, the
typed errors, and what a closed session leaves (nothing).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import grpc
import pytest
from process_helpers import PYTHON, scenario

from pyvider_rpcplugin_sync import (
    BrokerClosed,
    BrokerError,
    BrokerTimeout,
    CallTimeout,
    HandshakeConfig,
    PluginProcess,
)
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


def add_host_echo(server: grpc.Server) -> None:
    echo_pb2_grpc.add_EchoServicer_to_server(HostEcho(), server)


@pytest.fixture
def broker_plugin(request: pytest.FixtureRequest) -> Iterator[PluginProcess]:
    tls, transport = getattr(request, "param", (True, "unix"))
    with PluginProcess(
        BROKER_PLUGIN,
        handshake=HANDSHAKE,
        stub=echo_pb2_grpc.EchoStub,
        tls=tls,
        transport=transport,
    ) as plugin:
        yield plugin


def echo(plugin: PluginProcess, text: str) -> str:
    reply = plugin.stub.Echo(echo_pb2.EchoRequest(payload=text.encode()), timeout=15)
    return str(reply.payload.decode())


@pytest.mark.parametrize(("tls", "transport"), MODES, ids=MODE_IDS)
def test_counter_plugin_calls_back_into_the_host(tls: bool, transport: str) -> None:
    adder = Adder()
    with PluginProcess(
        COUNTER,
        handshake=COUNTER_HANDSHAKE,
        stub=counter_pb2_grpc.CounterStub,
        tls=tls,
        transport=transport,
    ) as plugin:
        broker = plugin.broker
        for value in (2, 40, -3):
            add_id = broker.next_id()
            with broker.accept_and_serve(
                add_id, lambda s: counter_pb2_grpc.add_AddHelperServicer_to_server(adder, s)
            ) as served:
                assert served.network == transport
                if transport == "unix":
                    # In the session's private socket directory, beside the plugin's socket.
                    assert os.path.dirname(served.address) == os.path.dirname(plugin.address or "")
                request = counter_pb2.CounterPutRequest(add_server=add_id, key="k", value=value)
                plugin.stub.Put(request, timeout=15)
            assert served.stopped
            if transport == "unix":
                assert not os.path.exists(served.address)
        total = plugin.stub.Get(counter_pb2.CounterGetRequest(key="k"), timeout=15).value
    assert total == 39
    assert adder.calls == [(0, 2), (2, 40), (42, -3)]
    assert plugin.returncode == 0


@pytest.mark.parametrize("broker_plugin", MODES, ids=MODE_IDS, indirect=True)
def test_host_dials_a_server_the_plugin_brokers(broker_plugin: PluginProcess) -> None:
    service_id = int(echo(broker_plugin, "serve"))
    with broker_plugin.broker.dial(service_id) as channel:
        reply = echo_pb2_grpc.EchoStub(channel).Echo(echo_pb2.EchoRequest(payload=b"x"), timeout=15)
    assert reply.payload == b"brokered:x"
    # A second server on another id: ids are per side and the servers independent.
    second = int(echo(broker_plugin, "serve"))
    assert second == service_id + 1
    with broker_plugin.broker.dial(second) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        assert stub.Echo(echo_pb2.EchoRequest(payload=b"y"), timeout=15).payload == b"brokered:y"


def test_a_brokered_channel_takes_call_timeout(broker_plugin: PluginProcess) -> None:
    service_id = int(echo(broker_plugin, "serve"))
    with broker_plugin.broker.dial(service_id, call_timeout=0.5) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        began = time.monotonic()
        with pytest.raises(CallTimeout, match="call_timeout=") as raised:
            stub.Echo(echo_pb2.EchoRequest(payload=b"sleep:30"))
        assert time.monotonic() - began < 5.0
        assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
        assert stub.Echo(echo_pb2.EchoRequest(payload=b"sleep:1"), timeout=10).payload == (
            b"brokered:sleep:1"
        )  # the call's own timeout= wins


@pytest.mark.parametrize("broker_plugin", MODES, ids=MODE_IDS, indirect=True)
def test_plugin_dials_a_server_the_host_brokers(broker_plugin: PluginProcess) -> None:
    broker = broker_plugin.broker
    service_id = broker.next_id()
    with broker.accept_and_serve(service_id, add_host_echo):
        assert echo(broker_plugin, f"dial:{service_id}:hello") == "host:hello"


def test_dialing_an_id_nobody_serves_times_out_on_both_sides(
    broker_plugin: PluginProcess,
) -> None:
    with pytest.raises(BrokerTimeout, match="broker id 4242") as caught:
        broker_plugin.broker.dial(4242, timeout=0.2)
    assert caught.value.hint and "accept_and_serve" in caught.value.hint
    with pytest.raises(grpc.RpcError) as remote:
        echo(broker_plugin, "dial:4343:x")
    assert remote.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert remote.value.details().startswith("BrokerTimeout: timeout waiting for connection info")


def test_invalid_and_duplicate_ids_are_refused(broker_plugin: PluginProcess) -> None:
    broker = broker_plugin.broker
    for bad in (-1, 2**32, True, "1"):
        with pytest.raises(BrokerError, match="invalid broker id"):
            broker.dial(bad, timeout=0)  # type: ignore[arg-type]
    service_id = broker.next_id()
    with broker.accept_and_serve(service_id, add_host_echo):
        with pytest.raises(BrokerError, match="already being served") as caught:
            broker.accept_and_serve(service_id, add_host_echo)
        assert caught.value.hint


def test_a_brokered_tls_server_requires_the_plugins_certificate(
    broker_plugin: PluginProcess,
) -> None:
    from pyvider_rpcplugin_sync._transport.tls.certs import generate_identity

    broker = broker_plugin.broker
    service_id = broker.next_id()
    with broker.accept_and_serve(service_id, add_host_echo) as served:
        # The right server certificate, but a stranger's client certificate.
        stranger = generate_identity()
        host_cert = _host_certificate(broker_plugin)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=host_cert,
            private_key=stranger.key_pem,
            certificate_chain=stranger.cert_pem,
        )
        options = (("grpc.ssl_target_name_override", "localhost"),)
        with grpc.secure_channel(f"unix:{served.address}", credentials, options) as channel:
            stub = echo_pb2_grpc.EchoStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                stub.Echo(echo_pb2.EchoRequest(payload=b"x"), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # The plugin, presenting its own certificate, gets through.
        assert echo(broker_plugin, f"dial:{service_id}:ok") == "host:ok"


def _host_certificate(plugin: PluginProcess) -> bytes:
    security = plugin._security
    assert security is not None
    return security.identity.cert_pem


def test_closing_the_session_stops_everything_brokered() -> None:
    plugin = PluginProcess(BROKER_PLUGIN, handshake=HANDSHAKE, stub=echo_pb2_grpc.EchoStub)
    with plugin:
        broker = plugin.broker
        served = broker.accept_and_serve(broker.next_id(), add_host_echo)
        plugin_id = int(echo(plugin, "serve"))
        channel = broker.dial(plugin_id)
        stub = echo_pb2_grpc.EchoStub(channel)
        assert stub.Echo(echo_pb2.EchoRequest(payload=b"a"), timeout=15).payload == b"brokered:a"
    assert broker.closed
    assert served.wait(timeout=0)
    assert not os.path.exists(served.address)
    # A stub kept on a brokered channel: the typed error, not grpc's closed-channel ValueError.
    with pytest.raises(BrokerClosed, match=f"broker id {plugin_id}: the brokered channel"):
        stub.Echo(echo_pb2.EchoRequest(payload=b"b"), timeout=5)
    with pytest.raises(BrokerClosed, match="session has ended") as caught:
        broker.dial(plugin_id)
    assert caught.value.hint
    with pytest.raises(BrokerClosed):
        broker.accept_and_serve(broker.next_id(), add_host_echo)
    assert plugin.returncode == 0
