"""The plugin side as a real subprocess, driven by plain grpcio (no library host)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from plugin_harness import (
    DEFAULT_ENV,
    KV_ENV,
    module_cmd,
    script_cmd,
    started,
)

from pyvider_rpcplugin_sync._protos import goplugin_pb2, kv_pb2, kv_pb2_grpc

pytestmark = pytest.mark.timeout(60)

KV = module_cmd("pyvider_rpcplugin_sync.examples.kv_plugin")
BEHAVE = script_cmd("behave_plugin.py")


def shutdown(channel: grpc.Channel) -> None:
    call = channel.unary_unary(
        "/plugin.GRPCController/Shutdown",
        request_serializer=goplugin_pb2.Empty.SerializeToString,
        response_deserializer=goplugin_pb2.Empty.FromString,
    )
    # The reply leaves before the server's GOAWAY: any error here is a failure.
    call(goplugin_pb2.Empty(), timeout=5)


def behave(channel: grpc.Channel, method: str, payload: bytes, timeout: float = 10) -> bytes:
    result: bytes = channel.unary_unary(f"/test.Behave/{method}")(payload, timeout=timeout)
    return result


@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_kv_plugin_serves_health_app_and_shuts_down(transport: str) -> None:
    with started(KV, {**KV_ENV, "PLUGIN_TRANSPORT": transport}) as plugin:
        assert re.fullmatch(rb"1\|1\|(unix|tcp)\|[^|]+\|grpc\|", plugin.raw_line)
        assert plugin.line.network == transport
        if transport == "unix":
            socket_dir = Path(plugin.line.address).parent
            assert socket_dir.stat().st_mode & 0o777 == 0o700
        else:
            assert plugin.line.address.startswith("127.0.0.1:")
        with plugin.channel() as channel:
            health = health_pb2_grpc.HealthStub(channel)
            for service in ("plugin", ""):
                reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
                assert reply.status == health_pb2.HealthCheckResponse.SERVING
            kv = kv_pb2_grpc.KVStub(channel)
            kv.Put(kv_pb2.PutRequest(key="k", value=b"\x00\xffv"), timeout=5)
            assert kv.Get(kv_pb2.GetRequest(key="k"), timeout=5).value == b"\x00\xffv"
            with pytest.raises(grpc.RpcError) as missing:
                kv.Get(kv_pb2.GetRequest(key="absent"), timeout=5)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            shutdown(channel)
        assert plugin.proc.wait(timeout=5) == 0
        if transport == "unix":
            assert not socket_dir.exists()


def test_tcp_honours_port_range() -> None:
    env = {
        **KV_ENV,
        "PLUGIN_TRANSPORT": "tcp",
        "PLUGIN_MIN_PORT": "23456",
        "PLUGIN_MAX_PORT": "23470",
    }
    with started(KV, env) as plugin:
        port = int(plugin.line.address.rsplit(":", 1)[1])
        assert 23456 <= port <= 23470
        with plugin.channel() as channel:
            shutdown(channel)
        assert plugin.proc.wait(timeout=5) == 0


def test_socket_dir_from_host_is_used_and_socket_removed(tmp_path: Path) -> None:
    env = {**KV_ENV, "PLUGIN_UNIX_SOCKET_DIR": str(tmp_path)}
    with started(KV, env) as plugin:
        assert Path(plugin.line.address).parent == tmp_path
        assert Path(plugin.line.address).is_socket()
        with plugin.channel() as channel:
            shutdown(channel)
        assert plugin.proc.wait(timeout=5) == 0
    assert list(tmp_path.iterdir()) == []


def test_sigterm_stops_cleanly_and_sigint_is_ignored() -> None:
    with started(KV, KV_ENV) as plugin:
        socket_dir = Path(plugin.line.address).parent
        plugin.proc.send_signal(signal.SIGINT)
        with plugin.channel() as channel:
            health = health_pb2_grpc.HealthStub(channel)
            # Still serving after SIGINT: Ctrl-C belongs to the host.
            health.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=5)
        assert plugin.proc.poll() is None
        plugin.proc.send_signal(signal.SIGTERM)
        assert plugin.proc.wait(timeout=5) == 0
    assert not socket_dir.exists()


def test_stream_stdio_forwards_stdout_and_stderr_after_handshake() -> None:
    with started(BEHAVE, DEFAULT_ENV) as plugin, plugin.channel() as channel:
        stream = channel.unary_stream(
            "/plugin.GRPCStdio/StreamStdio",
            request_serializer=empty_pb2.Empty.SerializeToString,
            response_deserializer=goplugin_pb2.StdioData.FromString,
        )(empty_pb2.Empty(), timeout=20)
        behave(channel, "Print", b"hello-stdio")
        seen = {goplugin_pb2.StdioData.STDOUT: b"", goplugin_pb2.StdioData.STDERR: b""}
        for item in stream:
            seen[item.channel] += item.data
            if (
                b"fd1:hello-stdio" in seen[goplugin_pb2.StdioData.STDOUT]
                and b"hello-stdio" in seen[goplugin_pb2.StdioData.STDERR]
            ):
                break
        stream.cancel()
        assert b"hello-stdio\n" in seen[goplugin_pb2.StdioData.STDOUT]
        shutdown(channel)
        assert plugin.proc.wait(timeout=5) == 0
    # The stderr copy still reached the real stderr too (crash output must).
    assert "hello-stdio" in plugin.stderr


def test_flooding_stdout_and_stderr_never_blocks() -> None:
    with started(BEHAVE, DEFAULT_ENV) as plugin, plugin.channel() as channel:
        # 8 MiB on fd 1 with nobody reading StreamStdio, plus stderr lines.
        assert behave(channel, "Flood", b"8388608", timeout=30) == b"done"
        assert behave(channel, "Print", b"still alive") == b"still alive"
        shutdown(channel)
        assert plugin.proc.wait(timeout=5) == 0


def test_stray_print_in_registrar_does_not_break_handshake() -> None:
    with started(BEHAVE, {**DEFAULT_ENV, "PRINT_IN_REGISTER": "1"}) as plugin:
        assert plugin.raw_line.startswith(b"1|1|unix|")
        assert "a stray print before the handshake" in plugin.stderr_buffer.wait_for("stray")
        plugin.proc.terminate()
        assert plugin.proc.wait(timeout=5) == 0


def test_logs_are_hclog_json_on_stderr() -> None:
    env = {**DEFAULT_ENV, "PLUGIN_LOG_LEVEL": "debug"}
    with started(BEHAVE, env) as plugin, plugin.channel() as channel:
        behave(channel, "Log", b"hi there")
        text = plugin.stderr_buffer.wait_for("app says hi there")
        shutdown(channel)
        plugin.proc.wait(timeout=5)
    entries = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    app = next(e for e in entries if e["@message"] == "app says hi there")
    assert app["@level"] == "warn"
    assert app["answer"] == 42
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", app["@timestamp"])
    address = next(e for e in entries if e["@message"] == "plugin address")
    assert address["@level"] == "debug"
    assert all(isinstance(e[k], str) for e in entries for k in ("@level", "@message"))


def test_shutdown_under_load_exits_within_a_second() -> None:
    with started(BEHAVE, {**DEFAULT_ENV, "WORKERS": "8"}) as plugin, plugin.channel() as channel:
        sleepers = [
            channel.unary_unary("/test.Behave/Sleep").future(b"30", timeout=40) for _ in range(6)
        ]
        behave(channel, "Print", b"warm")  # the sleepers are in flight
        begin = time.monotonic()
        shutdown(channel)
        assert plugin.proc.wait(timeout=5) == 0
        elapsed = time.monotonic() - begin
        for call in sleepers:
            with pytest.raises(grpc.RpcError):
                call.result()
    assert elapsed < 1.0


@pytest.mark.parametrize(("value", "answer"), [("true", b"true"), ("1", b"true"), ("no", b"false")])
def test_multiplex_env_adds_field_seven(value: str, answer: bytes) -> None:
    """Field 7 appears whenever the variable is set; true only when it parses as true."""
    with started(KV, {**KV_ENV, "PLUGIN_MULTIPLEX_GRPC": value}) as plugin:
        assert plugin.raw_line.endswith(b"|grpc||" + answer)
        assert plugin.line.multiplex is (answer == b"true")


def test_parent_death_stops_the_plugin() -> None:
    # An intermediate host process starts the plugin, reports its pid, and is killed.
    code = (
        "import os, subprocess, sys\n"
        f"p = subprocess.Popen({KV!r}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)\n"
        "p.stdout.readline()\n"
        "print(p.pid, flush=True)\n"
        "sys.stdin.read()\n"
    )
    env = {**os.environ, **KV_ENV}
    host = subprocess.Popen(
        [os.sys.executable, "-c", code], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert host.stdout is not None
    plugin_pid = int(host.stdout.readline())
    pidfd = os.pidfd_open(plugin_pid)
    try:
        host.kill()
        host.wait(timeout=5)
        import select

        ready, _, _ = select.select([pidfd], [], [], 5)
        assert ready, "the plugin outlived its host by more than 5 s"
    finally:
        os.close(pidfd)
        if host.stdin:
            host.stdin.close()
        if host.stdout:
            host.stdout.close()
