"""plugin.GRPCController: the host's graceful ``Shutdown``.

The wire is in docs/protocol.md, "GRPCController and the order of reply and GOAWAY".
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from .._constants import CONTROLLER_SERVICE
from .._protos.goplugin_pb2 import Empty


def controller_handler(request_stop: Callable[[], None]) -> grpc.GenericRpcHandler:
    """``Shutdown`` replies, then asks the server to stop asynchronously.

    The stop is requested only once the reply has left: grpcio sends its
    GOAWAY as soon as a stop begins, and h2-based hosts (grpclib) drop every
    frame that follows a GOAWAY, so a stop requested inside the handler loses
    the reply. grpcio runs the call's callbacks when the call is complete (reply
    and status sent); when the call has already ended, the stop is requested at
    once. ``request_stop`` must not block: it runs on grpc's serving thread.
    """

    def shutdown(request: Empty, context: grpc.ServicerContext) -> Empty:
        if not context.add_callback(request_stop):
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
