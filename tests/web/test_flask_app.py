"""The example Flask app on Flask's test client, with a real KV plugin behind it."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import flask  # noqa: F401  (a test extra: missing means a broken install, not a skip)
import pytest
from flask import Flask
from flask.testing import FlaskClient
from web_helpers import child_processes, cmdline

from pyvider_rpcplugin_sync import SharedPlugin
from pyvider_rpcplugin_sync.examples import flask_app, kv_pb2_grpc
from pyvider_rpcplugin_sync.examples.kv_plugin import KV_HANDSHAKE

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def kv() -> Iterator[SharedPlugin]:
    """A fresh plugin handle per test, closed at its end (the pattern of docs/web.md)."""
    with flask_app.kv_plugin() as plugin:
        yield plugin


@pytest.fixture
def app(kv: SharedPlugin) -> Flask:
    return flask_app.create_app(kv)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


class Died(logging.Handler):
    """Set when the host notices that a plugin exited (a log record, so no polling)."""

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "exited unexpectedly" in record.getMessage():
            self.event.set()


@pytest.fixture
def died() -> Iterator[threading.Event]:
    handler = Died()
    target = logging.getLogger("pyvider_rpcplugin_sync.host")
    target.addHandler(handler)
    try:
        yield handler.event
    finally:
        target.removeHandler(handler)


def test_the_module_app_starts_no_plugin_at_import() -> None:
    plugin = flask_app.app.extensions["kv_plugin"]
    assert isinstance(plugin, SharedPlugin)
    assert plugin.pid is None
    assert plugin.health(start=False)["status"] == "not started"
    assert not [p for p in child_processes() if "kv_plugin" in cmdline(p)]


def test_put_then_get(client: FlaskClient, kv: SharedPlugin) -> None:
    assert kv.pid is None  # started by the first request, not before
    put = client.put("/kv/greeting", data=b"hello")
    assert put.status_code == 200
    assert put.get_json() == {"key": "greeting", "stored": 5}
    assert kv.pid is not None
    got = client.get("/kv/greeting")
    assert got.status_code == 200
    assert got.get_json() == {"key": "greeting", "value": "hello"}


def test_missing_key_is_404(client: FlaskClient) -> None:
    response = client.get("/kv/nothing-here")
    assert response.status_code == 404
    assert response.get_json() == {
        "error": "not found",
        "detail": "no value for key 'nothing-here'",
    }


def test_invalid_key_is_400(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KV_STORE_DIR", str(tmp_path))  # the file store checks its keys
    with flask_app.kv_plugin() as kv:
        response = flask_app.create_app(kv).test_client().put("/kv/..", data=b"x")
    assert response.status_code == 400
    assert response.get_json()["error"] == "bad request"


def test_health(client: FlaskClient, kv: SharedPlugin) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    summary = response.get_json()
    assert summary["ok"] is True
    assert summary["status"] == "serving"
    assert summary["pid"] == kv.pid
    assert summary["host_pid"] == os.getpid()
    assert summary["starts"] == 1


def test_unstartable_plugin_is_503() -> None:
    broken = SharedPlugin(
        [sys.executable, "-c", "import sys; sys.exit('no plugin here')"],
        handshake=KV_HANDSHAKE,
        stub=kv_pb2_grpc.KVStub,
    )
    with broken:
        client = flask_app.create_app(broken).test_client()
        first = client.get("/kv/a")
        second = client.get("/kv/a")  # backing off: refused at once, no new process
        health = client.get("/health")
    for response in (first, second):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.get_json()["error"] == "plugin unavailable"
    assert "exited before printing its handshake line" in first.get_json()["detail"]
    assert "next start attempt in" in second.get_json()["detail"]
    assert health.status_code == 503
    assert health.get_json()["status"] == "down"
    assert health.get_json()["failed_starts"] == 1


def test_killed_plugin_is_replaced_on_the_next_request(
    client: FlaskClient, kv: SharedPlugin, died: threading.Event
) -> None:
    assert client.put("/kv/a", data=b"1").status_code == 200
    first = kv.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    assert died.wait(10)
    response = client.put("/kv/a", data=b"2")
    assert response.status_code == 200
    assert kv.pid not in (None, first)
    summary = client.get("/health").get_json()
    assert (summary["starts"], summary["deaths"]) == (2, 1)
