"""serve(debug=True): an unmanaged plugin that any host reattaches to."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from process_helpers import PYTHON

from pyvider_rpcplugin_sync import PluginProcess, ReattachConfig
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.timeout(60)

DEBUG_ECHO = [
    PYTHON,
    "-c",
    "from pyvider_rpcplugin_sync import run_plugin\n"
    "from pyvider_rpcplugin_sync.examples.echo_plugin import register\n"
    "raise SystemExit(run_plugin(register, debug=True, debug_name='acme/echo'))\n",
]
BANNER_PREFIX = "\tTF_REATTACH_PROVIDERS='"


class DebugPlugin:
    def __init__(self, extra_env: dict[str, str]) -> None:
        self.tmpdir = Path(tempfile.mkdtemp(prefix="dbg-", dir="/tmp"))
        self.process = subprocess.Popen(
            DEBUG_ECHO,
            env={**os.environ, "TMPDIR": str(self.tmpdir), **extra_env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def config(self) -> ReattachConfig:
        while (line := self._lines.get(timeout=30)) is not None:
            if line.startswith(BANNER_PREFIX):
                text = line[len(BANNER_PREFIX) :].rstrip().removesuffix("'")
                return ReattachConfig.from_dict(json.loads(text)["acme/echo"])
        raise AssertionError(f"debug plugin exited ({self.process.wait()}) without a banner")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        for leftover in self.tmpdir.iterdir():
            leftover.rmdir()
        self.tmpdir.rmdir()


@pytest.fixture
def debug_plugin() -> Iterator[DebugPlugin]:
    # A client certificate in the shell must not turn TLS on: no host asked for it.
    plugin = DebugPlugin({"PLUGIN_CLIENT_CERT": "not a certificate"})
    try:
        yield plugin
    finally:
        plugin.close()


def echo(plugin: PluginProcess, payload: bytes) -> bytes:
    return bytes(plugin.stub.Echo(echo_pb2.EchoRequest(payload=payload), timeout=5).payload)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_reattach_in_test_mode_then_stop_by_signal(
    debug_plugin: DebugPlugin, stop_signal: signal.Signals
) -> None:
    config = debug_plugin.config()
    assert config.test is True
    assert config.pid == debug_plugin.process.pid
    assert config.protocol_version == 1
    assert config.network == "unix"
    for round_ in range(2):  # hosts come and go; the plugin stays
        with PluginProcess.reattach(config, stub=echo_pb2_grpc.EchoStub) as host:
            assert echo(host, b"round %d" % round_) == b"round %d" % round_
            assert host.ping()
        assert debug_plugin.process.poll() is None
    debug_plugin.process.send_signal(stop_signal)
    assert debug_plugin.process.wait(timeout=20) == 0
    assert list(debug_plugin.tmpdir.iterdir()) == []  # socket directory removed


def test_a_managing_host_shuts_it_down(debug_plugin: DebugPlugin) -> None:
    config = dataclasses.replace(debug_plugin.config(), test=False)
    with PluginProcess.reattach(config, stub=echo_pb2_grpc.EchoStub) as host:
        assert echo(host, b"x") == b"x"
    assert debug_plugin.process.wait(timeout=20) == 0
    assert list(debug_plugin.tmpdir.iterdir()) == []
