"""The host's view of a plugin's output, and the two streams it keeps open.

- ``StderrLog``: each stderr line becomes a log record on the plugin's
  logger, hclog JSON parsed leniently (docs/protocol.md, "stderr and hclog"), Python tracebacks and
  Go panics at ERROR; a line that arrives both on the stderr pipe and over
  ``StreamStdio`` (our plugins send plain stderr text both ways) is logged once;
- ``StdioStream``: ``plugin.GRPCStdio/StreamStdio`` read in a daemon thread,
  data forwarded to callables or the plugin's logger (§4.5).

The broker's ``StartStream`` lives in ``_services/broker.py``.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc

from .._constants import STDIO_SERVICE
from .._protocol.hclog import LEVEL_NAMES, parse_line

logger = logging.getLogger("pyvider_rpcplugin_sync.host")

StdioSink = Callable[[bytes], None]

_INTERPRETER = re.compile(r"^(python[0-9.]*|pypy[0-9.]*|sh|bash)$")

# LogRecord attributes an ``extra`` key must not overwrite (logging raises KeyError).
_RESERVED = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_PREFIXES = (
    *((f"[{name.upper()}]", level) for name, level in LEVEL_NAMES.items()),
    ("[WARNING]", logging.WARNING),
    ("[ERR]", logging.ERROR),
)
# go-plugin >= 1.7: after a Go panic, untagged lines are errors (the stack trace).
_PANIC_STARTS = ("panic: ", "fatal error: ")
# A Python traceback (a crash, or an exception printed by the plugin) is an error too:
# from one of these lines through the first unindented line (the exception itself).
_TRACEBACK_STARTS = (
    "Traceback (most recent call last):",
    "During handling of the above exception",
    "The above exception was the direct cause",
    "Exception in thread ",
)
# Lines seen from one source (pipe or StreamStdio) and not yet from the other.
_PENDING_LINES = 256
_PIPE, _STDIO = 0, 1
# Codes that just mean "the stream is over" (plugin gone, closed, or no stdio service).
_QUIET_CODES = frozenset(
    {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNIMPLEMENTED}
)


def plugin_logger_name(argv: Sequence[str]) -> str:
    """``pyvider_rpcplugin_sync.plugin.<name>``: the executable's basename, as go-plugin
    names its logger; for an interpreter (``python3 kv.py``, ``python -m pkg.kv``)
    the script or module instead."""
    name = _basename(argv[0])
    if _INTERPRETER.match(name):
        args = iter(argv[1:])
        for arg in args:
            if arg == "-m":
                name = next(args, name).rsplit(".", 1)[-1]
                break
            if not arg.startswith("-"):
                name = _basename(arg)
                break
    stem = name.removesuffix(".py").replace(".", "_") or "plugin"
    return f"pyvider_rpcplugin_sync.plugin.{stem}"


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def _extra(fields: dict[str, Any]) -> dict[str, Any]:
    """hclog key/values as ``extra``, renamed where they clash with LogRecord attributes."""
    return {(f"plugin_{key}" if key in _RESERVED else key): value for key, value in fields.items()}


class StderrLog:
    """Turns the plugin's stderr lines into log records on ``target``.

    Called with each line of the stderr pipe, and (``from_stdio``) with each
    line that ``StreamStdio`` delivers on its stderr channel; thread-safe.
    """

    def __init__(self, target: logging.Logger) -> None:
        self.logger = target
        self._panicking = False
        self._in_traceback = False
        self._lock = threading.Lock()
        self._pending: tuple[collections.Counter[str], collections.Counter[str]] = (
            collections.Counter(),
            collections.Counter(),
        )
        self._order: tuple[collections.deque[str], collections.deque[str]] = (
            collections.deque(),
            collections.deque(),
        )

    def __call__(self, line: str) -> None:
        self._log(line, _PIPE, None)

    def from_stdio(self, line: str) -> None:
        self._log(line, _STDIO, {"plugin_stream": "stderr"})

    def _log(self, line: str, source: int, extra: dict[str, Any] | None) -> None:
        log = self.logger
        if not line or not log.isEnabledFor(logging.ERROR):
            return
        with self._lock:
            if not self._first_sighting(line, source):
                return
            parsed = parse_line(line) if line.startswith("{") else None
            level, text = self._untagged_level(line) if parsed is None else (0, "")
        if parsed is not None:
            level, message, fields = parsed
            if log.isEnabledFor(level):
                log.log(level, "%s", message, extra={**_extra(fields), **(extra or {})})
        elif log.isEnabledFor(level):
            log.log(level, "%s", text, extra=extra)

    def _first_sighting(self, line: str, source: int) -> bool:
        """False when the other source already delivered this line (it was logged then)."""
        other = self._pending[1 - source]
        if other[line] > 0:
            other[line] -= 1
            return False
        mine, order = self._pending[source], self._order[source]
        mine[line] += 1
        order.append(line)
        if len(order) > _PENDING_LINES:  # a source the other never repeats (Go plugins)
            oldest = order.popleft()
            if mine[oldest] > 0:
                mine[oldest] -= 1
            if mine[oldest] <= 0:
                del mine[oldest]
        return True

    def _untagged_level(self, line: str) -> tuple[int, str]:
        for prefix, level in _PREFIXES:
            if line.startswith(prefix):
                return level, line[len(prefix) :].lstrip()
        if line.startswith(_PANIC_STARTS):
            self._panicking = True
        if line.startswith(_TRACEBACK_STARTS):
            self._in_traceback = True
        elif self._in_traceback and not line[:1].isspace():
            self._in_traceback = False  # "ValueError: ...", the traceback's last line
            return logging.ERROR, line
        return (logging.ERROR if self._panicking or self._in_traceback else logging.DEBUG), line


class StdioStream:
    """Reads ``StreamStdio`` until it ends; never raises, never logs noise for normal ends."""

    def __init__(
        self,
        channel: grpc.Channel,
        target: logging.Logger,
        stdout: StdioSink | None,
        stderr: StdioSink | None,
        *,
        name: str,
        stderr_log: StderrLog | None = None,
    ) -> None:
        # protobuf on first use, not at import
        from google.protobuf import empty_pb2  # type: ignore[import-untyped,unused-ignore]

        from .._protos.goplugin_pb2 import StdioData

        method = channel.unary_stream(
            f"/{STDIO_SERVICE}/StreamStdio",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=StdioData.FromString,
        )
        self._call = method(empty_pb2.Empty())
        sinks = {
            StdioData.STDOUT: stdout or _LineLogger(target, "stdout"),
            StdioData.STDERR: stderr or _LineLogger(stderr_log or StderrLog(target)),
        }
        self._thread = threading.Thread(
            target=self._read, args=(self._call, sinks), name=f"{name}-stdio", daemon=True
        )
        self._thread.start()

    @staticmethod
    def _read(call: Iterator[Any], sinks: dict[int, StdioSink]) -> None:
        try:
            for message in call:
                sink = sinks.get(message.channel)
                if sink is None:
                    logger.debug("stdio: dropped data for unknown channel %d", message.channel)
                    continue
                try:
                    sink(message.data)
                except Exception:
                    logger.debug("stdio: sink failed", exc_info=True)
        except grpc.RpcError as exc:
            code = exc.code() if callable(getattr(exc, "code", None)) else None
            if code not in _QUIET_CODES:
                logger.debug("stdio stream ended: %s", exc)
        finally:
            for sink in sinks.values():
                if isinstance(sink, _LineLogger):
                    sink.flush()

    def close(self, timeout: float) -> None:
        self._call.cancel()
        self._thread.join(timeout)


class _LineLogger:
    """Collects stdio chunks into lines for ``emit``: stdout lines go to DEBUG with
    ``plugin_stream``; stderr lines to ``StderrLog.from_stdio``."""

    def __init__(self, target: logging.Logger | StderrLog, stream: str = "stderr") -> None:
        self._emit_line = (
            target.from_stdio if isinstance(target, StderrLog) else self._debug(target, stream)
        )
        self._partial = b""

    @staticmethod
    def _debug(target: logging.Logger, stream: str) -> Callable[[str], None]:
        def emit(text: str) -> None:
            if target.isEnabledFor(logging.DEBUG):
                target.debug("%s", text, extra={"plugin_stream": stream})

        return emit

    def __call__(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            self._emit(line)

    def flush(self) -> None:
        if self._partial:
            self._emit(self._partial)
            self._partial = b""

    def _emit(self, line: bytes) -> None:
        self._emit_line(line.decode("utf-8", "replace").rstrip("\r"))
