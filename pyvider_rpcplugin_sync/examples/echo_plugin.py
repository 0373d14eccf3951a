"""The echo example plugin: a unary echo and a server stream.

Uses the default handshake (pyvider-rpcplugin's cookie), so it loads in
either library's host without configuration.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from pyvider_rpcplugin_sync import run_plugin
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc


class EchoService(echo_pb2_grpc.EchoServicer):
    def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.ServicerContext
    ) -> echo_pb2.EchoResponse:
        return echo_pb2.EchoResponse(payload=request.payload)

    def Stream(
        self, request: echo_pb2.StreamRequest, context: grpc.ServicerContext
    ) -> Iterator[echo_pb2.EchoResponse]:
        reply = echo_pb2.EchoResponse(payload=request.payload)
        for _ in range(request.count):
            yield reply


def register(server: grpc.Server) -> None:
    echo_pb2_grpc.add_EchoServicer_to_server(EchoService(), server)


if __name__ == "__main__":
    raise SystemExit(run_plugin(register))
