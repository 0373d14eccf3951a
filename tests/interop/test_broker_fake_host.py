"""The newest go-plugin host (v1.8, protocol fake) and our counter plugin's broker dials.

Real go-plugin 1.8.0 and 1.6.0 hosts serve our plugin's callbacks in
test_go18_host.py; the fake stays for what a real host cannot be made to do: name a
broker id it never serves. ``fakehost.accept_and_serve`` serves as newer hosts (1.4.4+,
go-plugin issue 109 fixed) do; see ``fakehost.FakeNewestHost`` for the rest of the host.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import grpc
import pytest
from fakehost import MARKER_VAR, FakeNewestHost
from test_fake_newest_host import assert_graceful

from pyvider_rpcplugin_sync._protos import counter_pb2, counter_pb2_grpc

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

REPO_ROOT = Path(__file__).resolve().parents[2]
COUNTER_PLUGIN = [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.counter_plugin"]


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("COUNTER_", "PLUGIN_", "BASIC_PLUGIN")):
            monkeypatch.delenv(name)


def counter_host(marker: str, *, auto_mtls: bool, transport: str) -> FakeNewestHost:
    return FakeNewestHost(
        COUNTER_PLUGIN,
        cookie=("BASIC_PLUGIN", "hello"),
        auto_mtls=auto_mtls,
        env={MARKER_VAR: marker, "PLUGIN_TRANSPORT": transport},
        cwd=REPO_ROOT,
        start_timeout=30,
    )


def test_an_id_the_host_never_served_times_out_in_the_plugin(marker: str) -> None:
    """go-plugin's Dial semantics: 5 s for the ConnInfo, then "timeout waiting for
    connection info"; the plugin reports it as the failed call's details."""
    host = counter_host(marker, auto_mtls=True, transport="unix")
    with host:
        stub = counter_pb2_grpc.CounterStub(host.client())
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as unknown:
            stub.Put(counter_pb2.CounterPutRequest(add_server=99, key="c", value=1), timeout=20)
        waited = time.monotonic() - started
        details = unknown.value.details() or ""
        assert "timeout waiting for connection info" in details and "broker id 99" in details
        assert 5.0 <= waited < 15.0, waited
        report = host.kill()
    assert_graceful(report)
