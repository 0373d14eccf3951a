"""The kit's command line: usage errors, a command that cannot start, exit codes, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(30)
KIT = [sys.executable, "-m", "pyvider_rpcplugin_sync", "conformance"]


def kit(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*KIT, *argv], capture_output=True, text=True, timeout=20, check=False)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ((), "say what to check"),
        (("plugin",), "give the command after --"),
        (("plugin", "--cookie", "nokey", "--", "x"), "--cookie wants KEY=VALUE"),
        (("plugin", "--versions", "5,six", "--", "x"), "--versions wants comma-separated integers"),
        (("host", "--"), "give the command after --"),
    ],
)
def test_usage_errors_exit_2(argv: tuple[str, ...], words: str) -> None:
    done = kit(*argv)
    assert done.returncode == 2, done
    assert words in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("kind", ["plugin", "host"])
def test_a_command_that_cannot_start_exits_3_with_a_hint(kind: str) -> None:
    done = kit(kind, "--", "/nonexistent/plugin-binary")
    assert done.returncode == 3, done
    assert "error: cannot start '/nonexistent/plugin-binary'" in done.stderr
    assert "hint:" in done.stderr and "Traceback" not in done.stderr


def test_the_battery_runs_from_python_too(marker: str) -> None:
    from peers import BROKEN

    from pyvider_rpcplugin_sync.conformance import PluginOptions, check_plugin

    report = check_plugin(PluginOptions([sys.executable, str(BROKEN), "stdout-noise"]))
    assert report.exit_code == 1
    assert report.status_of("handshake.line") == "fail"
    assert report.status_of("cookie.refuses") == "pass"
