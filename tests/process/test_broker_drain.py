"""close() drains the brokered channels the host dialed too, against a real plugin: a
brokered call in flight finishes within ``drain_timeout``; one still running when the
drain ends is cut with ``BrokerClosed``; the brokered channel refuses new calls."""

from __future__ import annotations

import threading
from typing import Any

import grpc
import pytest
from process_helpers import scenario

from pyvider_rpcplugin_sync import BrokerClosed, HandshakeConfig, PluginProcess
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.timeout(60)
BROKER_PLUGIN = scenario("broker_plugin")
HANDSHAKE = HandshakeConfig("BROKER_TEST_COOKIE", "broker", (1,))


def brokered_stub(plugin: PluginProcess) -> tuple[Any, grpc.Channel]:
    service_id = int(plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"serve"), timeout=10).payload)
    channel = plugin.broker.dial(service_id)
    return echo_pb2_grpc.EchoStub(channel), channel


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "automtls"])
def test_a_brokered_call_in_flight_finishes_within_the_drain(tls: bool) -> None:
    plugin = PluginProcess(
        BROKER_PLUGIN, handshake=HANDSHAKE, stub=echo_pb2_grpc.EchoStub, tls=tls, drain_timeout=10
    ).start()
    try:
        stub, channel = brokered_stub(plugin)
        calls = [stub.Echo.future(echo_pb2.EchoRequest(payload=b"sleep:1")) for _ in range(4)]
        assert channel.gate.in_flight() == 4  # type: ignore[attr-defined]
    finally:
        plugin.close()
    assert [call.result().payload for call in calls] == [b"brokered:sleep:1"] * 4
    with pytest.raises(BrokerClosed):
        stub.Echo(echo_pb2.EchoRequest(payload=b"late"))


def test_a_brokered_call_past_the_drain_is_cut() -> None:
    plugin = PluginProcess(
        BROKER_PLUGIN, handshake=HANDSHAKE, stub=echo_pb2_grpc.EchoStub, drain_timeout=0.3
    ).start()
    try:
        stub, _ = brokered_stub(plugin)
        hung = stub.Echo.future(echo_pb2.EchoRequest(payload=b"sleep:30"))
    finally:
        closing = threading.Thread(target=plugin.close)
        closing.start()
        closing.join(30)
    assert not closing.is_alive()
    with pytest.raises(BrokerClosed):
        hung.result(timeout=10)
