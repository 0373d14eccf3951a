"""plugin.GRPCController: the host's graceful ``Shutdown`` (protocol.md §4.4)."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from .._constants import CONTROLLER_SERVICE
from .._protos.goplugin_pb2 import Empty


def controller_handler(request_stop: Callable[[], None]) -> grpc.GenericRpcHandler:
    """``Shutdown`` replies at once and asks the server to stop asynchronously.

    grpcio's stop waits for in-flight RPCs, this one included, so stopping
    inside the handler would deadlock; ``request_stop`` must not block.
    """

    def shutdown(request: Empty, context: grpc.ServicerContext) -> Empty:
        request_stop()
        return Empty()

    return grpc.method_handlers_generic_handler(
        CONTROLLER_SERVICE,
        {
            "Shutdown": grpc.unary_unary_rpc_method_handler(
                shutdown,
                request_deserializer=Empty.FromString,
                response_serializer=Empty.SerializeToString,
            )
        },
    )
