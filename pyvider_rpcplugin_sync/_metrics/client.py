"""Host side: the client interceptor that feeds a ``CallMetrics``, and ``measured`` for
the library's own ``ping()``; what a finished client call's status was."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc

from .hook import CallMetrics

T = TypeVar("T")
_clock = time.perf_counter


def final_code(call: Any) -> grpc.StatusCode | None:
    """A finished call's status; None when it failed before reaching the plugin."""
    if call.cancelled():
        return grpc.StatusCode.CANCELLED
    error = call.exception()
    if error is not None and not isinstance(error, grpc.RpcError):
        return None  # grpc's interceptor wrapped a local failure (a closed channel, ...)
    code: grpc.StatusCode | None = call.code()
    return code


def measured(metrics: CallMetrics, method: str, call: Callable[[], T]) -> T:
    """``call()``, reported to ``metrics`` as one call of ``method``."""
    metrics.started(method)
    began = _clock()
    code: grpc.StatusCode | None = grpc.StatusCode.OK
    try:
        return call()
    except grpc.RpcError as exc:
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        raise
    except BaseException:
        code = None
        raise
    finally:
        metrics.ended(method, code, _clock() - began)


class MetricsClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Every application call, each shape: started now, ended when grpc says it is
    done (a stream: when it ends, is cancelled or is dropped)."""

    def __init__(self, metrics: CallMetrics) -> None:
        self._metrics = metrics

    def _call(self, continuation: Any, details: Any, request: Any) -> Any:
        metrics, method = self._metrics, details.method
        metrics.started(method)
        began = _clock()
        try:
            outcome = continuation(details, request)
        except BaseException:
            metrics.ended(method, None, _clock() - began)
            raise

        def done(call: Any) -> None:
            metrics.ended(method, final_code(call), _clock() - began)

        outcome.add_done_callback(done)
        return outcome

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return self._call(continuation, client_call_details, request)

    def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return self._call(continuation, client_call_details, request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return self._call(continuation, client_call_details, request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return self._call(continuation, client_call_details, request_iterator)
