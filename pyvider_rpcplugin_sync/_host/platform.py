"""Linux mechanisms and their POSIX fallbacks, chosen at run time.

Linux gives a pidfd (a process exit as a readable fd), ``/proc/<pid>/stat``
(a process's state before it can be waited for) and cheap process groups.
Elsewhere (macOS, the BSDs), or with ``PYVIDER_RPCPLUGIN_POSIX_FALLBACKS=1``,
the same jobs are done with plain POSIX: polling ``waitid``/``kill(pid, 0)``
and a new session per plugin. The variable is read at each use, never at import.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, TypedDict

from .._constants import ENV_POSIX_FALLBACKS


def posix_fallbacks_forced() -> bool:
    return os.environ.get(ENV_POSIX_FALLBACKS, "") not in ("", "0")


def pidfd_open(pid: int) -> int | None:
    """A pidfd for ``pid``, or None (no pidfd here, fallbacks forced, or gone)."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None or posix_fallbacks_forced():
        return None
    try:
        return int(opener(pid))
    except OSError:
        return None


def open_proc_stat(pid: int) -> int:
    """An fd on ``/proc/<pid>/stat``, or -1 where there is none (or fallbacks forced)."""
    if not sys.platform.startswith("linux") or posix_fallbacks_forced():
        return -1
    try:
        return os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return -1


class GroupOptions(TypedDict, total=False):
    """The ``subprocess.Popen`` keyword options ``own_group_options`` gives."""

    start_new_session: bool
    process_group: int


def own_group_options() -> GroupOptions:
    """``subprocess.Popen`` options that put a child in its own process group.

    ``process_group=0`` (setpgid) keeps the child in the host's session; the fallback,
    a new session (setsid), exists on every POSIX system and Python version but also
    gives the child its own scheduler autogroup on Linux, which makes each
    host<->plugin wake-up dearer (about 5% per unary call).
    """
    if posix_fallbacks_forced():
        return {"start_new_session": True}
    return {"process_group": 0}


PF_EXITING = 0x4  # the kernel's flag of a task that began to exit (/proc/<pid>/stat)


@dataclass(frozen=True)
class ProcStat:
    """The fields of ``/proc/<pid>/stat`` the library reads."""

    comm: str
    state: bytes
    group: int
    flags: int

    @property
    def exiting(self) -> bool:
        """Whether the process began to exit (or is a zombie)."""
        return self.state in (b"Z", b"X") or bool(self.flags & PF_EXITING)


def parse_proc_stat(data: bytes) -> ProcStat:
    """Parse ``/proc/<pid>/stat``; the command name may hold spaces and parentheses."""
    close = data.rindex(b")")
    comm = data[data.index(b"(") + 1 : close].decode("utf-8", "replace")
    fields = data[close + 2 :].split(b" ", 7)
    return ProcStat(comm, fields[0], int(fields[2]), int(fields[6]))


def stat_of_fd(fd: int) -> ProcStat | None:
    """The stat behind an fd from ``open_proc_stat``; None once the process is reaped."""
    try:
        return parse_proc_stat(os.pread(fd, 1024, 0))
    except OSError:
        return None


def began_to_exit(pid: int) -> bool | None:
    """Whether ``pid`` began to exit; None where /proc cannot tell (then wait for the exit).

    Linux sets PF_EXITING before it closes the process's sockets, so after a broken
    connection this answers at once whether the process is dying.
    """
    fd = open_proc_stat(pid)
    if fd < 0:
        return None
    try:
        stat = stat_of_fd(fd)
    finally:
        os.close(fd)
    return True if stat is None else stat.exiting  # None: reaped meanwhile


def group_processes(group: int) -> list[str]:
    """The live processes of process group ``group`` ("pid (comm)"), zombies aside.

    Without /proc, a signal 0 tells only whether the group exists.
    """
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [f"process group {group}"]
    found: list[str] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = parse_proc_stat(handle.read())
        except (OSError, ValueError):
            continue
        if stat.group == group and stat.state != b"Z":
            found.append(f"{entry} ({stat.comm})")
    return found


def status_of(result: Any) -> int:
    """A Popen-style return code from a ``waitid`` result: negative for a signal."""
    if result.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
        return -int(result.si_status)
    return int(result.si_status)
