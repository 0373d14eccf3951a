"""The echo plugin with brokered calls, for ``bench_broker``.

``Echo`` payloads: ``serve`` serves the echo service on a new broker id and answers
the id; ``cb:ID:DATA`` calls the host's brokered echo server ID with DATA (the
channel is dialed once per id and kept) and answers its reply; anything else is
echoed.
"""

from __future__ import annotations

import threading

import grpc

from pyvider_rpcplugin_sync import Broker, HandshakeConfig, run_plugin
from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc, echo_plugin

HANDSHAKE = HandshakeConfig("BENCH_BROKER_PLUGIN", "bench", (1,))


class BrokerEcho(echo_plugin.EchoService):
    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.stubs: dict[int, echo_pb2_grpc.EchoStub] = {}
        self.lock = threading.Lock()

    def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.ServicerContext
    ) -> echo_pb2.EchoResponse:
        payload = request.payload
        if payload.startswith(b"cb:"):
            _, host_id, data = payload.split(b":", 2)
            reply: echo_pb2.EchoResponse = self.host_stub(int(host_id)).Echo(
                echo_pb2.EchoRequest(payload=data), timeout=10
            )
            return reply
        if payload == b"serve":
            service_id = self.broker.next_id()
            self.broker.accept_and_serve(service_id, echo_plugin.register)
            return echo_pb2.EchoResponse(payload=str(service_id).encode())
        return echo_pb2.EchoResponse(payload=payload)

    def host_stub(self, service_id: int) -> echo_pb2_grpc.EchoStub:
        with self.lock:
            stub = self.stubs.get(service_id)
            if stub is None:
                stub = self.stubs[service_id] = echo_pb2_grpc.EchoStub(self.broker.dial(service_id))
            return stub


def register(server: grpc.Server, broker: Broker) -> None:
    echo_pb2_grpc.add_EchoServicer_to_server(BrokerEcho(broker), server)


if __name__ == "__main__":
    raise SystemExit(run_plugin(register, handshake=HANDSHAKE))
