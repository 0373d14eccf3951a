"""The example Django project on Django's test client, with a real KV plugin behind it."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.test import Client

from pyvider_rpcplugin_sync import SharedPlugin
from pyvider_rpcplugin_sync.examples import kv_pb2_grpc
from pyvider_rpcplugin_sync.examples.kv_plugin import KV_HANDSHAKE

SETTINGS = "pyvider_rpcplugin_sync.examples.django_app.settings"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def views() -> Any:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", SETTINGS)
    assert os.environ["DJANGO_SETTINGS_MODULE"] == SETTINGS
    django.setup()
    from pyvider_rpcplugin_sync.examples.django_app import views

    return views


@pytest.fixture
def kv(views: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[SharedPlugin]:
    """A fresh plugin per test in place of the views' own, closed at its end."""
    with SharedPlugin(views.KV_COMMAND, handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub) as kv:
        monkeypatch.setattr(views, "KV", kv)
        yield kv


@pytest.fixture
def client(kv: SharedPlugin) -> Client:
    return Client()


def test_the_views_start_no_plugin_at_import(views: Any) -> None:
    assert isinstance(views.KV, SharedPlugin)
    assert views.KV.pid is None
    assert views.KV.health(start=False)["status"] == "not started"


def test_put_then_get(client: Client, kv: SharedPlugin) -> None:
    assert kv.pid is None
    put = client.put("/kv/greeting", data=b"hello", content_type="application/octet-stream")
    assert put.status_code == 200
    assert put.json() == {"key": "greeting", "stored": 5}
    got = client.get("/kv/greeting")
    assert got.status_code == 200
    assert got.json() == {"key": "greeting", "value": "hello"}


def test_missing_key_is_404(client: Client) -> None:
    response = client.get("/kv/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error": "not found", "detail": "no value for key 'nothing-here'"}


def test_other_methods_are_refused(client: Client) -> None:
    assert client.post("/kv/a", data=b"x", content_type="text/plain").status_code == 405
    assert client.delete("/health").status_code == 405


def test_health(client: Client, kv: SharedPlugin) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    summary = response.json()
    assert (summary["ok"], summary["status"], summary["pid"]) == (True, "serving", kv.pid)
    assert summary["host_pid"] == os.getpid()


def test_unavailable_plugin_is_503(views: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = SharedPlugin(
        [sys.executable, "-c", "import sys; sys.exit(3)"],
        handshake=KV_HANDSHAKE,
        stub=kv_pb2_grpc.KVStub,
    )
    monkeypatch.setattr(views, "KV", broken)
    with broken:
        response = Client().get("/kv/a")
        health = Client().get("/health")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    body = response.json()
    assert body["error"] == "plugin unavailable"
    assert "exited before printing its handshake line" in body["detail"]
    assert health.status_code == 503
    assert health.json()["ok"] is False


def test_closed_plugin_is_503(client: Client, kv: SharedPlugin) -> None:
    assert client.put("/kv/a", data=b"1", content_type="text/plain").status_code == 200
    kv.close()
    response = client.get("/kv/a")
    assert response.status_code == 503
    assert "closed" in response.json()["detail"]
