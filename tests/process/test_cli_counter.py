"""``python -m pyvider_rpcplugin_sync counter``: go-plugin's bidirectional example host."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(90)

CLI = [sys.executable, "-m", "pyvider_rpcplugin_sync", "counter"]
COUNTER_PLUGIN = [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.counter_plugin"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COUNTER_")}
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
        env={**clean, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize("tls", [True, False], ids=["tls", "plain"])
def test_puts_call_back_into_the_host_and_gets_print_the_counts(tls: bool) -> None:
    flags = [] if tls else ["--no-tls"]
    result = run(*flags, "--", *COUNTER_PLUGIN, "put", "a", "2", "put", "a", "40", "get", "a")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "42\n"


def test_counts_persist_in_the_plugins_store_dir(tmp_path: Path) -> None:
    env = {"COUNTER_STORE_DIR": str(tmp_path)}
    assert run("put", "k", "5", env=env).returncode == 0
    result = run("put", "k", "-7", "get", "k", "get", "other", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "-2\n0\n"
    assert (tmp_path / "kv_k").read_text() == "-2"


@pytest.mark.parametrize(
    "words",
    [[], ["put", "a"], ["put", "a", "two"], ["frobnicate"], ["--", "put", "a", "1"]],
    ids=["nothing", "short-put", "not-a-number", "unknown-op", "empty-command"],
)
def test_bad_words_are_a_usage_error_without_traceback(words: list[str]) -> None:
    result = run(*words)
    assert result.returncode == 2, result
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
