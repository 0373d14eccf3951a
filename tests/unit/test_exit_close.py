"""At-exit closing one after the other, where no thread can start (Python 3.12.0/3.12.1).

The real interpreters run it in tests/process/test_host_close.py; here its order and its
deadline, with sessions that record what was done to them.
"""

from __future__ import annotations

import time

import pytest

from pyvider_rpcplugin_sync._host.at_exit import _close_in_turn

pytestmark = pytest.mark.timeout(30)


class Recorded:
    def __init__(self, log: list[str], name: str, fail: bool = False) -> None:
        self.log, self.name, self.fail = log, name, fail

    def close(self, timeout: float | None = None) -> None:
        self.log.append(f"close {self.name}")
        if self.fail:
            raise RuntimeError("a plugin that fails to close")

    def _kill_at_exit(self) -> None:
        self.log.append(f"kill {self.name}")


def test_sessions_close_in_turn_and_one_failing_does_not_stop_the_rest() -> None:
    log: list[str] = []
    sessions = [Recorded(log, "a"), Recorded(log, "b", fail=True), Recorded(log, "c")]
    _close_in_turn(list(sessions), time.monotonic() + 30)
    assert log == ["close a", "close b", "close c"]


def test_past_the_deadline_the_rest_are_killed() -> None:
    log: list[str] = []
    _close_in_turn([Recorded(log, "a"), Recorded(log, "b")], time.monotonic() - 1)
    assert log == ["kill a", "kill b"]
