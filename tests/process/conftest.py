"""Process tests: real subprocesses, real sockets, real grpc.

Every test here fails if it leaves a child process behind (running or zombie),
found by scanning /proc rather than by waiting, so an unreaped child counts too.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator

import pytest
from process_helpers import Records, child_processes


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


@pytest.fixture
def plugin_records() -> Iterator[Records]:
    """Every record of the plugin loggers (pyvider_rpcplugin_sync.plugin.*)."""
    handler = Records()
    target = logging.getLogger("pyvider_rpcplugin_sync.plugin")
    old_level = target.level
    target.addHandler(handler)
    target.setLevel(1)
    try:
        yield handler
    finally:
        target.removeHandler(handler)
        target.setLevel(old_level)
