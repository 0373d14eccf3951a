"""Plugin side: the server interceptor that feeds a ``CallMetrics`` for the application's
calls and the health checks (``Health/Check``); the library's other services (controller,
stdio, broker, reflection, the health ``Watch`` stream) are not counted."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import grpc

from .._constants import HEALTH_SERVICE, INTERNAL_SERVICES
from .hook import CallMetrics

_clock = time.perf_counter
_HEALTH_CHECK = f"/{HEALTH_SERVICE}/Check"


def _status(context: grpc.ServicerContext, default: grpc.StatusCode) -> grpc.StatusCode:
    # Set by abort() or set_code(); grpc has code(), its type stubs do not.
    code = cast("Any", context).code()
    return code if isinstance(code, grpc.StatusCode) else default


def _unary(metrics: CallMetrics, method: str, behavior: Callable[..., Any]) -> Any:
    def measured(request: Any, context: grpc.ServicerContext) -> Any:
        metrics.started(method)
        began = _clock()
        code = grpc.StatusCode.UNKNOWN  # a handler that raised
        try:
            response = behavior(request, context)
        except BaseException:
            code = _status(context, grpc.StatusCode.UNKNOWN)
            raise
        else:
            code = _status(context, grpc.StatusCode.OK)
            return response
        finally:
            metrics.ended(method, code, _clock() - began)

    return measured


def _streaming(metrics: CallMetrics, method: str, behavior: Callable[..., Any]) -> Any:
    def measured(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        metrics.started(method)
        began = _clock()
        code = grpc.StatusCode.UNKNOWN
        try:
            yield from behavior(request, context)
        except GeneratorExit:
            code = grpc.StatusCode.CANCELLED  # the call ended before the stream did
            raise
        except BaseException:
            code = _status(context, grpc.StatusCode.UNKNOWN)
            raise
        else:
            code = _status(context, grpc.StatusCode.OK)
        finally:
            metrics.ended(method, code, _clock() - began)

    return measured


class MetricsServerInterceptor(grpc.ServerInterceptor):
    """Reports each application call and health check to ``metrics``."""

    def __init__(self, metrics: CallMetrics) -> None:
        self._metrics = metrics

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        details = handler_call_details
        handler = continuation(details)
        method: str = details.method
        counted = method == _HEALTH_CHECK or method[1 : method.rfind("/")] not in INTERNAL_SERVICES
        if handler is None or not counted:
            return handler
        for kind, make, wrap in _KINDS:
            behavior = getattr(handler, kind)
            if behavior is not None:
                return make(
                    wrap(self._metrics, method, behavior),
                    request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer,
                )
        return handler


_KINDS = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler, _unary),
    ("stream_unary", grpc.stream_unary_rpc_method_handler, _unary),
    ("unary_stream", grpc.unary_stream_rpc_method_handler, _streaming),
    ("stream_stream", grpc.stream_stream_rpc_method_handler, _streaming),
)
