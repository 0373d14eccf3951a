"""Web tests: the example Flask and Django apps on their test clients and under gunicorn.

Flask, Django, gunicorn and waitress are test extras (pyproject), installed by `make test`.
Every test fails if it leaves a child process behind (running or zombie).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from web_helpers import child_processes


@pytest.fixture(autouse=True)
def no_child_left_behind() -> Iterator[None]:
    before = set(child_processes())
    yield
    left = {pid: what for pid, what in child_processes().items() if pid not in before}
    for pid in left:  # do not let one leak break the following tests
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
    assert not left, f"test left child processes behind: {left}"
