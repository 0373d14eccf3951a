"""Channels handed to users: a call that fails because the plugin (or, for a brokered
channel, the broker's session) is closed or dead raises the library's typed error.

Stubs keep the multicallables of the channel they were built on. After ``close()``
grpc's closed channel raises a bare ``ValueError``, and a call racing the plugin's
death gets ``UNAVAILABLE`` or ``CANCELLED`` before the death watch has noticed.
``GuardedChannel`` wraps each multicallable in one thin call frame whose ``try``
costs nothing until something fails; only then is the owner's ``translate``
asked what the failure means (``benchmarks/bench_unary.py`` measures the frame
against raw grpcio). This is not a grpc interceptor: no per-call objects, no
continuation, no metadata copy. Every call shape is guarded the same way, with
or without the application's interceptors: unary calls, ``with_call``,
``future()`` results and the response iterators of streams.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from .._errors import RPCPluginError

# Given the exception of a failed call: the typed error it means (PluginClosed,
# BrokerClosed), or None when it is the call's own failure.
Translate = Callable[[BaseException], RPCPluginError | None]

# Status codes of calls cut by a close() or by the plugin's death.
CUT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})


def may_mean_closed(exc: BaseException) -> bool:
    """Cheap first test: could this failure come from a closed channel or a dead plugin?

    grpc raises ``ValueError`` for a call on a closed channel; whether the channel
    was closed is the owner's to say, not the message's.
    """
    if isinstance(exc, grpc.RpcError):
        code = getattr(exc, "code", None)
        return callable(code) and code() in CUT_CODES
    return isinstance(exc, ValueError)


class GuardedChannel(grpc.Channel):  # type: ignore[misc]
    """A ``grpc.Channel`` delegating to ``inner``; its multicallables translate closures."""

    def __init__(self, inner: grpc.Channel, translate: Translate) -> None:
        self._inner = inner
        self._translate = translate

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _UnaryUnary(self._inner.unary_unary(method, *args, **kwargs), self._translate)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Streaming(self._inner.unary_stream(method, *args, **kwargs), self._translate)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _UnaryUnary(self._inner.stream_unary(method, *args, **kwargs), self._translate)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Streaming(self._inner.stream_stream(method, *args, **kwargs), self._translate)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        self._inner.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Any) -> None:
        self._inner.unsubscribe(callback)

    def close(self) -> None:
        self._inner.close()

    def __enter__(self) -> GuardedChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Guarded:
    __slots__ = ("_inner", "_translate")

    def __init__(self, inner: Any, translate: Translate) -> None:
        self._inner = inner
        self._translate = translate

    def _closed(self, exc: BaseException) -> RPCPluginError | None:
        return self._translate(exc) if may_mean_closed(exc) else None


class _UnaryUnary(_Guarded):
    """Unary or stream-unary: ``__call__``, ``with_call`` and ``future``."""

    __slots__ = ()

    def __call__(  # noqa: PLR0917 - grpc's signature, passed on positionally (fastest)
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> Any:
        try:
            return self._inner(request, timeout, metadata, credentials, wait_for_ready, compression)
        except (ValueError, grpc.RpcError) as exc:
            closed = self._closed(exc)
            if closed is None:
                raise
            raise closed from None

    def with_call(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._inner.with_call(request, *args, **kwargs)
        except (ValueError, grpc.RpcError) as exc:
            closed = self._closed(exc)
            if closed is None:
                raise
            raise closed from None

    def future(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return _Result(self._inner.future(request, *args, **kwargs), self._translate)
        except ValueError as exc:
            closed = self._closed(exc)
            if closed is None:
                raise
            raise closed from None


class _Streaming(_Guarded):
    """Unary-stream or stream-stream: the call, and then each message of its iterator.

    The call itself fails on a closed channel (or, behind an interceptor, at the
    first message); a stream cut by the plugin's death fails in ``next``.
    """

    __slots__ = ()

    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return _Result(self._inner(request, *args, **kwargs), self._translate)
        except ValueError as exc:
            closed = self._closed(exc)
            if closed is None:
                raise
            raise closed from None


class _Result(_Guarded):
    """A call's future or response iterator; everything else is the call's own."""

    __slots__ = ()

    def result(self, timeout: float | None = None) -> Any:
        try:
            return self._inner.result(timeout)
        except (ValueError, grpc.RpcError) as exc:
            closed = self._closed(exc)
            if closed is None:
                raise
            raise closed from None

    def __iter__(self) -> _Result:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._inner)
        except (ValueError, grpc.RpcError) as exc:
            closed = self._closed(exc)
            if closed is None:
                raise
            raise closed from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
