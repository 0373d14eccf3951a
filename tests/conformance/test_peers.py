"""The kit against every real peer and every broken plugin, through its command line.

Each row of ``peers.PLUGIN_PEERS`` / ``peers.HOST_PEERS`` is one test: the kit
runs with ``--json`` and the test asserts the exact set of failed checks (a
plugin) or the named checks' statuses (a host), and the exit code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from peers import HOST_PEERS, PLUGIN_PEERS, HostPeer, PluginPeer

pytestmark = pytest.mark.timeout(90)
KIT = [sys.executable, "-m", "pyvider_rpcplugin_sync", "conformance"]


def run_kit(argv: list[str], timeout: float = 60) -> tuple[int, dict[str, Any], str]:
    done = subprocess.run(
        [*KIT, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert "Traceback" not in done.stderr, done.stderr
    try:
        document = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(
            f"not JSON (exit {done.returncode}):\n{done.stdout}\n{done.stderr}"
        ) from None
    return done.returncode, document, done.stderr


def _needed(request: pytest.FixtureRequest, needs: str | None) -> Any:
    return None if needs is None else request.getfixturevalue(needs)


@pytest.mark.parametrize("peer", PLUGIN_PEERS, ids=lambda p: p.name)
def test_plugin_peer(peer: PluginPeer, request: pytest.FixtureRequest, marker: str) -> None:
    cmd = peer.cmd(_needed(request, peer.needs))
    code, report, stderr = run_kit(["plugin", "--json", *peer.args, "--", *cmd])
    failed = {r["check"] for r in report["results"] if r["status"] == "fail"}
    details = {r["check"]: r["observed"] for r in report["results"] if r["status"] == "fail"}
    assert failed == peer.fails, details
    assert code == peer.exit_code == report["exit_code"], stderr
    for result in report["results"]:
        if result["status"] == "fail":
            assert result["hint"], result


@pytest.mark.parametrize("peer", HOST_PEERS, ids=lambda p: p.name)
def test_host_peer(peer: HostPeer, request: pytest.FixtureRequest, marker: str) -> None:
    cmd = peer.cmd(_needed(request, peer.needs))
    code, report, stderr = run_kit(["host", "--json", *peer.args, "--", *cmd])
    statuses = {r["check"]: r["status"] for r in report["results"]}
    observed = {r["check"]: r["observed"] for r in report["results"]}
    for check, expected in peer.expect.items():
        assert statuses.get(check) == expected, (check, observed.get(check), observed)
    for check, text in peer.observed.items():
        assert observed.get(check) == text, (check, observed.get(check))
    assert code == peer.exit_code == report["exit_code"], (stderr, observed)
