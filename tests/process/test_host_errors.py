"""A plugin's errors reach the host's logs at ERROR, each stderr line once."""

from __future__ import annotations

import logging

import grpc
import pytest
from process_helpers import Records, scenario

from pyvider_rpcplugin_sync import PluginProcess, PluginStartError
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.timeout(60)


def echo(plugin: PluginProcess, payload: bytes) -> bytes:
    return bytes(plugin.stub.Echo(echo_pb2.EchoRequest(payload=payload), timeout=20).payload)


def errors_of(records: Records) -> str:
    return "\n".join(r.getMessage() for r in records.records if r.levelno >= logging.ERROR)


def test_a_crash_traceback_reaches_the_host_at_error(plugin_records: Records) -> None:
    with pytest.raises(PluginStartError) as caught:
        PluginProcess(scenario("echo_errors", "crash-at-start")).start()
    assert "ValueError: boom-register" in caught.value.stderr_tail
    errors = errors_of(plugin_records)
    assert "Traceback (most recent call last):" in errors
    assert 'raise ValueError("boom-register")' in errors  # the frame lines too
    assert "ValueError: boom-register" in errors


def test_an_exception_in_a_handler_is_an_error_record_with_its_traceback(
    plugin_records: Records,
) -> None:
    with PluginProcess(scenario("echo_errors"), stub=echo_pb2_grpc.EchoStub) as plugin:
        with pytest.raises(grpc.RpcError) as failed:
            echo(plugin, b"raise")
        assert failed.value.code() == grpc.StatusCode.UNKNOWN
    record = next(r for r in plugin_records.records if "boom-handler" in r.getMessage())
    assert record.levelno == logging.ERROR
    assert "Traceback (most recent call last):" in record.getMessage()
    assert record.__dict__["@module"].startswith("grpc")  # one hclog record, not raw lines


def test_an_exception_in_a_thread_is_an_error_record_with_its_traceback(
    plugin_records: Records,
) -> None:
    with PluginProcess(scenario("echo_errors"), stub=echo_pb2_grpc.EchoStub) as plugin:
        assert echo(plugin, b"thread") == b"thread"
    found = [r for r in plugin_records.records if "boom-thread" in r.getMessage()]
    assert len(found) == 1, [r.getMessage() for r in found]
    message = found[0].getMessage()
    assert found[0].levelno == logging.ERROR
    assert message.startswith("uncaught exception in thread failing-worker")
    assert "RuntimeError: boom-thread" in message and "Traceback" in message


def test_each_plain_stderr_line_is_logged_once(plugin_records: Records) -> None:
    # Our plugins send sys.stderr text both on the pipe and over StreamStdio.
    with PluginProcess(scenario("echo_errors"), stub=echo_pb2_grpc.EchoStub) as plugin:
        for n in range(3):
            echo(plugin, f"stderr:line-{n % 2}".encode())  # line-0 twice: logged twice
    # close() joined both readers: every copy from the pipe and StreamStdio arrived.
    messages = plugin_records.messages()
    assert messages.count("line-0") == 2
    assert messages.count("line-1") == 1


def test_an_app_stderr_sink_gets_the_raw_stream_and_the_log_one_copy(
    plugin_records: Records,
) -> None:
    received: list[bytes] = []
    with PluginProcess(
        scenario("echo_errors"), stub=echo_pb2_grpc.EchoStub, stdio_stderr=received.append
    ) as plugin:
        echo(plugin, b"stderr:sink-line")
    assert b"".join(received) == b"sink-line\n"
    assert plugin_records.messages().count("sink-line") == 1


def test_a_failed_start_reports_the_stderr_written_after_the_exit() -> None:
    # A wrapper script exits while its child still writes the reason to the shared stderr:
    # the error (its hint and its stderr_tail) waits, briefly, for the end of that pipe.
    wrapper = "(exec >/dev/null; sleep 0.2; echo the-real-reason >&2) & exit 3"
    with pytest.raises(PluginStartError) as caught:
        PluginProcess(["sh", "-c", wrapper], start_timeout=20).start()
    assert caught.value.returncode == 3
    assert caught.value.hint is not None and "stderr below" in caught.value.hint
    assert caught.value.stderr_tail == "the-real-reason"
