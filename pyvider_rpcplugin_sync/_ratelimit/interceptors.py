"""gRPC interceptors that apply a TokenBucket: server side (plugin) and client side (host).

Internal go-plugin services (health, controller, stdio, broker, reflection) are
never limited.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import grpc

from .._constants import DENIAL_LOG_INTERVAL, INTERNAL_SERVICES, RATE_LIMIT_MODES
from .._errors import RateLimited
from .bucket import TokenBucket

logger = logging.getLogger("pyvider_rpcplugin_sync.ratelimit")


# --- gRPC interceptors -------------------------------------------------------------


def _service_of(method: str) -> str:
    """``/pkg.Service/Method`` -> ``pkg.Service``."""
    return method[1 : method.rfind("/")]


def _describe(bucket: TokenBucket) -> str:
    return f"{bucket.rate:g} requests/s, burst {bucket.capacity:g}"


def _check_call_bucket(bucket: TokenBucket, what: str) -> None:
    if bucket.capacity < 1:
        raise ValueError(f"{what} has capacity {bucket.capacity:g}; a call needs 1 token")


class _DenialLog:
    """Counts denials; writes a log line at most once per interval (thread-safe)."""

    def __init__(self, clock: Callable[[], float], interval: float) -> None:
        self._clock = clock
        self._interval = interval
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._next_line = -math.inf
        self.total = 0

    def record(self, method: str) -> None:
        with self._lock:
            self.total += 1
            self._counts[method] = self._counts.get(method, 0) + 1
            now = self._clock()
            if now < self._next_line:
                return
            counts, self._counts = self._counts, {}
            self._next_line = now + self._interval
        # Log outside the lock: handlers do I/O.
        detail = ", ".join(f"{name}: {count}" for name, count in sorted(counts.items()))
        logger.warning(
            "rate limit exceeded: denied %d call(s) since the last report (%s)",
            sum(counts.values()),
            detail,
        )


def _deny_handler(handler: Any, message: str) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler of the same kind as ``handler`` that aborts with RESOURCE_EXHAUSTED."""

    def deny(_request: Any, context: grpc.ServicerContext) -> Any:
        # abort() raises; grpc turns it into the status for every handler kind.
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, message)

    # The request is never read: no deserializer, so a denial costs no parsing.
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny)
    return grpc.unary_unary_rpc_method_handler(deny)


class RateLimitServerInterceptor(grpc.ServerInterceptor):
    """Plugin side: app RPCs over the limit fail fast with RESOURCE_EXHAUSTED.

    A method listed in ``per_method`` (full path ``/pkg.Service/Method``) uses
    only its own bucket; others use ``bucket`` (None: not limited). go-plugin's
    internal services and reflection are never limited.
    """

    def __init__(
        self,
        bucket: TokenBucket | None,
        *,
        per_method: Mapping[str, TokenBucket] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._default = bucket
        self._per_method = dict(per_method or {})
        if bucket is not None:
            _check_call_bucket(bucket, "the rate limit bucket")
        for method, method_bucket in self._per_method.items():
            if not (method.startswith("/") and method.count("/") == 2):
                raise ValueError(f"per_method key {method!r} is not a /pkg.Service/Method path")
            if _service_of(method) in INTERNAL_SERVICES:
                raise ValueError(f"{method} belongs to an internal service; it is never limited")
            _check_call_bucket(method_bucket, f"the bucket for {method}")
        self._denials = _DenialLog(clock, DENIAL_LOG_INTERVAL)

    @property
    def denied(self) -> int:
        """Calls denied since this interceptor was made."""
        return self._denials.total

    def intercept_service(
        self, continuation: Callable[[Any], Any], handler_call_details: Any
    ) -> Any:
        details = handler_call_details
        handler = continuation(details)
        method: str = details.method
        bucket = self._per_method.get(method, self._default)
        if (
            handler is None  # unknown method: grpc answers UNIMPLEMENTED, no token spent
            or bucket is None
            or _service_of(method) in INTERNAL_SERVICES
            or bucket.try_acquire()
        ):
            return handler
        self._denials.record(method)
        return _deny_handler(
            handler, f"rate limit exceeded for {method}: {_describe(bucket)}; retry later"
        )


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: bool | None
    compression: Any


class RateLimitClientInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Host side, for ``grpc.intercept_channel``: each app call takes a token first.

    ``mode="wait"`` waits for a token, at most the call's own timeout (which
    then shrinks by the time waited); ``mode="fail"`` raises
    ``RateLimited`` at once. Internal-service calls are never limited.
    The wait happens in the calling thread, also for ``.future()`` calls.
    """

    def __init__(self, bucket: TokenBucket, mode: str = "wait") -> None:
        if mode not in RATE_LIMIT_MODES:
            raise ValueError(f"rate_limit_mode must be 'wait' or 'fail', got {mode!r}")
        _check_call_bucket(bucket, "the rate limit bucket")
        self._bucket = bucket
        self._wait = mode == "wait"

    def _admit(self, details: Any) -> Any:
        """Take a token for the call; return the details to continue with."""
        method: str = details.method
        if _service_of(method) in INTERNAL_SERVICES:
            return details
        if not self._wait:
            if not self._bucket.try_acquire():
                raise RateLimited(
                    f"rate limit exceeded for {method}: {_describe(self._bucket)}",
                    hint="make calls less often, or use rate_limit_mode='wait'",
                )
            return details
        timeout: float | None = details.timeout
        try:
            waited = self._bucket.acquire(1, timeout)
        except RateLimited as error:
            raise RateLimited(f"{method}: {error.message}", hint=error.hint) from None
        if timeout is None or waited <= 0:
            return details
        # The call's deadline covers the wait for a token, not just the RPC.
        return _CallDetails(
            details.method,
            max(timeout - waited, 0.0),
            details.metadata,
            details.credentials,
            details.wait_for_ready,
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._admit(client_call_details), request)

    def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return continuation(self._admit(client_call_details), request)

    def intercept_stream_unary(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._admit(client_call_details), request_iterator)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        return continuation(self._admit(client_call_details), request_iterator)
