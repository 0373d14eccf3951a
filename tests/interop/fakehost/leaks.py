"""No process left behind: scan ``/proc`` for our children and for marked processes.

Two nets, because they catch different leaks: a direct child that was never reaped
(a zombie has no environment to carry a marker), and a process that escaped to
``init`` (no longer our child) but still carries the test's marker variable.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

from proc_scan import is_supervisor

MARKER_VAR = "PYVIDER_INTEROP_MARKER"  # the same name as the other interop tests


def child_processes(parent: int | None = None) -> dict[int, str]:
    """pid -> "comm state" of every process whose parent is ``parent`` (default: us)."""
    parent = os.getpid() if parent is None else parent
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
        if int(ppid) == parent and not is_supervisor(int(entry.name)):
            found[int(entry.name)] = f"{comm} {state}"
    return found


def marked_pids(marker: str) -> list[int]:
    """Live processes whose environment carries ``MARKER_VAR=marker``."""
    needle = f"{MARKER_VAR}={marker}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@contextlib.contextmanager
def no_process_left_behind() -> Iterator[str]:
    """Yield a marker value for the environment of every process the test starts;
    afterwards fail (and clean up) if a new child or a marked process remains."""
    marker = uuid.uuid4().hex
    before = set(child_processes())
    yield marker
    children = {pid: what for pid, what in child_processes().items() if pid not in before}
    marked = [pid for pid in marked_pids(marker) if pid not in children]
    for pid in [*children, *marked]:
        _kill(pid)
    assert not children, f"child processes left behind (killed now): {children}"
    assert not marked, f"marked processes left behind (killed now): {marked}"
