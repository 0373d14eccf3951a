"""Child processes of a test, found by scanning /proc (unreaped zombies count too)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

SUPERVISOR_PROGRAM = b"pyvider_rpcplugin_sync/_host/supervisor_main.py"


def is_supervisor(pid: int) -> bool:
    """The host's plugin supervisor (one while the host has plugins running), not a leak."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return any(arg.endswith(SUPERVISOR_PROGRAM) for arg in handle.read().split(b"\0"))
    except OSError:
        return False


def child_processes(parent: int | None = None) -> dict[int, str]:
    """pid -> "comm state" of every process whose parent is ``parent`` (default: us).

    The host's plugin supervisor (it lives while the host has plugins) is left out.
    """
    parent = os.getpid() if parent is None else parent
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
        except OSError:
            continue  # gone meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == parent and not is_supervisor(int(entry)):
            found[int(entry)] = f"{comm} {state}"
    return found


@pytest.fixture(autouse=True)
def no_child_left_behind() -> Iterator[None]:
    """Fail a test that leaves a child process behind (running or zombie); kill it."""
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
