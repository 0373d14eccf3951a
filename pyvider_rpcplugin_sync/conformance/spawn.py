"""Starting a plugin the way a go-plugin host does, and always cleaning up after it.

The plugin gets the caller's environment without any ``PLUGIN_*`` variable or
the cookie (so a developer's shell cannot change the verdict), then exactly
what the check asks for. Each started process runs in its own session, so a
wrapper's children are killed too; ``TMPDIR`` points into the run's private
0700 directory, so sockets a plugin leaves behind are removed with it.
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Generator, Mapping, Sequence
from pathlib import Path

STDERR_TAIL = 40
EXIT_READ_WAIT = 2.0


class KitError(Exception):
    """The kit could not do what it was asked (a bad command, an unusable directory)."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def plugin_environ(
    base: Mapping[str, str], cookie_key: str, extra: Mapping[str, str]
) -> dict[str, str]:
    env = {k: v for k, v in base.items() if not k.startswith("PLUGIN_") and k != cookie_key}
    env.update(extra)
    return env


class Started:
    """A started plugin: the first stdout line, stderr collected, the rest of stdout drained."""

    def __init__(
        self, cmd: Sequence[str], env: Mapping[str, str], *, stdin_pipe: bool = False
    ) -> None:
        self.cmd = list(cmd)
        try:
            self.proc = subprocess.Popen(
                self.cmd,
                env=dict(env),
                stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            raise KitError(
                f"cannot start {self.cmd[0]!r}: {exc.strerror or exc}",
                "give the plugin's command after --, e.g. -- ./my-plugin or -- python plugin.py",
            ) from None
        self.started_at = time.monotonic()
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=STDERR_TAIL)
        self.stdout_after: list[str] = []
        self._stderr_reader = threading.Thread(target=self._read_stderr, daemon=True)
        stdout_reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._threads = [stdout_reader, self._stderr_reader]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        first = True
        for raw in iter(self.proc.stdout.readline, b""):
            text = raw.decode("utf-8", "replace")
            if first:
                self._lines.put(text)
                first = False
            elif len(self.stdout_after) < STDERR_TAIL:
                self.stdout_after.append(text)
        self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            self._stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def first_line(self, timeout: float) -> str | None:
        """The first stdout line; None on EOF (the plugin exited or closed stdout)."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None

    def stderr_text(self) -> str:
        """What the plugin wrote to stderr; once it has exited, everything it wrote."""
        if self.proc.poll() is not None:
            # An exit can be seen before the reader has read the last lines; EOF comes
            # when every writer is gone (a child that kept the pipe bounds the wait).
            self._stderr_reader.join(timeout=EXIT_READ_WAIT)
        return "\n".join(self._stderr)

    def stderr_tail(self, lines: int = 5) -> str:
        return " | ".join(list(self._stderr)[-lines:])

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signum)

    def close_stdin(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def kill(self) -> None:
        """SIGKILL the plugin's whole session, reap it, join the readers."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        for thread in self._threads:
            thread.join(timeout=2.0)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@contextlib.contextmanager
def started(
    cmd: Sequence[str], env: Mapping[str, str], *, stdin_pipe: bool = False
) -> Generator[Started, None, None]:
    plugin = Started(cmd, env, stdin_pipe=stdin_pipe)
    try:
        yield plugin
    finally:
        plugin.kill()


SHORT_TMP_LIMIT = 40  # leaves room under the 107-byte socket path limit for a plugin's own names


def short_tmp() -> str | None:
    """The temporary directory for the kit's runs: TMPDIR when short, else ``/tmp``
    (plugins put their sockets under it, and socket paths are limited)."""
    if len(tempfile.gettempdir()) <= SHORT_TMP_LIMIT or not os.path.isdir("/tmp"):
        return None
    return "/tmp"


def private_dir(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir(mode=0o700)
    return path
