"""docs/web.md's gunicorn.conf.py, exactly as printed, serves both example apps.

Each worker starts its plugin when it boots (post_worker_init), before any request; values
stored through one worker are read through the others (KV_STORE_DIR); a graceful stop
leaves no plugin behind.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import gunicorn as gunicorn_package  # noqa: F401  (test extras: missing means a broken install)
import pytest
from web_helpers import PYTHON, http_request, processes_with_env

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parents[2]
APPS = {
    "flask": "pyvider_rpcplugin_sync.examples.flask_app:app",
    "django": "pyvider_rpcplugin_sync.examples.django_app.wsgi",
}
STARTED = re.compile(r"plugin kv_plugin started: pid (\d+), start 1 of process (\d+)")
BOOT_WAIT = 60.0


def documented_config() -> str:
    text = (REPO / "docs" / "web.md").read_text()
    match = re.search(r"<!-- file: gunicorn.conf.py -->\n.*?```python\n(.*?)```", text, re.S)
    assert match, "docs/web.md lost its gunicorn.conf.py"
    return match[1]


class Output:
    """gunicorn's merged output, line by line, read by a thread (so gunicorn never blocks)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    def wait_for(self, pattern: re.Pattern[str], count: int) -> list[re.Match[str]]:
        """The first ``count`` matches, waiting for lines as they come (EOF fails)."""
        found = [m for line in self.lines if (m := pattern.search(line))]
        while len(found) < count:
            line = self._queue.get(timeout=BOOT_WAIT)
            assert line is not None, "gunicorn exited:\n" + "".join(self.lines)
            if match := pattern.search(line):
                found.append(match)
        return found[:count]

    def text(self) -> str:
        self._thread.join(10)
        return "".join(self.lines)


@contextlib.contextmanager
def run_gunicorn(
    app: str, tmp_path: Path, env: dict[str, str]
) -> Iterator[tuple[int, int, Output]]:
    """(port, master pid, output) of gunicorn running the documented config file."""
    conf = tmp_path / "gunicorn.conf.py"
    # Only the test's own socket and no control socket (shared by parallel runs) are added.
    conf.write_text(documented_config() + "\ncontrol_socket_disable = True\n")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    fd = listener.fileno()
    argv = [PYTHON, "-m", "gunicorn", "-c", str(conf), "--bind", f"fd://{fd}", app]
    proc = subprocess.Popen(
        argv,
        pass_fds=[fd],
        env=env,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    port = listener.getsockname()[1]
    listener.close()
    output = Output(proc)
    try:
        yield port, proc.pid, output
        proc.send_signal(signal.SIGTERM)  # graceful stop
        assert proc.wait(30) == 0, output.text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


@pytest.mark.parametrize("app", sorted(APPS))
def test_documented_gunicorn_config(app: str, tmp_path: Path) -> None:
    marker = f"PYVIDER_WEB_TEST={uuid.uuid4().hex}"
    name, value = marker.split("=")
    store = tmp_path / "store"
    store.mkdir()
    env = {**os.environ, name: value, "KV_STORE_DIR": str(store)}
    if app == "django":
        env["DJANGO_SETTINGS_MODULE"] = "pyvider_rpcplugin_sync.examples.django_app.settings"

    with run_gunicorn(APPS[app], tmp_path, env) as (port, master, output):
        # workers = 2 in the file: both start their plugin at boot, before any request;
        # the master (preload_app) starts none.
        started = output.wait_for(STARTED, 2)
        workers = {int(m[2]) for m in started}
        assert len(workers) == 2 and master not in workers, output.text()

        put = http_request(port, "PUT", "/kv/greeting", b"hello from one worker")
        assert put.status == 200, put.body
        serving = set()
        for _ in range(20):  # fresh connections, served by either worker
            got = http_request(port, "GET", "/kv/greeting")
            assert (got.status, got.body.get("value")) == (200, "hello from one worker")
            health = http_request(port, "GET", "/health")
            assert health.status == 200 and health.body["starts"] == 1, health.body
            serving.add(health.body["host_pid"])
        assert serving <= workers

    log = output.text()
    assert "Worker failed to boot" not in log
    assert STARTED.search(log)
    assert processes_with_env(marker) == [], "a process of this gunicorn is still running"
