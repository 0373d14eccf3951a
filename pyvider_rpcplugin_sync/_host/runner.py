"""The plugin subprocess: spawn, pipes, the handshake read, reaping and killing.

The only module that touches ``subprocess``. Threads per child, all daemons:

- ``stderr``: reads lines (at most STDERR_LINE_LIMIT bytes each), keeps a tail
  for error messages and hands every line to a callback (the host's logger);
- ``stdout``: after the handshake line, drains and discards stdout so a chatty
  plugin never blocks on a full pipe;
- ``reaper``: waits for the child's exit with ``waitid(WNOWAIT)``, which does
  *not* reap it. The zombie keeps its pid (and so its process group id)
  reserved until ``Child.reap``, so signalling the group can never hit an
  unrelated process that reused the number.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import select
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from .._constants import (
    DEFAULT_TERMINATE_GRACE,
    HANDSHAKE_LINE_LIMIT,
    PIPE_EOF_GRACE,
    READER_JOIN_TIMEOUT,
    STDERR_LINE_LIMIT,
    STDERR_TAIL_LINES,
)
from .._errors import HandshakeError, PluginStartError, StartTimeout
from .pipes import PipeReaders, split_lines
from .platform import began_to_exit, own_group_options, status_of
from .platform import pidfd_open as _pidfd_open
from .supervisor import release_group, watch_group

logger = logging.getLogger("pyvider_rpcplugin_sync.host")

Stdin = int | IO[Any] | None
_READ_CHUNK = 64 * 1024
# Without a pidfd (not Linux) the handshake wait also polls the exit event this often.
_EXIT_POLL = 0.05
_EXITED_NOHANG = os.WEXITED | os.WNOHANG | os.WNOWAIT
# How often a PidWatch with a pidfd checks whether it was closed.
_PIDWATCH_WAKE = 0.25


class Child:
    """One spawned plugin process and the threads that watch it."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None,
        stdin: Stdin,
        on_stderr_line: Callable[[str], None],
        on_exit: Callable[[int], None],
        name: str,
    ) -> None:
        self._on_stderr_line = on_stderr_line
        self._on_exit = on_exit
        self._tail: collections.deque[str] = collections.deque(maxlen=STDERR_TAIL_LINES)
        self._tail_lock = threading.Lock()
        self._stderr_done = threading.Event()  # the stderr pipe reached EOF
        self.exited = threading.Event()
        self._exit_status: int | None = None
        self._reaped = False
        self._pipes = PipeReaders()
        try:
            self._proc = self._popen(argv, env, cwd, stdin)
        except BaseException:
            self._pipes.close()
            raise
        self.pid: int = self._proc.pid
        watch_group(self.pid)  # stopped by the supervisor if this host dies first
        self._pidfd = _pidfd_open(self.pid)
        self._name = name
        self._threads: list[threading.Thread] = []
        self._start_thread(self._read_stderr, f"{name}-stderr")
        self._start_thread(self._watch_exit, f"{name}-reaper")

    @staticmethod
    def _popen(
        argv: Sequence[str], env: Mapping[str, str], cwd: str | None, stdin: Stdin
    ) -> subprocess.Popen[bytes]:
        try:
            return subprocess.Popen(
                list(argv),
                text=False,
                env=dict(env),
                cwd=cwd,
                # The default is /dev/null, not go-plugin's inherited stdin: a library
                # host is often a server or a worker with no terminal to preserve, and a
                # plugin reading an inherited stdin would steal the host's input.
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                close_fds=True,
                # Own process group, signalled as a whole (grandchildren included);
                # terminal signals go to the host's group. Not a new session: see
                # own_group_options (a scheduler autogroup makes each call dearer).
                **own_group_options(),
            )
        except OSError as exc:
            raise PluginStartError(
                f"could not start plugin {argv[0]!r}: {exc.strerror or exc}",
                hint="check the command path, its execute permission and cwd",
            ) from None

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    # --- watching ----------------------------------------------------------------

    def _read_stderr(self) -> None:
        stream = self._proc.stderr
        assert stream is not None
        try:
            for chunk in split_lines(self._pipes.chunks(stream.fileno()), STDERR_LINE_LIMIT):
                line = chunk.decode("utf-8", "replace").rstrip("\r\n")
                with self._tail_lock:
                    self._tail.append(line)
                try:
                    self._on_stderr_line(line)
                except Exception:
                    logger.debug("plugin stderr handler failed", exc_info=True)
        finally:
            self._stderr_done.set()

    def _watch_exit(self) -> None:
        status: int | None = None
        try:
            result = os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT)
            if result is not None:
                status = status_of(result)
        except ChildProcessError:
            status = self._proc.returncode  # reaped by someone else
        self._exit_status = status if status is not None else -1
        self.exited.set()
        try:
            self._on_exit(self._exit_status)
        except Exception:
            logger.debug("plugin exit handler failed", exc_info=True)

    def _drain_stdout(self) -> None:
        for _ in self._pipes.chunks(self._stdout_fd):
            pass

    @property
    def _stdout_fd(self) -> int:
        assert self._proc.stdout is not None
        return self._proc.stdout.fileno()

    @property
    def returncode(self) -> int | None:
        if self._proc.returncode is not None:
            return self._proc.returncode
        return self._exit_status

    def stderr_tail(self) -> str:
        with self._tail_lock:
            return "\n".join(self._tail)

    def dying(self) -> bool | None:
        """Whether the plugin began to exit (None where ``/proc`` cannot tell)."""
        return began_to_exit(self.pid)

    def wait_exit(self, timeout: float) -> int | None:
        """The exit code once the plugin exited (waiting up to ``timeout``), else None.

        Asks the kernel too (without reaping), so an exit shows before the reaper ran.
        """
        if self.exited.wait(timeout) if timeout > 0 else self.exited.is_set():
            return self.returncode
        try:
            result = os.waitid(os.P_PID, self.pid, _EXITED_NOHANG)
        except ChildProcessError:  # reaped already (by the reaper, or someone else)
            code = self.returncode
            return code if code is not None else -1
        return status_of(result) if result is not None else None

    def exit_details(self) -> tuple[int | None, str]:
        return self.returncode, self.stderr_tail()

    # --- the handshake line ----------------------------------------------------------

    def read_handshake(self, deadline: float, timeout: float) -> str:
        """The first stdout line, by ``deadline`` (``time.monotonic()``; the start's
        ``timeout`` for messages); afterwards stdout is drained and discarded."""
        buffer = bytearray()
        exit_seen = False
        with selectors.DefaultSelector() as selector:
            selector.register(self._stdout_fd, selectors.EVENT_READ, "stdout")
            if self._pidfd is not None:
                selector.register(self._pidfd, selectors.EVENT_READ, "exit")
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    kind = PluginStartError if exit_seen else StartTimeout
                    raise self._start_failure(kind, timeout)
                if self._pidfd is None and not exit_seen:
                    remaining = min(remaining, _EXIT_POLL)
                events = selector.select(remaining)
                if not exit_seen and (
                    self.exited.is_set() or any(k.data == "exit" for k, _ in events)
                ):
                    # Whatever it wrote is in the pipe: keep reading it to EOF, briefly.
                    exit_seen = True
                    if self._pidfd is not None:
                        selector.unregister(self._pidfd)
                    deadline = min(deadline, time.monotonic() + PIPE_EOF_GRACE)
                if not any(k.data == "stdout" for k, _ in events):
                    continue
                chunk = os.read(self._stdout_fd, _READ_CHUNK)
                if not chunk:
                    raise self._start_failure(PluginStartError, timeout)
                buffer += chunk
                end = buffer.find(b"\n")
                if end >= 0:
                    self._close_pidfd()
                    self._start_thread(self._drain_stdout, f"{self._name}-stdout")
                    return buffer[:end].decode("utf-8", "replace")
                if len(buffer) > HANDSHAKE_LINE_LIMIT:
                    raise HandshakeError(
                        f"the plugin's first stdout line is over {HANDSHAKE_LINE_LIMIT} "
                        f"bytes: {bytes(buffer[:80])!r}...",
                        hint="the plugin must print its handshake line first",
                    )

    def _start_failure(self, kind: type[PluginStartError], timeout: float) -> PluginStartError:
        if kind is StartTimeout:
            message = f"timeout while waiting for plugin to start ({timeout:g} s)"
            hint = "raise start_timeout, or check that the plugin prints its handshake line"
        else:
            # The child closed stdout: usually it is exiting. Let it finish so the
            # exit code and the last stderr lines are known: its exit can be seen
            # before the stderr reader has read what it wrote last.
            if self.exited.wait(PIPE_EOF_GRACE):
                self._stderr_done.wait(PIPE_EOF_GRACE)
            message = "plugin exited before printing its handshake line"
            hint = (
                "see the plugin's stderr below; was it started with the right command?"
                if self.stderr_tail()
                else "it wrote nothing to stderr; is this command a go-plugin plugin?"
            )
            if not self.exited.is_set():
                message = "plugin closed its stdout without printing a handshake line"
        self.kill_now()
        return kind(message, hint=hint, returncode=self.returncode, stderr_tail=self.stderr_tail())

    # --- stopping --------------------------------------------------------------------

    def signal_group(self, signum: int) -> None:
        """Signal the plugin's process group, unless the child is already reaped."""
        if self._reaped:
            return
        with contextlib.suppress(ProcessLookupError):
            try:
                os.killpg(self.pid, signum)
            except PermissionError:
                os.kill(self.pid, signum)

    def stop(self, grace: float, term_grace: float = DEFAULT_TERMINATE_GRACE) -> bool:
        """Wait ``grace`` for an exit, then SIGTERM, then SIGKILL; reap; join readers.

        Returns True when the child exited within ``grace`` on its own.
        """
        graceful = self.exited.wait(grace) if grace > 0 else self.exited.is_set()
        if not graceful:
            self.signal_group(signal.SIGTERM)
            if not self.exited.wait(term_grace):
                logger.debug("plugin %d ignored SIGTERM; killing it", self.pid)
                self.signal_group(signal.SIGKILL)
                self.exited.wait(READER_JOIN_TIMEOUT)
        self._finish()
        return graceful

    def _finish(self) -> None:
        readers_done = self._join_threads(PIPE_EOF_GRACE)
        if not readers_done:
            # Something in its group (a grandchild) still holds the pipes open.
            self.signal_group(signal.SIGKILL)
            readers_done = self._join_threads(READER_JOIN_TIMEOUT)
        if not readers_done and self.exited.is_set():
            # A process outside its group (one that left it with setsid) holds them.
            logger.warning("plugin %d exited; stopped reading output held by others", self.pid)
            self._pipes.stop()
            readers_done = self._join_threads(READER_JOIN_TIMEOUT)
        self.reap(READER_JOIN_TIMEOUT)
        self._close_pidfd()
        if readers_done:
            for stream in (self._proc.stdout, self._proc.stderr):
                if stream is not None:
                    stream.close()
            self._pipes.close()
        else:
            logger.warning("plugin %d: output readers did not finish; pipes left open", self.pid)

    def reap(self, timeout: float) -> None:
        if self._reaped:
            return
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("plugin %d did not exit; it is left running", self.pid)
            return
        self._reaped = True
        release_group(self.pid)

    def _join_threads(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        current = threading.current_thread()
        for thread in list(self._threads):
            if thread is not current:
                thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads if t is not current)

    def _close_pidfd(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is not None:
            os.close(fd)

    def kill_now(self) -> None:
        """Last-resort cleanup (finalizers, interpreter exit): SIGKILL and reap."""
        if not self._reaped:
            self.signal_group(signal.SIGKILL)
            self.exited.wait(READER_JOIN_TIMEOUT)
            self._finish()


class PidWatch:
    """Notices the exit of a process that is not our child (a reattached plugin).

    Such a process cannot be waited for; a pidfd (Linux) wakes us at once, else
    the pid is probed with signal 0 every ``interval`` seconds, like go-plugin.
    """

    def __init__(
        self, pid: int, on_exit: Callable[[int], None], interval: float, name: str
    ) -> None:
        self.pid = pid
        self.exited = threading.Event()
        self._stop = threading.Event()
        self._on_exit = on_exit
        self._interval = interval
        self._pidfd = _pidfd_open(pid)
        self._thread = threading.Thread(target=self._watch, name=f"{name}-pidwatch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while True:
            if self._pidfd is not None:
                # Wakes at once on exit; the timeout only bounds how long close() waits.
                ready, _, _ = select.select([self._pidfd], [], [], _PIDWATCH_WAKE)
                gone = bool(ready)
            else:
                gone = not pid_alive(self.pid)
                if not gone:
                    self._stop.wait(self._interval)
            if self._stop.is_set():
                return
            if gone:
                self.exited.set()
                try:
                    self._on_exit(-1)
                except Exception:
                    logger.debug("plugin exit handler failed", exc_info=True)
                return

    def dying(self) -> bool | None:
        return None  # not our child: only its exit tells

    def wait_exit(self, timeout: float) -> int | None:
        """-1 once the process exited (its code cannot be known), else None."""
        return -1 if self.exited.wait(timeout) else None

    def exit_details(self) -> tuple[int | None, str]:
        return None, ""

    def close(self, timeout: float) -> None:
        self._stop.set()
        self._thread.join(timeout)
        if not self._thread.is_alive() and self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but it exists
    return True
