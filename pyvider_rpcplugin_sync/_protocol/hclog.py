"""hclog-compatible JSON log lines, the format a go-plugin host parses on stderr.

docs/protocol.md, "stderr and hclog": ``@level``, ``@message`` and ``@timestamp`` must be JSON
strings (another type crashes a Go host) and the timestamp needs exactly six
fractional digits. The host side parses these lines back with ``parse_line``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from typing import Any, TextIO, cast

LEVEL_NAMES = {
    "trace": 5,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}

# LogRecord attributes that are not user-supplied ``extra`` fields.
_RECORD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def hclog_level(levelno: int) -> str:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warn"
    if levelno >= logging.INFO:
        return "info"
    if levelno >= logging.DEBUG:
        return "debug"
    return "trace"


def level_from_name(name: str) -> int:
    """An hclog or Python level name ('trace', 'warn', 'WARNING', ...) as a number."""
    lowered = name.strip().lower()
    if lowered in LEVEL_NAMES:
        return LEVEL_NAMES[lowered]
    number = logging.getLevelNamesMapping().get(lowered.upper())
    if number is not None:
        return number
    raise ValueError(f"unknown log level {name!r}; use trace, debug, info, warn or error")


def format_timestamp(epoch_seconds: float) -> str:
    from datetime import UTC, datetime  # on the first record: the import stays cheap

    stamp = datetime.fromtimestamp(epoch_seconds, tz=UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class HclogFormatter(logging.Formatter):
    """Formats a record as one hclog JSON line (no newline)."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        entry: dict[str, Any] = {
            "@level": hclog_level(record.levelno),
            "@message": message,
            "@timestamp": format_timestamp(record.created),
            "@module": record.name,
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                entry[key] = value if _is_json_scalar(value) else repr(value)
        import json

        return json.dumps(entry, ensure_ascii=False)


def _is_json_scalar(value: object) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


class HclogHandler(logging.Handler):
    """Writes hclog lines to a private duplicate of a file descriptor.

    The plugin redirects ``sys.stderr`` after the handshake; writing to a dup
    of the original fd 2 keeps log lines on the stream the host parses.
    """

    def __init__(self, fd: int = 2, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._stream: TextIO = os.fdopen(
            os.dup(fd), "w", encoding="utf-8", errors="backslashreplace", buffering=1
        )
        self._write_lock = threading.Lock()
        self.setFormatter(HclogFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
            with self._write_lock:
                self._stream.write(line)
        except (BrokenPipeError, OSError):
            pass  # the host is gone; nothing left to tell it
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        with self._write_lock, contextlib.suppress(OSError):
            self._stream.close()
        super().close()


def parse_line(line: str) -> tuple[int, str, dict[str, Any]] | None:
    """(level, message, other fields) of an hclog JSON line, or None if it is not one.

    Lenient: odd types never raise, they make the line "not hclog" instead.
    """
    text = line.strip()
    if not text.startswith("{"):
        return None
    import json  # the first line that looks like JSON pays for the import

    try:
        entry = json.loads(text)
    except ValueError:
        return None
    if not isinstance(entry, dict):
        return None
    entry = cast("dict[str, Any]", entry)  # JSON object keys are strings
    level, message = entry.get("@level"), entry.get("@message")
    if not isinstance(level, str) or not isinstance(message, str):
        return None
    levelno = LEVEL_NAMES.get(level.lower())
    if levelno is None:
        return None
    fields = {k: v for k, v in entry.items() if k not in ("@level", "@message", "@timestamp")}
    return levelno, message, fields
