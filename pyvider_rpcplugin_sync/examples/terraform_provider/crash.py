"""Log every provider RPC, and report an exception that escapes one like a Go panic.

Each call is logged at DEBUG (``rpc`` with the gRPC method): with
``PLUGIN_LOG_LEVEL=debug`` and ``TF_LOG=trace`` Terraform's log shows which
RPCs it made, in order.

Terraform 1.11 records a provider's unstructured stderr from a line starting
``panic: `` on (what a Go panic prints) and shows it under "Stack trace from
the terraform-provider-... plugin" when the command fails. An exception is
written so, with the Python traceback, to the real stderr (fd 2, which the
library leaves to the host), then the call fails with INTERNAL: the command
fails, the provider process stays healthy and is shut down as usual.
"""

from __future__ import annotations

import contextlib
import logging
import os
import traceback
from collections.abc import Callable
from typing import Any

import grpc

logger = logging.getLogger(__name__)

SERVICE_PREFIX = "/tfplugin6.Provider/"


class CallReporter(grpc.ServerInterceptor):  # type: ignore[misc]
    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
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
                _write_panic(f"panic: {_describe(exc)} in {name}\n\n{traceback.format_exc()}")
                context.abort(grpc.StatusCode.INTERNAL, f"{name}: {_describe(exc)}")

        return grpc.unary_unary_rpc_method_handler(
            guarded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _write_panic(text: str) -> None:
    data = text.encode("utf-8", "backslashreplace")
    with contextlib.suppress(OSError):  # no host left to tell
        while data:
            data = data[os.write(2, data) :]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
