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
    bare = run()
    assert bare.returncode == 2
    assert bare.stdout == ""  # a usage error, on stderr like every other
    assert bare.stderr.startswith("usage: ") and "error: a command is required" in bare.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["inspect", "--start-timeout", "-5", "--", *KV_PLUGIN],
        ["inspect", "--connect-timeout", "0", "--", *KV_PLUGIN],
        ["kv", "--start-timeout", "nan", "get", "k"],
        ["demo", "--threads", "0"],
        ["demo", "--calls", "-1"],
    ],
)
def test_numbers_out_of_range_are_usage_errors(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 2, result
    assert "it must be above 0" in result.stderr
    assert "Traceback" not in result.stderr and "max()" not in result.stderr


JUNK_PLUGIN = """
import os, sys
junk = bytes(b for b in range(256) if b != 10) * 2
sys.stderr.buffer.write(b"\\x1b[31m" + junk + b"\\n")
sys.stderr.flush()
if sys.argv[1] == "stdout":
    os.write(1, junk + b"\\n")
sys.exit(1)
"""


@pytest.mark.parametrize("where", ["stdout", "stderr"])
def test_binary_junk_from_a_plugin_is_shown_escaped_and_short(tmp_path: Path, where: str) -> None:
    plugin = tmp_path / "junk.py"
    plugin.write_text(JUNK_PLUGIN)
    result = run("inspect", "--no-tls", "--", sys.executable, str(plugin), where)
    assert result.returncode == 1
    if where == "stdout":  # the junk as a handshake line
        expected = "error: unrecognized remote plugin message: '\\x00\\x01"
    else:  # the junk in the stderr tail of a plugin that exited
        expected = "error: plugin exited before printing its handshake line"
        assert "\\x1b[31m\\x00\\x01" in result.stderr
    assert result.stderr.startswith(expected), result.stderr
    for line in result.stderr.splitlines():
        assert len(line) <= 210, line
        assert line.isprintable() and line.isascii(), line


def test_kv_put_then_get_with_the_default_per_user_store(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KV_STORE_DIR"}
    env["XDG_STATE_HOME"] = str(tmp_path)
    put = subprocess.run(
        [*CLI, "kv", "put", "greeting", "hi there"], env=env, capture_output=True, check=False
    )
    assert put.returncode == 0, put.stderr
    got = subprocess.run(
        [*CLI, "kv", "get", "greeting"], env=env, capture_output=True, text=True, check=False
    )
    assert got.returncode == 0, got.stderr
    assert got.stdout == "hi there\n"
    store = tmp_path / "pyvider-rpcplugin-sync" / "kv"
    assert (store / "kv_greeting").read_bytes() == b"hi there"
    assert store.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in store.iterdir()] == ["kv_greeting"]  # no temporary file left


def test_kv_memory_store_forgets_between_runs() -> None:
    env = {"KV_STORE_DIR": ":memory:"}
    assert run("kv", "put", "greeting", "hello", env=env).returncode == 0
    result = run("kv", "get", "greeting", env=env)
    assert result.returncode == 1
    assert "NOT_FOUND" in result.stderr


def test_version_matches_the_installed_metadata() -> None:
    from importlib import metadata

    result = run("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"pyvider-rpcplugin-sync {metadata.version('pyvider-rpcplugin-sync')}\n"
    import pyvider_rpcplugin_sync

    assert pyvider_rpcplugin_sync.__version__ == metadata.version("pyvider-rpcplugin-sync")


def test_a_silent_program_gets_no_promise_of_stderr() -> None:
    result = run("inspect", "--", "/bin/true")
    assert result.returncode == 1
    assert "below" not in result.stderr
    assert "hint: it wrote nothing to stderr" in result.stderr
    assert "plugin stderr" not in result.stderr


def test_a_failing_program_shows_the_stderr_it_promises() -> None:
    result = run("inspect", "--", "sh", "-c", "echo no-such-plugin-here >&2; exit 3")
    assert result.returncode == 1
    assert "see the plugin's stderr below" in result.stderr
    below = result.stderr.split("plugin stderr (last lines):\n", 1)[1]
    assert "no-such-plugin-here" in below


def test_hints_name_the_command_line_flags() -> None:
    timeout = run("inspect", "--start-timeout", "0.3", "--", "sleep", "20")
    assert timeout.returncode == 1
    assert "hint: raise --start-timeout" in timeout.stderr
    no_cert = run("inspect", "--", "sh", "-c", "echo '1|1|tcp|127.0.0.1:9|grpc|'; sleep 20")
    assert no_cert.returncode == 1
    assert "or use --no-tls" in no_cert.stderr
    for result in (timeout, no_cert):
        assert "start_timeout" not in result.stderr and "tls=False" not in result.stderr
