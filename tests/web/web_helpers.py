"""Helpers of the web tests: /proc scans, pidfd waits, HTTP clients, a gunicorn runner."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proc_scan import child_processes

PYTHON = sys.executable
REQUEST_TIMEOUT = 10.0


# --- processes ------------------------------------------------------------------------------


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def processes_with_env(marker: str) -> list[int]:
    """Every process whose environment holds the line ``marker`` (``NAME=value``)."""
    wanted = marker.encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as handle:
                    if wanted in handle.read().split(b"\0"):
                        found.append(int(entry))
            except OSError:
                continue
    return found


class PidWatcher:
    """pidfds for processes that are not our children, opened while they run, so a
    reused pid can never be mistaken for them; ``alive()`` waits for exits."""

    def __init__(self) -> None:
        self._fds: dict[int, int] = {}

    def watch(self, pid: int) -> None:
        if pid not in self._fds:
            self._fds[pid] = os.pidfd_open(pid)

    def running(self) -> set[int]:
        """The watched pids that have not exited (no waiting)."""
        poller = select.poll()
        for fd in self._fds.values():
            poller.register(fd, select.POLLIN)
        exited = {fd for fd, _ in poller.poll(0)}
        return {pid for pid, fd in self._fds.items() if fd not in exited}

    def wait_exit(self, pid: int, timeout: float) -> bool:
        """Wait up to ``timeout`` for one watched pid to exit; True once it has."""
        ready, _, _ = select.select([self._fds[pid]], [], [], timeout)
        return bool(ready)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


# --- HTTP -----------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def http_request(port: int, method: str, path: str, body: bytes | None = None) -> Reply:
    """One request on a fresh connection (so requests spread over the workers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close"})
        response = conn.getresponse()
        raw = response.read()
        headers = {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()
    try:
        parsed = json.loads(raw) if raw else {}
    except ValueError:
        parsed = {"raw": raw.decode("utf-8", "replace")}
    return Reply(response.status, parsed, headers)


# --- gunicorn -------------------------------------------------------------------------------

# Our loggers (restarts, deaths) go to gunicorn's stderr; no control socket (gunicorn >= 24
# makes one under $HOME, which parallel runs would share).
GUNICORN_CONF = """\
logconfig_dict = {"root": {"level": "INFO", "handlers": ["error_console"]}}
control_socket_disable = True
"""


@dataclass
class Gunicorn:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    plugins: PidWatcher = field(default_factory=PidWatcher)

    @property
    def master(self) -> int:
        return self.proc.pid

    def workers(self) -> list[int]:
        return sorted(child_processes(self.master))

    def plugin_children(self) -> dict[int, list[int]]:
        """worker pid -> pids of its plugin processes (found by scanning /proc)."""
        return {
            worker: sorted(p for p in child_processes(worker) if "kv_plugin" in cmdline(p))
            for worker in self.workers()
        }

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (gunicorn's graceful stop); the master's exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextlib.contextmanager
def gunicorn(
    app: str, args: Sequence[str], *, env: dict[str, str], workdir: Path
) -> Iterator[Gunicorn]:
    """gunicorn serving ``app`` on a socket we bound (``fd://``): no port race, and
    connections queue until the workers accept them, so no readiness polling."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(256)
    conf = workdir / "gunicorn.conf.py"
    conf.write_text(GUNICORN_CONF)
    log = workdir / "gunicorn.log"
    fd = listener.fileno()
    argv = [PYTHON, "-m", "gunicorn", "-c", str(conf), "--bind", f"fd://{fd}", *args, app]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            pass_fds=[fd],
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Gunicorn(proc, listener.getsockname()[1], log)
    listener.close()
    try:
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)  # quick shutdown
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        server.plugins.close()


# --- load -----------------------------------------------------------------------------------


@dataclass
class Load:
    """Concurrent PUT + GET pairs against ``/kv/<key>``; every reply is kept."""

    port: int
    replies: list[tuple[str, str, Reply]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _done: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _milestones: list[tuple[int, threading.Event]] = field(default_factory=list)

    def at(self, count: int) -> threading.Event:
        """An event set once ``count`` requests have completed."""
        event = threading.Event()
        self._milestones.append((count, event))
        return event

    def _record(self, method: str, key: str, reply: Reply) -> None:
        with self._lock:
            self.replies.append((method, key, reply))
            self._done += 1
            for count, event in self._milestones:
                if self._done >= count:
                    event.set()

    def pair(self, key: str) -> None:
        value = f"value of {key}"
        try:
            put = http_request(self.port, "PUT", f"/kv/{key}", value.encode())
            self._record("PUT", key, put)
            if put.status != 200:
                return
            got = http_request(self.port, "GET", f"/kv/{key}")
            self._record("GET", key, got)
            if got.status == 200 and got.body.get("value") != value:
                self.failures.append(f"GET {key}: {got.body!r}")
        except (OSError, http.client.HTTPException) as exc:
            self.failures.append(f"{key}: {type(exc).__name__}: {exc}")

    def run(self, keys: Sequence[str], clients: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(self.pair, keys))

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for _, _, reply in self.replies:
            counts[reply.status] = counts.get(reply.status, 0) + 1
        return counts
