"""Channels handed to users: the one call frame of the application's calls.

Stubs keep the multicallables of the channel they were built on. ``GuardedChannel``
wraps each multicallable in one thin call frame (``benchmarks/bench_unary.py``
measures it against raw grpcio). This is not a grpc interceptor: no per-call
objects, no continuation, no metadata copy. The frame does four things:

- **deadlines**: a unary or stream-unary call the caller gave no ``timeout=`` gets
  ``call_timeout`` as grpc's own per-call deadline (exact, unlike a service-config
  timer); response streams get only the caller's ``timeout=``. A call that runs out
  raises ``CallTimeout``, which is also grpc's ``RpcError`` with
  ``DEADLINE_EXCEEDED``;
- **counting**: unary, stream-unary and ``future()`` calls are counted in flight by
  the channel's ``CallGate`` (two ``itertools.count`` steps: atomic, no lock), so
  that ``close()`` can drain them;
- **refusing**: once the gate is closed a new call raises the owner's error at once;
- **translating**: a call that fails because the plugin (or, for a brokered channel,
  the broker's session) is closed or dead raises the library's typed error. After
  ``close()`` grpc's closed channel raises a bare ``ValueError``, and a call racing
  the plugin's death gets ``UNAVAILABLE`` or ``CANCELLED`` before the death watch
  has noticed; only then is the owner's ``translate`` asked what the failure means.

Every call shape is guarded the same way, with or without the application's
interceptors: unary calls, ``with_call``, ``future()`` results and the response
iterators of streams.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc

from .._constants import DEFAULT_CALL_TIMEOUT
from .._errors import RPCPluginError
from .gate import CallGate

# Given the exception of a failed call: the typed error it means (PluginClosed,
# BrokerClosed), or None when it is the call's own failure.
Translate = Callable[[BaseException], RPCPluginError | None]

# Status codes of calls cut by a close() or by the plugin's death.
CUT_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
_DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED


class CallTimeout(RPCPluginError, grpc.RpcError):
    """The call ran out of its deadline (``call_timeout=`` or the call's ``timeout=``).

    Also the ``grpc.RpcError`` grpc raised: ``code()`` is ``DEADLINE_EXCEEDED``;
    ``details()`` and the metadata are grpc's (``rpc_error`` is grpc's own error).
    """

    def __init__(self, message: str, *, hint: str | None = None, rpc_error: Any = None) -> None:
        super().__init__(message, hint=hint)
        self.rpc_error = rpc_error

    def code(self) -> grpc.StatusCode:
        return _DEADLINE

    def details(self) -> str | None:
        details = getattr(self.rpc_error, "details", None)
        text = details() if callable(details) else "Deadline Exceeded"
        return None if text is None else str(text)

    def initial_metadata(self) -> Any:
        return _delegate(self.rpc_error, "initial_metadata")

    def trailing_metadata(self) -> Any:
        return _delegate(self.rpc_error, "trailing_metadata")

    def debug_error_string(self) -> Any:
        return _delegate(self.rpc_error, "debug_error_string")


def _delegate(target: object, name: str) -> Any:
    method = getattr(target, name, None)
    return method() if callable(method) else None


def may_mean_closed(exc: BaseException) -> bool:
    """Cheap first test: could this failure come from a closed channel or a dead plugin?

    grpc raises ``ValueError`` for a call on a closed channel; whether the channel
    was closed is the owner's to say, not the message's.
    """
    if isinstance(exc, grpc.RpcError):
        code = getattr(exc, "code", None)
        return callable(code) and code() in CUT_CODES
    return isinstance(exc, ValueError)


def check_call_timeout(value: float | None, name: str = "call_timeout") -> float | None:
    """``value`` as seconds, or None for no deadline; a ValueError unless above 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be seconds above 0, or None for none; not {value!r}")
    return float(value)


def _never_closed() -> RPCPluginError:
    return RPCPluginError("the channel is closed")


class GuardedChannel(grpc.Channel):
    """A ``grpc.Channel`` delegating to ``inner``; its multicallables are call frames.

    ``call_timeout``: the deadline of unary and stream-unary calls made without
    ``timeout=`` (None: none). ``gate``: the owner's ``CallGate`` (a fresh one if none).
    """

    def __init__(
        self,
        inner: grpc.Channel,
        translate: Translate,
        *,
        call_timeout: float | None = DEFAULT_CALL_TIMEOUT,
        gate: CallGate | None = None,
    ) -> None:
        self._inner = inner
        self._translate = translate
        self._call_timeout = check_call_timeout(call_timeout)
        self.gate = gate if gate is not None else CallGate(_never_closed)

    def _frame(self, cls: type[_Guarded], method: str, inner: Any) -> Any:
        return cls(inner, self._translate, self.gate, method, self._call_timeout)

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        inner = self._inner.unary_unary(method, *args, **kwargs)
        return self._frame(_UnaryUnary, method, inner)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        inner = self._inner.unary_stream(method, *args, **kwargs)
        return self._frame(_Streaming, method, inner)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        inner = self._inner.stream_unary(method, *args, **kwargs)
        return self._frame(_UnaryUnary, method, inner)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        inner = self._inner.stream_stream(method, *args, **kwargs)
        return self._frame(_Streaming, method, inner)

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
    __slots__ = ("_finished", "_gate", "_inner", "_method", "_started", "_timeout", "_translate")

    def __init__(
        self,
        inner: Any,
        translate: Translate,
        gate: CallGate,
        method: str,
        timeout: float | None,
    ) -> None:
        self._inner = inner
        self._translate = translate
        self._gate = gate
        self._started = gate.started
        self._finished = gate.finished
        self._method = method
        self._timeout = timeout  # applied when the caller gives none (unary shapes only)

    def _failure(self, exc: BaseException, caller_timeout: float | None) -> BaseException | None:
        """The typed error a failed call raises, or None: grpc's own, raised as it is."""
        if may_mean_closed(exc):
            return self._translate(exc)
        code = getattr(exc, "code", None)
        if isinstance(exc, grpc.RpcError) and callable(code) and code() is _DEADLINE:
            return self._timed_out(exc, caller_timeout)
        return None

    def _timed_out(self, exc: grpc.RpcError, caller_timeout: float | None) -> CallTimeout | None:
        if caller_timeout is not None:
            return CallTimeout(
                f"{self._method} ran out of its deadline ({caller_timeout:g} s, its timeout=)",
                hint="pass a longer timeout= to this call",
                rpc_error=exc,
            )
        if self._timeout is None:
            return None  # no deadline was set here: the plugin's own status
        return CallTimeout(
            f"{self._method} ran out of its deadline ({self._timeout:g} s, call_timeout=)",
            hint="pass timeout= to this call, or a larger call_timeout= (None for none)",
            rpc_error=exc,
        )


class _UnaryUnary(_Guarded):
    """Unary or stream-unary: ``__call__``, ``with_call`` and ``future``, counted."""

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
        next(self._started)
        try:
            if not self._gate.open:
                raise self._gate.refusal()
            return self._inner(
                request,
                self._timeout if timeout is None else timeout,
                metadata,
                credentials,
                wait_for_ready,
                compression,
            )
        except (ValueError, grpc.RpcError) as exc:
            error = self._failure(exc, timeout)
            if error is None:
                raise
            raise error from None
        finally:
            next(self._finished)
            if not self._gate.open:
                self._gate.left()

    def with_call(  # noqa: PLR0917 - grpc's signature
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> Any:
        next(self._started)
        try:
            if not self._gate.open:
                raise self._gate.refusal()
            return self._inner.with_call(
                request,
                self._timeout if timeout is None else timeout,
                metadata,
                credentials,
                wait_for_ready,
                compression,
            )
        except (ValueError, grpc.RpcError) as exc:
            error = self._failure(exc, timeout)
            if error is None:
                raise
            raise error from None
        finally:
            next(self._finished)
            if not self._gate.open:
                self._gate.left()

    def future(  # noqa: PLR0917 - grpc's signature
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: bool | None = None,
        compression: Any = None,
    ) -> Any:
        gate = self._gate
        next(self._started)
        try:
            if not gate.open:
                raise gate.refusal()
            future = self._inner.future(
                request,
                self._timeout if timeout is None else timeout,
                metadata,
                credentials,
                wait_for_ready,
                compression,
            )
        except BaseException as exc:
            self._end()
            error = self._failure(exc, timeout) if isinstance(exc, ValueError) else None
            if error is None:
                raise
            raise error from None
        future.add_done_callback(lambda _done: self._end())  # pyright: ignore[reportUnknownLambdaType]
        return _Result(future, self._translate, gate, self._method, self._timeout, timeout)

    def _end(self) -> None:
        next(self._finished)
        if not self._gate.open:
            self._gate.left()


class _Streaming(_Guarded):
    """Unary-stream or stream-stream: the call, and then each message of its iterator.

    Refused once the gate is closed, not counted (a watch stream may run for hours),
    and given no deadline but the caller's ``timeout=``. The call itself fails on a
    closed channel (or, behind an interceptor, at the first message); a stream cut by
    the plugin's death fails in ``next``.
    """

    __slots__ = ()

    def __call__(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not self._gate.open:
            raise self._gate.refusal()
        caller_timeout = kwargs.get("timeout", args[0] if args else None)
        try:
            call = self._inner(request, *args, **kwargs)
        except ValueError as exc:
            error = self._failure(exc, caller_timeout)
            if error is None:
                raise
            raise error from None
        return _Result(call, self._translate, self._gate, self._method, None, caller_timeout)


class _Result(_Guarded):
    """A call's future or response iterator; everything else is the call's own."""

    __slots__ = ("_caller_timeout",)

    def __init__(  # noqa: PLR0917
        self,
        inner: Any,
        translate: Translate,
        gate: CallGate,
        method: str,
        timeout: float | None,
        caller_timeout: float | None,
    ) -> None:
        super().__init__(inner, translate, gate, method, timeout)
        self._caller_timeout = caller_timeout

    def result(self, timeout: float | None = None) -> Any:
        try:
            return self._inner.result(timeout)
        except (ValueError, grpc.RpcError) as exc:
            error = self._failure(exc, self._caller_timeout)
            if error is None:
                raise
            raise error from None

    def __iter__(self) -> _Result:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._inner)
        except (ValueError, grpc.RpcError) as exc:
            error = self._failure(exc, self._caller_timeout)
            if error is None:
                raise
            raise error from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
