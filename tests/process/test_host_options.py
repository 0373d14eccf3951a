"""Host options: interceptors, channel options, message sizes, on_exit, abandon."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from process_helpers import ECHO, scenario

from pyvider_rpcplugin_sync import (
    DEFAULT_MAX_MESSAGE_SIZE,
    PluginClosed,
    PluginProcess,
    PluginStartError,
)
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc
from pyvider_rpcplugin_sync.testing import PluginProcessFactory

pytestmark = pytest.mark.timeout(60)
MIB = 1024 * 1024
ECHO_METHOD = "/pyvider_rpcplugin_sync.echo.Echo/Echo"


def echo(plugin: PluginProcess, payload: bytes) -> bytes:
    return bytes(plugin.stub.Echo(echo_pb2.EchoRequest(payload=payload), timeout=20).payload)


class MethodRecorder(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self.methods: list[str] = []

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        self.methods.append(details.method)
        return continuation(details, request)


def test_interceptors_see_the_application_calls_only() -> None:
    recorder = MethodRecorder()
    with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, interceptors=[recorder]) as plugin:
        assert echo(plugin, b"one") == b"one"
        assert plugin.ping()  # health goes around the interceptors
    assert recorder.methods == [ECHO_METHOD]


def test_opentelemetry_client_interceptor_records_spans_and_propagates_context() -> None:
    from opentelemetry.instrumentation.grpc import client_interceptor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import SpanKind, StatusCode

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with PluginProcess(
        scenario("echo_errors"),
        stub=echo_pb2_grpc.EchoStub,
        interceptors=[client_interceptor(tracer_provider=provider)],
    ) as plugin:
        traceparent = echo(plugin, b"traceparent").decode()
        with pytest.raises(grpc.RpcError):
            echo(plugin, b"raise")
    spans = exporter.get_finished_spans()
    assert [span.name for span in spans] == [
        "/pyvider_rpcplugin_sync.echo.Echo/Echo",
        "/pyvider_rpcplugin_sync.echo.Echo/Echo",
    ]
    ok, failed = spans
    assert ok.kind == SpanKind.CLIENT
    assert ok.attributes is not None and ok.attributes["rpc.system"] == "grpc"
    # The plugin received the span's context in the W3C traceparent header.
    assert traceparent.split("-")[1] == f"{ok.context.trace_id:032x}"
    assert failed.status.status_code == StatusCode.ERROR


def test_the_default_message_size_is_the_same_large_one_on_both_sides() -> None:
    # 5 MiB each way: beyond grpcio's own 4 MiB receive default, on host and plugin.
    assert DEFAULT_MAX_MESSAGE_SIZE == 2**31 - 1  # go-plugin's host value, both sides
    big = os.urandom(5 * MIB)
    with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub) as plugin:
        assert echo(plugin, big) == big


# These use the library's own rpcplugin_process fixture (closed after the test, leaks fail).


def test_max_message_size_on_the_host(rpcplugin_process: PluginProcessFactory) -> None:
    plugin = rpcplugin_process(ECHO, stub=echo_pb2_grpc.EchoStub, max_message_size=1024)
    assert echo(plugin, b"x" * 900) == b"x" * 900
    with pytest.raises(grpc.RpcError) as refused:
        echo(plugin, b"x" * 2048)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_max_message_size_on_the_plugin(rpcplugin_process: PluginProcessFactory) -> None:
    plugin = rpcplugin_process(
        scenario("echo_errors"), stub=echo_pb2_grpc.EchoStub, env={"MAX_MESSAGE_SIZE": "1024"}
    )
    assert echo(plugin, b"x" * 900) == b"x" * 900
    with pytest.raises(grpc.RpcError) as refused:
        echo(plugin, b"x" * 2048)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert plugin.ping()  # the plugin still serves


def test_channel_options_reach_the_channel_and_their_sizes_win(
    rpcplugin_process: PluginProcessFactory,
) -> None:
    options = [("grpc.max_receive_message_length", 1024), ("grpc.keepalive_time_ms", 30000)]
    plugin = rpcplugin_process(ECHO, stub=echo_pb2_grpc.EchoStub, channel_options=options)
    assert echo(plugin, b"y" * 900) == b"y" * 900
    with pytest.raises(grpc.RpcError) as refused:
        echo(plugin, b"y" * 2048)  # sent fine, the reply is over the receive limit
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_invalid_max_message_size_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        PluginProcess(ECHO, max_message_size=0)


class ExitCalls:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []
        self.done = threading.Event()

    def __call__(self, code: int) -> None:
        self.calls.append((code, threading.current_thread().name))
        self.done.set()


def test_on_exit_reports_a_crash_once_from_a_library_thread() -> None:
    exits = ExitCalls()
    with PluginProcess(
        scenario("echo_faults"), stub=echo_pb2_grpc.EchoStub, on_exit=exits
    ) as plugin:
        with pytest.raises(PluginClosed, match="exited"):
            echo(plugin, b"crash")
        assert exits.done.wait(10)
    assert len(exits.calls) == 1
    code, thread = exits.calls[0]
    assert code == 7
    assert thread != threading.main_thread().name and thread.endswith("-on-exit")


def test_on_exit_runs_before_close_returns() -> None:
    exits = ExitCalls()
    plugin = PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, on_exit=exits).start()
    assert exits.calls == []
    plugin.close()
    assert [code for code, _ in exits.calls] == [0]


def test_on_exit_reports_a_plugin_that_failed_to_start() -> None:
    exits = ExitCalls()
    with pytest.raises(PluginStartError):
        PluginProcess(scenario("echo_errors", "crash-at-start"), on_exit=exits).start()
    assert exits.done.wait(10)
    assert [code for code, _ in exits.calls] == [1]  # the traceback's exit code


def test_an_on_exit_that_raises_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken(code: int) -> None:
        raise RuntimeError("callback bug")

    with PluginProcess(ECHO, on_exit=broken):
        pass
    failures = [r for r in caplog.records if "on_exit callback" in r.getMessage()]
    assert len(failures) == 1 and failures[0].exc_info is not None


def test_abandon_in_a_forked_child_leaves_the_plugin_to_the_parent() -> None:
    with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub) as plugin:
        assert echo(plugin, b"before") == b"before"
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child touches no grpc object
            os.close(read_end)
            try:
                plugin.abandon()
                try:
                    _ = plugin.stub
                    verdict = b"stub still usable"
                except PluginClosed as exc:
                    verdict = b"ok" if "abandoned after fork" in exc.message else b"wrong"
            except BaseException as exc:
                verdict = repr(exc).encode()
            os.write(write_end, verdict)
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end, "rb") as pipe:
            verdict = pipe.read()
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert verdict == b"ok"
        assert echo(plugin, b"after") == b"after"  # the child's exit did not touch it
    assert plugin.returncode == 0


def test_something_else_than_an_interceptor_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match="not a grpc client interceptor"):
        PluginProcess(ECHO, interceptors=[object()])


def test_shared_plugin_passes_the_options_to_each_plugin() -> None:
    from pyvider_rpcplugin_sync import SharedPlugin

    recorder, exits = MethodRecorder(), ExitCalls()
    shared = SharedPlugin(
        ECHO,
        stub=echo_pb2_grpc.EchoStub,
        interceptors=[recorder],
        on_exit=exits,
        max_message_size=1024,
    )
    with shared:
        reply = shared.stub.Echo(echo_pb2.EchoRequest(payload=b"via shared"), timeout=20)
        assert reply.payload == b"via shared"
        with pytest.raises(grpc.RpcError) as refused:
            shared.stub.Echo(echo_pb2.EchoRequest(payload=b"z" * 2048), timeout=20)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert recorder.methods == [ECHO_METHOD, ECHO_METHOD]
    assert [code for code, _ in exits.calls] == [0]
