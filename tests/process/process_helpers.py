"""Shared helpers of the process tests (imported by conftest.py and the tests)."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from proc_scan import child_processes  # noqa: F401  (re-exported for the tests)

PYTHON = sys.executable
SCENARIOS = Path(__file__).parent / "scenarios"
ECHO = [PYTHON, "-m", "pyvider_rpcplugin_sync.examples.echo_plugin"]
KV = [PYTHON, "-m", "pyvider_rpcplugin_sync.examples.kv_plugin"]


def scenario(name: str, *args: str) -> list[str]:
    """argv of a scenario plugin in tests/process/scenarios."""
    return [PYTHON, str(SCENARIOS / f"{name}.py"), *args]


class Records(logging.Handler):
    """Collects log records; ``wait_for`` blocks until a message arrives (no sleeping)."""

    def __init__(self) -> None:
        super().__init__(level=1)
        self.records: list[logging.LogRecord] = []
        self._arrived = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self._arrived:
            self.records.append(record)
            self._arrived.notify_all()

    def wait_for(self, message: str, timeout: float = 10.0) -> logging.LogRecord:
        def find() -> logging.LogRecord | None:
            return next((r for r in self.records if r.getMessage() == message), None)

        with self._arrived:
            if not self._arrived.wait_for(lambda: find() is not None, timeout):
                raise AssertionError(f"no log record {message!r} within {timeout} s")
            record = find()
            assert record is not None
            return record

    def messages(self) -> list[str]:
        with self._arrived:
            return [r.getMessage() for r in self.records]
