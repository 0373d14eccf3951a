"""GRPCBroker callbacks with real Go go-plugin 1.0.1 programs (go-plugin's bidirectional example).

``go/cmd/counterhost`` serves an AddHelper on a brokered id for every ``put``; the
counter plugin dials it and stores ``Sum(current, n)``. Here: the Go host with our
counter plugin (plaintext and AutoMTLS, unix and TCP), our host with the Go counter
plugin (plaintext; under AutoMTLS go-plugin 1.0.1's plugin cannot dial a host-served
brokered connection, go-plugin issue 109), and Go with Go for reference.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from fakehost import MARKER_VAR

from pyvider_rpcplugin_sync import PluginProcess
from pyvider_rpcplugin_sync._protos import counter_pb2_grpc
from pyvider_rpcplugin_sync.examples import counter_host
from pyvider_rpcplugin_sync.examples.counter_plugin import COUNTER_HANDSHAKE

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

REPO_ROOT = Path(__file__).resolve().parents[2]
PYTHON_COUNTER = f"{shlex.quote(sys.executable)} -m pyvider_rpcplugin_sync.examples.counter_plugin"
HOST_TIMEOUT = 45.0
OPS = (
    "put",
    "a",
    "2",
    "put",
    "a",
    "40",
    "put",
    "b",
    "-5",
    "put",
    "a",
    "-1",
    "get",
    "a",
    "get",
    "b",
)
EXPECTED = "41\n-5\n"
# What go-plugin 1.0.1's plugin says when it dials a host-served brokered server
# under AutoMTLS: it dials with its *server* TLS config, which names no server and
# trusts no host certificate (go-plugin issue 109, fixed in 1.4.4).
GO_ISSUE_109 = "certificate is valid for localhost, not unused"


def run_counterhost(
    binary: Path, plugin: str, marker: str, tmpdir: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("COUNTER_", "PLUGIN_", "BASIC_PLUGIN", "KV_"))
    }
    full_env = {
        **clean,
        "COUNTER_PLUGIN": plugin,
        "TMPDIR": str(tmpdir),
        "PYTHONUNBUFFERED": "1",
        MARKER_VAR: marker,
        **env,
    }
    return subprocess.run(
        [str(binary), *OPS],
        env=full_env,
        cwd=REPO_ROOT,  # `-m pyvider_rpcplugin_sync...` works without an install
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=HOST_TIMEOUT,
        check=False,
    )


def describe(run: subprocess.CompletedProcess[str]) -> str:
    return f"exit {run.returncode}\n--- stdout ---\n{run.stdout}\n--- stderr ---\n{run.stderr}"


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize("automtls", [False, True], ids=["plain", "automtls"])
def test_go_counter_host_to_our_counter_plugin(
    go_bins: dict[str, Path], marker: str, tmpdir_short: Path, automtls: bool, transport: str
) -> None:
    """Every put is a callback from our plugin into the Go host's brokered AddHelper.

    Under AutoMTLS the Go host serves it with its P-521 certificate: our plugin dials
    through the TLS bridge, trusting exactly the host's PLUGIN_CLIENT_CERT. Exit 0 means
    every op worked and go-plugin did not have to SIGKILL the plugin.
    """
    env = {"PLUGIN_TRANSPORT": transport, **({"COUNTER_AUTOMTLS": "1"} if automtls else {})}
    run = run_counterhost(go_bins["counterhost"], PYTHON_COUNTER, marker, tmpdir_short, env)
    assert run.returncode == 0, describe(run)
    assert run.stdout == EXPECTED, describe(run)


def go_counter_plugin(
    go_bins: dict[str, Path], marker: str, tmpdir: Path, *, tls: bool
) -> PluginProcess:
    return PluginProcess(
        [str(go_bins["counterplugin"])],
        handshake=COUNTER_HANDSHAKE,
        stub=counter_pb2_grpc.CounterStub,
        tls=tls,
        env={"TMPDIR": str(tmpdir), MARKER_VAR: marker},
        start_timeout=30,
    )


def test_our_host_serves_sum_to_the_go_counter_plugin(
    go_bins: dict[str, Path], marker: str, tmpdir_short: Path
) -> None:
    with go_counter_plugin(go_bins, marker, tmpdir_short, tls=False) as plugin:
        counts = list(counter_host.run(plugin, counter_host.parse_ops(OPS)))
    assert counts == [41, -5]
    assert plugin.returncode == 0, plugin.stderr_tail


def test_our_host_automtls_go_counter_plugin_fails_as_go_plugin_issue_109(
    go_bins: dict[str, Path], marker: str, tmpdir_short: Path
) -> None:
    """Expected failure, on the Go side: go-plugin 1.0.1 plugins cannot dial a brokered
    connection the host serves under AutoMTLS (go-plugin issue 109, fixed in 1.4.4).

    The Go plugin dials with its server TLS config: no ServerName (so the name checked
    is grpc-go's dummy authority "unused") and no root for the host's certificate. Our
    host's brokered server is reached and offers its certificate; the Go client rejects
    it. Plain calls on the same AutoMTLS session work, and Go host with Go plugin fails
    the same way (the next test).
    """
    with go_counter_plugin(go_bins, marker, tmpdir_short, tls=True) as plugin:
        assert counter_host.get(plugin, "a") == 0  # the main connection: mutual TLS works
        with pytest.raises(grpc.RpcError) as failed:
            counter_host.put(plugin, "a", 2)
    assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
    assert GO_ISSUE_109 in (failed.value.details() or ""), failed.value.details()
    assert plugin.returncode == 0, plugin.stderr_tail


@pytest.mark.parametrize("automtls", [False, True], ids=["plain", "automtls"])
def test_go_counter_host_to_go_counter_plugin_for_reference(
    go_bins: dict[str, Path], marker: str, tmpdir_short: Path, automtls: bool
) -> None:
    """Go with Go: callbacks work in plaintext; under AutoMTLS they fail with issue 109."""
    env = {"COUNTER_AUTOMTLS": "1"} if automtls else {}
    plugin = str(go_bins["counterplugin"])
    run = run_counterhost(go_bins["counterhost"], plugin, marker, tmpdir_short, env)
    if automtls:
        assert run.returncode == 1, describe(run)
        assert GO_ISSUE_109 in run.stderr, describe(run)
    else:
        assert run.returncode == 0, describe(run)
        assert run.stdout == EXPECTED, describe(run)
