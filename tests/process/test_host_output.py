"""The plugin's stdout and stderr: drained without blocking, stderr parsed into log records."""

from __future__ import annotations

import logging
import time

import pytest
from process_helpers import Records, scenario

from pyvider_rpcplugin_sync import HandshakeConfig, PluginStartError
from pyvider_rpcplugin_sync._constants import STDERR_TAIL_LINES
from pyvider_rpcplugin_sync._host.process import PluginProcess
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.timeout(60)


def echo(plugin: PluginProcess, payload: bytes, timeout: float = 20) -> bytes:
    return bytes(plugin.stub.Echo(echo_pb2.EchoRequest(payload=payload), timeout=timeout).payload)


def test_flooding_stdout_and_stderr_never_blocks() -> None:
    with PluginProcess(scenario("echo_faults"), stub=echo_pb2_grpc.EchoStub) as plugin:
        began = time.monotonic()
        # 8 MiB on each stream, far beyond a 64 KiB pipe buffer: only a host that
        # keeps draining both lets the plugin's write (and so its reply) finish.
        assert echo(plugin, b"flood:8:8") == b"flood:8:8"
        elapsed = time.monotonic() - began
        assert echo(plugin, b"after") == b"after"
        tail = plugin.stderr_tail.splitlines()
    assert elapsed < 15
    assert len(tail) == STDERR_TAIL_LINES
    assert set(tail) == {"x" * 1023}
    assert plugin.returncode == 0


def test_hclog_lines_become_records_with_their_level(plugin_records: Records) -> None:
    with PluginProcess(
        scenario("echo_faults"), stub=echo_pb2_grpc.EchoStub, env={"PLUGIN_LOG_LEVEL": "trace"}
    ) as plugin:
        echo(plugin, b"log")
        plugin_records.wait_for("done-marker")
    by_message = {r.getMessage(): r for r in plugin_records.records}
    expected = {
        "a debug record": logging.DEBUG,
        "an info record": logging.INFO,
        "a warning record": logging.WARNING,
        "an error record": logging.ERROR,
        "a tagged warning": logging.WARNING,
        "a tagged error": logging.ERROR,
        "an untagged line": logging.DEBUG,
        "done-marker": logging.INFO,
        "clashing keys": logging.WARNING,
    }
    for message, level in expected.items():
        assert by_message[message].levelno == level, message
    assert by_message["a debug record"].request_id == "r-1"  # type: ignore[attr-defined]
    assert by_message["an error record"].count == 3  # type: ignore[attr-defined]
    assert by_message["an error record"].__dict__["@module"] == "__main__"
    clash = by_message["clashing keys"]
    assert clash.name == "pyvider_rpcplugin_sync.plugin.echo_faults"
    assert clash.plugin_name == "n"  # type: ignore[attr-defined]
    assert clash.plugin_msg == "m"  # type: ignore[attr-defined]
    odd = [m for m in by_message if "odd types are not hclog" in m]
    assert len(odd) == 1 and by_message[odd[0]].levelno == logging.DEBUG
    assert odd[0].startswith("{")  # logged raw


def test_the_cookie_is_never_logged(
    plugin_records: Records, caplog: pytest.LogCaptureFixture
) -> None:
    secret = HandshakeConfig(
        magic_cookie_key="SECRET_COOKIE_KEY_X", magic_cookie_value="s3cr3t-c00kie-value"
    )
    caplog.set_level(1)
    with pytest.raises(PluginStartError) as caught:
        PluginProcess(
            scenario("echo_faults"), handshake=secret, env={"PLUGIN_LOG_LEVEL": "trace"}
        ).start()
    assert "s3cr3t-c00kie-value" not in str(caught.value)
    assert "s3cr3t-c00kie-value" not in repr(secret)
    for record in caplog.records:
        text = f"{record.getMessage()} {record.__dict__}"
        assert "s3cr3t-c00kie-value" not in text
        assert "SECRET_COOKIE_KEY_X" not in text
