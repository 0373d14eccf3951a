"""The host's view of a plugin's output, and the two streams it keeps open.

- :class:`StderrLog`: each stderr line becomes a log record on the plugin's
  logger, hclog JSON parsed leniently (protocol.md §5.2);
- :class:`StdioStream`: ``plugin.GRPCStdio/StreamStdio`` read in a daemon thread,
  data forwarded to callables or the plugin's logger (§4.5).

The broker's ``StartStream`` lives in ``_services/broker.py``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import grpc
from google.protobuf import empty_pb2  # type: ignore[import-untyped,unused-ignore]

from ._constants import STDIO_SERVICE
from ._hclog import LEVEL_NAMES, parse_line
from ._protos.goplugin_pb2 import StdioData

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
    """Turns the plugin's stderr lines into log records on ``target``."""

    def __init__(self, target: logging.Logger) -> None:
        self.logger = target
        self._panicking = False

    def __call__(self, line: str) -> None:
        log = self.logger
        if not line or not log.isEnabledFor(logging.ERROR):
            return
        parsed = parse_line(line) if line.startswith("{") else None
        if parsed is not None:
            level, message, fields = parsed
            if log.isEnabledFor(level):
                log.log(level, "%s", message, extra=_extra(fields))
            return
        level, text = self._untagged_level(line)
        if log.isEnabledFor(level):
            log.log(level, "%s", text)

    def _untagged_level(self, line: str) -> tuple[int, str]:
        for prefix, level in _PREFIXES:
            if line.startswith(prefix):
                return level, line[len(prefix) :].lstrip()
        if line.startswith(_PANIC_STARTS):
            self._panicking = True
        return (logging.ERROR if self._panicking else logging.DEBUG), line


class StdioStream:
    """Reads ``StreamStdio`` until it ends; never raises, never logs noise for normal ends."""

    def __init__(
        self,
        channel: grpc.Channel,
        target: logging.Logger,
        stdout: StdioSink | None,
        stderr: StdioSink | None,
        name: str,
    ) -> None:
        method = channel.unary_stream(
            f"/{STDIO_SERVICE}/StreamStdio",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=StdioData.FromString,
        )
        self._call = method(empty_pb2.Empty())
        sinks = {
            StdioData.STDOUT: stdout or _LineLogger(target, "stdout"),
            StdioData.STDERR: stderr or _LineLogger(target, "stderr"),
        }
        self._thread = threading.Thread(
            target=self._read, args=(self._call, sinks), name=f"{name}-stdio", daemon=True
        )
        self._thread.start()

    @staticmethod
    def _read(call: Iterator[StdioData], sinks: dict[int, StdioSink]) -> None:
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
    """Collects stdio chunks into lines and logs each at DEBUG with ``plugin_stream``."""

    def __init__(self, target: logging.Logger, stream: str) -> None:
        self._logger = target
        self._stream = stream
        self._partial = b""

    def __call__(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            self._emit(line)

    def flush(self) -> None:
        if self._partial:
            self._emit(self._partial)
            self._partial = b""

    def _emit(self, line: bytes) -> None:
        if self._logger.isEnabledFor(logging.DEBUG):
            text = line.decode("utf-8", "replace").rstrip("\r")
            self._logger.debug("%s", text, extra={"plugin_stream": self._stream})
