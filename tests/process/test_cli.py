"""The command line as a user runs it: real subprocesses, real plugins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(90)

CLI = [sys.executable, "-m", "pyvider_rpcplugin_sync"]
KV_PLUGIN = [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.kv_plugin"]


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
        env={**os.environ, **(env or {})},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
    )


def test_demo_runs_the_echo_plugin_with_mtls() -> None:
    result = run("demo", "--threads", "3", "--calls", "50")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "tls: mutual TLS, plugin certificate ECDSA secp256r1, pinned" in out
    assert "health: SERVING" in out
    assert "echo: hello, plugin" in out
    assert "150 echo calls from 3 threads: all replies verified" in out
    assert "exit code 0" in out


def test_inspect_lists_services_and_tls() -> None:
    result = run("inspect", "--cookie", "BASIC_PLUGIN=hello", "--", *KV_PLUGIN)
    assert result.returncode == 0, result.stderr
    for needle in (
        "negotiated version: 1",
        "ECDSA secp256r1",
        "health (plugin):    SERVING",
        "  - proto.KV",
        "  - plugin.GRPCController",
        "exit code 0",
    ):
        assert needle in result.stdout


def test_inspect_plaintext_over_tcp() -> None:
    result = run(
        "inspect",
        "--no-tls",
        "--transport",
        "tcp",
        "--cookie",
        "BASIC_PLUGIN=hello",
        "--",
        *KV_PLUGIN,
    )
    assert result.returncode == 0, result.stderr
    assert "network=tcp" in result.stdout
    assert "tls:                off (plaintext)" in result.stdout


def test_inspect_failure_is_a_message_not_a_traceback() -> None:
    result = run("inspect", "--", *KV_PLUGIN)  # default cookie: the KV plugin refuses it
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "pass --cookie KEY=VALUE" in result.stderr
    assert "This binary is a plugin" in result.stderr
    assert "Traceback" not in result.stderr


def test_inspect_missing_program() -> None:
    result = run("inspect", "--", "/nonexistent/plugin")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr


def test_kv_put_then_get_across_runs(tmp_path: Path) -> None:
    env = {"KV_STORE_DIR": str(tmp_path)}
    assert run("kv", "put", "greeting", "hello world", env=env).returncode == 0
    got = run("kv", "--", *KV_PLUGIN, "get", "greeting", env=env)
    assert got.returncode == 0, got.stderr
    assert got.stdout == "hello world\n"
    assert (tmp_path / "kv_greeting").read_bytes() == b"hello world"


def test_kv_missing_key_is_a_clear_error(tmp_path: Path) -> None:
    result = run("kv", "get", "absent", env={"KV_STORE_DIR": str(tmp_path)})
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2() -> None:
    assert run("kv", "frobnicate").returncode == 2
    assert run().returncode == 2
