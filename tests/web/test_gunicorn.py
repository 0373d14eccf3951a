"""The example apps under a real pre-forking server: gunicorn, from PyPI.

gthread workers (2 x 4 threads, ``--preload``) serve the Flask app: 2,000 requests with
no error, one plugin per worker, a plugin killed mid-run costs at most the requests
that worker had in flight (clear 503s) and is replaced, and stopping gunicorn leaves
no plugin behind. Sync workers serve the Django project.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import flask  # noqa: F401  (test extras: missing means a broken install, not a skip)
import gunicorn as gunicorn_package  # noqa: F401
import pytest
from web_helpers import (
    Gunicorn,
    Load,
    child_processes,
    cmdline,
    gunicorn,
    http_request,
    processes_with_env,
)

pytestmark = pytest.mark.timeout(180)

WORKERS, THREADS = 2, 4
CLIENTS = 16


def environment(tmp_path: Path) -> tuple[dict[str, str], str]:
    """gunicorn's environment, with a marker that every plugin it starts inherits."""
    marker = f"PYVIDER_WEB_TEST={uuid.uuid4().hex}"
    store = tmp_path / "store"
    store.mkdir()
    name, value = marker.split("=")
    # The file store: a value PUT through one worker can be read through the other.
    env = {**os.environ, name: value, "KV_STORE_DIR": str(store)}
    return env, marker


def plugins_per_worker(server: Gunicorn) -> dict[int, int]:
    """worker -> its one plugin (asserted); every plugin is watched from now on."""
    found = server.plugin_children()
    assert len(found) == WORKERS, f"workers: {found}"
    for worker, plugins in found.items():
        assert len(plugins) == 1, f"worker {worker} has plugins {plugins}"
        server.plugins.watch(plugins[0])
    return {worker: plugins[0] for worker, plugins in found.items()}


def warm_up(server: Gunicorn) -> None:
    """Until every worker has served a request (the kernel picks the worker)."""
    load = Load(server.port)
    for round_ in range(20):
        load.run([f"warm-{round_}-{i}" for i in range(CLIENTS)], CLIENTS)
        found = server.plugin_children()
        if len(found) == WORKERS and all(found.values()):
            break
    assert load.failures == [] and set(load.statuses()) == {200}, load.statuses()


def stop_and_check(server: Gunicorn, marker: str) -> None:
    workers = server.workers()
    assert server.stop() == 0, server.log_text()
    # Workers close their plugins at exit: they are gone by the time the master is.
    assert server.plugins.running() == set(), server.log_text()
    assert processes_with_env(marker) == [], "a process of this gunicorn is still running"
    assert all(not os.path.exists(f"/proc/{pid}") for pid in workers)


def test_gthread_preload_2000_requests_and_a_killed_plugin(tmp_path: Path) -> None:
    env, marker = environment(tmp_path)
    args = ["--preload", "--workers", str(WORKERS), "--threads", str(THREADS)]
    args += ["--graceful-timeout", "10"]
    app = "pyvider_rpcplugin_sync.examples.flask_app:app"
    with gunicorn(app, args, env=env, workdir=tmp_path) as server:
        warm_up(server)
        assert sorted(plugins_per_worker(server)) == server.workers()
        # --preload imported the app in the master, which must have started nothing.
        assert not [p for p in child_processes(server.master) if "kv_plugin" in cmdline(p)]

        began = time.monotonic()
        load = Load(server.port)
        load.run([f"key-{i}" for i in range(1000)], CLIENTS)  # 1,000 PUT + 1,000 GET
        took = time.monotonic() - began
        assert load.failures == []
        assert load.statuses() == {200: 2000}, load.statuses()
        print(f"2,000 requests in {took:.1f} s, {2000 / took:.0f}/s, no error")

        # Kill one worker's plugin with SIGKILL in the middle of a second run.
        before = plugins_per_worker(server)
        victim_worker, victim = sorted(before.items())[0]
        load = Load(server.port)
        killed = threading.Event()

        def kill_when_busy() -> None:
            if load.at(500).wait(60):
                os.kill(victim, signal.SIGKILL)
                killed.set()

        killer = threading.Thread(target=kill_when_busy)
        killer.start()
        load.run([f"after-{i}" for i in range(1000)], CLIENTS)
        killer.join()
        assert killed.is_set()
        statuses = load.statuses()
        unavailable = [r for _, _, r in load.replies if r.status == 503]
        print(f"second run with a SIGKILL: {statuses}")
        for reply in unavailable:
            print(f"  503: {reply.body}")
        assert load.failures == []
        assert set(statuses) <= {200, 503}, statuses
        # At most what that worker had in flight: one request per thread.
        assert len(unavailable) <= THREADS, statuses
        for reply in unavailable:
            assert reply.body["error"] == "plugin unavailable"
            assert reply.headers["retry-after"] == "1"

        # The worker restarted its plugin; the other worker's plugin was not touched.
        assert server.plugins.wait_exit(victim, timeout=10)
        assert server.plugins.running() == set(before.values()) - {victim}
        after = plugins_per_worker(server)
        assert after[victim_worker] != victim
        others = {w: p for w, p in before.items() if w != victim_worker}
        assert {w: after[w] for w in others} == others
        log = server.log_text()
        assert f"(pid {victim}) exited with code -9" in log
        assert "restarting it now" in log

        stop_and_check(server, marker)


def test_sync_workers_serve_the_django_project(tmp_path: Path) -> None:
    import django  # noqa: F401

    env, marker = environment(tmp_path)
    env["DJANGO_SETTINGS_MODULE"] = "pyvider_rpcplugin_sync.examples.django_app.settings"
    args = ["--preload", "--workers", str(WORKERS), "--worker-class", "sync"]
    app = "pyvider_rpcplugin_sync.examples.django_app.wsgi:application"
    with gunicorn(app, args, env=env, workdir=tmp_path) as server:
        warm_up(server)
        plugins = plugins_per_worker(server)
        load = Load(server.port)
        load.run([f"key-{i}" for i in range(200)], 8)
        assert load.failures == []
        assert load.statuses() == {200: 400}
        health = http_request(server.port, "GET", "/health")
        assert health.status == 200
        assert plugins[health.body["host_pid"]] == health.body["pid"]
        stop_and_check(server, marker)
