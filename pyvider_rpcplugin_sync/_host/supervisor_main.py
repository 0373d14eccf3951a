"""The supervisor program: outlives its host and cleans up after it if it dies.

Run by ``supervisor`` as ``python -I -S supervisor_main.py GRACE [--posix]``
(stdlib only, no package import: it starts in milliseconds). It reads
registrations from stdin, a pipe whose write end only the host holds::

    g+ PGID | g- PGID      a plugin's process group started / reaped
    d+ HEX  | d- HEX       a socket directory (hex of its bytes) made / removed
    s+ HEX  | s- HEX       a plugin's socket outside that directory (old Go plugins)

End of file means the host is gone (exit, crash or SIGKILL: the kernel closes
the pipe). Every group still registered then gets SIGTERM, GRACE seconds to go,
then SIGKILL; every directory still registered is removed, and every socket
file (only if it still is a socket of this user). This covers plugins
that never watch their parent (go-plugin's Go plugins) and their children.
"""

from __future__ import annotations

import os
import stat
import sys
import time

# Every host start spawns this program, so it imports the least it can: no contextlib,
# shutil only when the host died and left something to remove, and CPython's C signal
# module rather than ``signal``, whose enum wrappers cost a quarter of this start.
TYPE_CHECKING = False  # typing itself is too dear to import here
if TYPE_CHECKING:
    import signal
else:
    try:
        import _signal as signal
    except ImportError:  # not CPython
        import signal

_POLL = 0.02
_RMTREE_TRIES = 5


def main(argv: list[str]) -> int:
    grace = float(argv[1])
    use_proc = "--posix" not in argv and os.path.isdir("/proc/self")
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)
    groups: set[int] = set()
    paths: dict[bytes, set[bytes]] = {b"d": set(), b"s": set()}
    for raw in sys.stdin.buffer:
        kind, _, value = raw.strip().partition(b" ")
        if kind in (b"g+", b"g-"):
            (groups.add if kind == b"g+" else groups.discard)(int(value))
        elif kind[:1] in paths and kind[1:] in (b"+", b"-"):
            registered, path = paths[kind[:1]], bytes.fromhex(value.decode())
            (registered.add if kind[1:] == b"+" else registered.discard)(path)
    _stop_groups(groups, grace, use_proc)
    for directory in paths[b"d"]:
        _remove(directory)
    for socket_path in paths[b"s"]:
        _remove_socket(socket_path)
    return 0


def _stop_groups(groups: set[int], grace: float, use_proc: bool) -> None:
    _signal_all(groups, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline:
        groups = {group for group in groups if _group_running(group, use_proc)}
        if groups:
            time.sleep(_POLL)  # not our children: nothing to wait on but the clock
    _signal_all(groups, signal.SIGKILL)


def _signal_all(groups: set[int], signum: int) -> None:
    for group in groups:
        try:  # noqa: SIM105 (contextlib is not imported here)
            os.killpg(group, signum)
        except (ProcessLookupError, PermissionError):
            pass


def _group_running(group: int, use_proc: bool) -> bool:
    """Whether a process of ``group`` still runs (a zombie does not)."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not use_proc:
        return True  # POSIX cannot tell a zombie from a live process here
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[2]) == group and fields[0] != b"Z":
            return True
    return False


def _remove_socket(path: bytes) -> None:
    try:
        info = os.lstat(path)
        if stat.S_ISSOCK(info.st_mode) and info.st_uid == os.getuid():
            os.unlink(path)
    except OSError:
        pass


def _remove(directory: bytes) -> None:
    import shutil

    # A plugin killed a moment ago may still be creating a file in it.
    for _ in range(_RMTREE_TRIES):
        shutil.rmtree(directory, ignore_errors=True)
        if not os.path.lexists(directory):
            return
        time.sleep(_POLL)


if __name__ == "__main__":
    # The host waits for this exit when its last plugin closes: skip the interpreter's
    # teardown (nothing is buffered: stdout and stderr are /dev/null).
    os._exit(main(sys.argv))
