"""Calls through stubs that outlive their plugin: always PluginClosed, never a raw grpc error.

Stubs kept in a variable, made with ``make_stub`` or built on ``plugin.channel`` hold
grpc multicallables; after ``close()`` or the plugin's death every way of calling
them (``__call__``, ``with_call``, ``future``, streams) raises :class:`PluginClosed`.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from process_helpers import ECHO, scenario

from pyvider_rpcplugin_sync import PluginClosed, TokenBucket
from pyvider_rpcplugin_sync._host.platform import posix_fallbacks_forced
from pyvider_rpcplugin_sync._host.process import PluginProcess
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.timeout(120)

REQUEST = echo_pb2.EchoRequest(payload=b"x")
STREAM_REQUEST = echo_pb2.StreamRequest(count=3, payload=b"x")

Call = Callable[[Any], object]
CALLS: dict[str, Call] = {
    "call": lambda stub: stub.Echo(REQUEST, timeout=5),
    "with_call": lambda stub: stub.Echo.with_call(REQUEST, timeout=5),
    "future": lambda stub: stub.Echo.future(REQUEST, timeout=5).result(),
    "stream": lambda stub: list(stub.Stream(STREAM_REQUEST, timeout=5)),
}


@pytest.mark.parametrize("how", sorted(CALLS))
@pytest.mark.parametrize("rate_limited", [False, True])
def test_kept_stubs_raise_plugin_closed_after_close(how: str, rate_limited: bool) -> None:
    bucket = TokenBucket(1e6, 1e6) if rate_limited else None
    with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, tls=False, rate_limit=bucket) as plugin:
        stubs = [
            plugin.stub,
            plugin.make_stub(echo_pb2_grpc.EchoStub),
            echo_pb2_grpc.EchoStub(plugin.channel),
        ]
        for stub in stubs:
            CALLS[how](stub)
    for stub in stubs:
        with pytest.raises(PluginClosed):
            CALLS[how](stub)


def test_many_threads_calling_across_close_see_only_plugin_closed() -> None:
    errors: list[BaseException] = []
    closed_seen = threading.Event()
    plugin = PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, tls=False).start()
    stub = plugin.stub
    started = threading.Barrier(33)

    def caller() -> None:
        started.wait()
        for _ in range(400):
            try:
                stub.Echo(REQUEST, timeout=5)
            except PluginClosed:
                closed_seen.set()
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=caller) for _ in range(32)]
    for thread in threads:
        thread.start()
    started.wait()
    plugin.close()
    for thread in threads:
        thread.join(60)
    assert closed_seen.is_set()
    assert errors == []


def test_first_call_after_death_is_plugin_closed() -> None:
    # The reaper thread may not have noticed the death when the call fails.
    for _ in range(8):
        with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, tls=False) as plugin:
            stub = plugin.stub
            stub.Echo(REQUEST, timeout=5)
            pid = plugin.pid
            assert pid is not None
            pidfd = os.pidfd_open(pid)
            try:
                os.kill(pid, signal.SIGKILL)
                # Wait until the process is gone (pidfd readable), not for our reaper.
                os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOWAIT)
            finally:
                os.close(pidfd)
            with pytest.raises(PluginClosed) as info:
                stub.Echo(REQUEST, timeout=5)
            assert info.value.returncode == -signal.SIGKILL


class PassThrough(grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(details, request)


@pytest.mark.parametrize("interceptors", ["none", "interceptor", "rate_limit"])
def test_a_stream_cut_by_a_crash_is_plugin_closed(interceptors: str) -> None:
    options: dict[str, Any] = {
        "none": {},
        "interceptor": {"interceptors": [PassThrough()]},
        "rate_limit": {"rate_limit": TokenBucket(1e6, 1e6)},
    }[interceptors]
    cmd = scenario("echo_faults")
    with PluginProcess(cmd, stub=echo_pb2_grpc.EchoStub, tls=False, **options) as plugin:
        stream = plugin.stub.Stream(echo_pb2.StreamRequest(count=3, payload=b"crash"), timeout=10)
        assert next(stream).payload == b"crash"
        with pytest.raises(PluginClosed) as info:
            next(stream)
        assert info.value.returncode == 7


def test_app_errors_still_pass_through_unchanged() -> None:
    with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, tls=False) as plugin:
        missing = plugin.channel.unary_unary("/no.Such/Method")
        with pytest.raises(grpc.RpcError) as info:
            missing(b"", timeout=5)
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.timeout(30)
def test_the_apps_own_unavailable_passes_through_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not posix_fallbacks_forced():
        # /proc says at once that the plugin is not exiting. Were the host to wait for
        # a death that is not happening, this would take 60 s. (Without /proc the host
        # waits up to 0.5 s for an exit before it passes the status on.)
        monkeypatch.setattr("pyvider_rpcplugin_sync._host.process._DEATH_NOTICE", 60.0)
    with PluginProcess(scenario("echo_faults"), stub=echo_pb2_grpc.EchoStub) as plugin:
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as info:
                plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"unavailable"), timeout=5)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
            assert info.value.details() == "try again later"
