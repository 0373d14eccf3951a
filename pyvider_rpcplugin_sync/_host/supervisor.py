"""Nothing left behind when the host dies, whatever the plugin is written in.

Our own plugins watch their parent, but go-plugin's Go plugins (and most others)
do not: after a host's SIGKILL they would run on, orphaned, and the host's
socket directory would stay. One small supervisor process per host
(``supervisor_main.py``) holds the read end of a pipe whose write end only the
host holds. The host registers each plugin's process group and each socket
directory as it makes them, and unregisters them once reaped or removed; when
the host dies, the kernel closes the pipe and the supervisor stops what is
still registered. A spawn costs one ``write`` to the pipe. The supervisor starts
with the first registration and ends with the last release: the host closes
the pipe once nothing is registered and reaps it, so a host whose plugins have
all closed has no child left; the next plugin starts a new one.

Not a parent-death signal: ``PR_SET_PDEATHSIG`` fires when the *thread* that
spawned the child exits, exists only on Linux, and misses the plugin's children.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import threading
from pathlib import Path

from .._constants import ORPHAN_TERM_GRACE
from .platform import own_group_options, pidfd_open, posix_fallbacks_forced

logger = logging.getLogger("pyvider_rpcplugin_sync.host")

# How long a supervisor with nothing registered gets to exit before it is killed.
_EXIT_WAIT = 5.0
_PROGRAM = str(Path(__file__).with_name("supervisor_main.py"))


class _Supervisor:
    """This process's supervisor: the pipe to it and what is registered there."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.lock = threading.Lock()
        self.fd = -1
        self.process: subprocess.Popen[bytes] | None = None
        self.groups: set[int] = set()
        self.paths: set[str] = set()  # "d+ HEX" / "s+ HEX" lines

    def send(self, line: str) -> None:
        with self.lock:
            self._apply(line)
            if not self.groups and not self.paths:
                self._stop()
                return
            if self.fd < 0 and not self._start():
                return
            try:
                os.write(self.fd, line.encode() + b"\n")
            except OSError:  # it died (killed by someone): a new one gets the full list
                os.close(self.fd)
                self.fd = -1
                self._start()

    def _apply(self, line: str) -> None:
        kind, value = line.split(" ", 1)
        if kind[0] == "g":
            (self.groups.add if kind == "g+" else self.groups.discard)(int(value))
        elif kind[1] == "+":
            self.paths.add(line)
        else:
            self.paths.discard(f"{kind[0]}+ {value}")

    def _start(self) -> bool:
        _forget_in_forked_children()
        if not sys.executable:
            logger.debug("no sys.executable: plugins are not supervised against host death")
            return False
        read_end, write_end = os.pipe()
        argv = [sys.executable, "-I", "-S", _PROGRAM, str(ORPHAN_TERM_GRACE)]
        if posix_fallbacks_forced():
            argv.append("--posix")
        try:
            process = subprocess.Popen(
                argv,
                text=False,
                stdin=read_end,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env={},  # nothing of the host's (markers, secrets) reaches it
                close_fds=True,
                **own_group_options(),  # a signal to the host's group must not reach it
            )
        except OSError as exc:
            os.close(read_end)
            os.close(write_end)
            logger.warning("could not start the plugin supervisor: %s", exc)
            return False
        os.close(read_end)
        self.fd = write_end
        # Reaped by _stop once nothing is registered; until then kept referenced so
        # that subprocess does not poll it.
        if self.process is not None and self.process.poll() is None:
            _former.append(self.process)  # unlikely: it lives although its pipe broke
        self.process = process
        replay = [f"g+ {group}" for group in self.groups] + sorted(self.paths)
        if replay:
            os.write(self.fd, "\n".join(replay).encode() + b"\n")
        return True

    def _stop(self) -> None:
        """Nothing left to watch: end of file tells it to exit (with nothing to clean)."""
        if self.fd < 0:
            return
        os.close(self.fd)
        self.fd = -1
        process, self.process = self.process, None
        if process is None:
            return
        try:
            _wait_exit(process, _EXIT_WAIT)  # a stdlib-only interpreter's exit: milliseconds
        except subprocess.TimeoutExpired:
            logger.warning("the plugin supervisor did not exit at end of input; killing it")
            process.kill()
            process.wait()

    def forget(self) -> None:
        """In a forked child: the parent's plugins and supervisor are not ours."""
        if self.fd >= 0:
            os.close(self.fd)
        if self.process is not None:
            _former.append(self.process)  # the parent's child, not ours: never polled
        self._reset()  # a new lock too: another thread may have held it at the fork


def _wait_exit(process: subprocess.Popen[bytes], timeout: float) -> None:
    """``process.wait(timeout)`` without its sleep-and-poll steps (they would add up to
    half the exit's time again to each close): on a pidfd where there is one."""
    fd = pidfd_open(process.pid)
    if fd is not None:
        try:
            exited = select.select([fd], [], [], timeout)[0]
        finally:
            os.close(fd)
        if not exited:
            raise subprocess.TimeoutExpired(process.args, timeout)
    process.wait(timeout)


_former: list[subprocess.Popen[bytes]] = []
_supervisor = _Supervisor()
_fork_hook: list[bool] = []  # registered once, when the first supervisor starts


def _forget_in_forked_children() -> None:
    if not _fork_hook:
        _fork_hook.append(True)
        os.register_at_fork(after_in_child=_supervisor.forget)


def watch_group(group: int) -> None:
    """Stop process group ``group`` if this host dies before ``release_group``."""
    _supervisor.send(f"g+ {group}")


def release_group(group: int) -> None:
    _supervisor.send(f"g- {group}")


def watch_directory(path: str) -> None:
    """Remove ``path`` if this host dies before ``release_directory``."""
    _supervisor.send(f"d+ {os.fsencode(path).hex()}")


def release_directory(path: str) -> None:
    _supervisor.send(f"d- {os.fsencode(path).hex()}")


def watch_socket(path: str) -> None:
    """Remove the socket file ``path`` if this host dies before ``release_socket``."""
    _supervisor.send(f"s+ {os.fsencode(path).hex()}")


def release_socket(path: str) -> None:
    _supervisor.send(f"s- {os.fsencode(path).hex()}")
