"""The example Flask app under waitress: one process, many threads, one plugin."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import flask  # noqa: F401  (a test extra: missing means a broken install, not a skip)
import pytest
import waitress  # noqa: F401  (a test extra: missing means a broken install, not a skip)
from web_helpers import Load, PidWatcher, child_processes, cmdline, http_request

pytestmark = pytest.mark.timeout(60)

SERVE = """\
import signal, socket, sys
import waitress
from pyvider_rpcplugin_sync.examples.flask_app import app

signal.signal(signal.SIGINT, signal.default_int_handler)  # even if inherited as ignored
waitress.serve(app, sockets=[socket.socket(fileno=int(sys.argv[1]))], threads=8)
"""


def test_threads_share_one_plugin_which_stops_with_the_server(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)
    port, fd = listener.getsockname()[1], listener.fileno()
    watcher = PidWatcher()
    with (tmp_path / "waitress.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(fd)],
            pass_fds=[fd],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    listener.close()
    try:
        load = Load(port)
        load.run([f"key-{i}" for i in range(200)], 8)
        assert load.failures == []
        assert load.statuses() == {200: 400}
        plugins = [p for p in child_processes(server.pid) if "kv_plugin" in cmdline(p)]
        assert len(plugins) == 1
        watcher.watch(plugins[0])
        assert http_request(port, "GET", "/health").body["pid"] == plugins[0]
        server.send_signal(signal.SIGINT)
        assert server.wait(30) == 0
        assert watcher.running() == set()  # shut down before the server exited
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGKILL)
            server.wait(10)
        watcher.close()
