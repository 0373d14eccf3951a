"""The newest go-plugin host (v1.8, protocol fake) serving callbacks to our counter plugin.

Newer hosts (1.4.4+, go-plugin issue 109 fixed) serve a brokered connection with
their AutoMTLS identity, require the plugin's certificate, and listen in their socket
directory. ``fakehost.accept_and_serve`` does that; our counter plugin dials it for
every Put. See ``fakehost.FakeNewestHost`` for the rest of the host.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import grpc
import pytest
from fakehost import MARKER_VAR, FakeNewestHost, accept_and_serve
from test_fake_newest_host import assert_graceful, assert_host_clean

from pyvider_rpcplugin_sync._protos import counter_pb2, counter_pb2_grpc
from pyvider_rpcplugin_sync.examples.counter_host import add_adder

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


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize("auto_mtls", [False, True], ids=["plain", "automtls"])
def test_fake_newest_host_serves_sum_to_our_counter_plugin(
    marker: str, auto_mtls: bool, transport: str
) -> None:
    host = counter_host(marker, auto_mtls=auto_mtls, transport=transport)
    with host:  # starts it
        channel = host.client()
        stub = counter_pb2_grpc.CounterStub(channel)
        for service_id, value in ((1, 5), (2, 37), (3, -2)):
            server = accept_and_serve(host, service_id, add_adder)
            try:
                request = counter_pb2.CounterPutRequest(add_server=service_id, key="c", value=value)
                stub.Put(request, timeout=20)
            finally:
                server.stop(None).wait()
        assert stub.Get(counter_pb2.CounterGetRequest(key="c"), timeout=20).value == 40
        report = host.kill()
    assert_graceful(report)
    assert_host_clean(host)


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
