"""An echo plugin that uses its session's broker, driven by magic Echo payloads.

- ``serve``: serves the echo service on a new brokered id; replies with the id (that
  server's Echo of ``sleep:SECONDS`` replies after that long, or when cancelled)
- ``dial:ID:TEXT``: dials the host's brokered server ID, calls its Echo with TEXT,
  replies with the answer; a broker error aborts with FAILED_PRECONDITION and
  ``<ErrorClass>: <message>``
- anything else is echoed back
"""

from __future__ import annotations

import threading

import grpc

from pyvider_rpcplugin_sync import Broker, BrokerError, HandshakeConfig, run_plugin
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

HANDSHAKE = HandshakeConfig("BROKER_TEST_COOKIE", "broker", (1,))


class PlainEcho(echo_pb2_grpc.EchoServicer):
    def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.ServicerContext
    ) -> echo_pb2.EchoResponse:
        if request.payload.startswith(b"sleep:"):
            ended = threading.Event()
            context.add_callback(ended.set)
            ended.wait(float(request.payload[6:]))
        return echo_pb2.EchoResponse(payload=b"brokered:" + request.payload)


class BrokerEcho(echo_pb2_grpc.EchoServicer):
    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.ServicerContext
    ) -> echo_pb2.EchoResponse:
        text = request.payload.decode()
        if text == "serve":
            service_id = self.broker.next_id()
            self.broker.accept_and_serve(
                service_id,
                lambda server: echo_pb2_grpc.add_EchoServicer_to_server(PlainEcho(), server),
            )
            return echo_pb2.EchoResponse(payload=str(service_id).encode())
        if text.startswith("dial:"):
            _, service_id, payload = text.split(":", 2)
            try:
                with self.broker.dial(int(service_id), timeout=1.0) as channel:
                    reply = echo_pb2_grpc.EchoStub(channel).Echo(
                        echo_pb2.EchoRequest(payload=payload.encode()), timeout=10
                    )
            except BrokerError as exc:
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"{type(exc).__name__}: {exc}")
            return reply
        return echo_pb2.EchoResponse(payload=request.payload)


def register(server: grpc.Server, broker: Broker) -> None:
    echo_pb2_grpc.add_EchoServicer_to_server(BrokerEcho(broker), server)


if __name__ == "__main__":
    raise SystemExit(run_plugin(register, handshake=HANDSHAKE))
