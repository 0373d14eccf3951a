"""Log every provider RPC, and hand an exception that escapes one to Terraform with its traceback.

Each call is logged at DEBUG (``rpc`` with the gRPC method): with
``PLUGIN_LOG_LEVEL=debug`` and ``TF_LOG=trace`` Terraform's log shows which
RPCs it made, in order.

An exception fails the call with INTERNAL and the Python traceback in the
status message, which Terraform prints in its "Plugin error"; the same goes
to the provider's log as an hclog ERROR line. The message travels with the
error itself: Terraform 1.11 also collects a Go-style ``panic:`` report from
a provider's stderr, but after a failed run it prints those before it stops
the provider, so such a report can lose the race with the command's end.
The command fails; the provider process stays healthy and is shut down as
usual.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable
from typing import Any

import grpc

logger = logging.getLogger(__name__)

SERVICE_PREFIX = "/tfplugin6.Provider/"
# gRPC carries the status message in a header: keep it well under header limits.
MAX_TRACEBACK_CHARS = 8000
MAX_SUMMARY_CHARS = 500


class CallReporter(grpc.ServerInterceptor):
    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        logger.debug("rpc %s", method, extra={"method": method})
        if handler is None or handler.unary_unary is None or not method.startswith(SERVICE_PREFIX):
            return handler
        behavior = handler.unary_unary
        name = method.removeprefix(SERVICE_PREFIX)

        def guarded(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return behavior(request, context)
            except Exception as exc:
                logger.error("%s failed", name, exc_info=True)
                context.abort(grpc.StatusCode.INTERNAL, crash_message(name, exc))

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def crash_message(method: str, exc: BaseException) -> str:
    """``Method: Type: message`` (first line), a blank line, the traceback (its end, if long)."""
    summary = _shorten(f"{method}: {type(exc).__name__}: {exc}".splitlines()[0], MAX_SUMMARY_CHARS)
    text = "".join(traceback.format_exception(exc))
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "...\n" + text[-MAX_TRACEBACK_CHARS:]
    return f"{summary}\n\n{text}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
