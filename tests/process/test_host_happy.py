"""The happy path: example plugins on unix and TCP, with and without AutoMTLS."""

from __future__ import annotations

import logging
import os
import stat
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from process_helpers import ECHO, KV, Records, scenario

from pyvider_rpcplugin_sync import RPCPluginError
from pyvider_rpcplugin_sync._host.process import PluginProcess
from pyvider_rpcplugin_sync._protocol.handshake import HandshakeLine
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc, kv_pb2, kv_pb2_grpc
from pyvider_rpcplugin_sync.examples.kv_plugin import KV_HANDSHAKE

pytestmark = pytest.mark.timeout(60)

TRANSPORTS = ["unix", "tcp"]
TLS = [pytest.param(True, id="mtls"), pytest.param(False, id="plain")]


@pytest.mark.parametrize("tls", TLS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_echo(transport: str, tls: bool) -> None:
    with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub, tls=tls, transport=transport) as plugin:
        reply = plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"hello"), timeout=5)
        assert reply.payload == b"hello"
        replies = plugin.stub.Stream(echo_pb2.StreamRequest(count=50, payload=b"s"), timeout=5)
        assert [r.payload for r in replies] == [b"s"] * 50
        assert plugin.ping() is True
        assert plugin.network == transport
        assert plugin.negotiated_version == 1
        line = plugin.handshake_line
        assert isinstance(line, HandshakeLine)
        assert bool(line.server_cert) is tls
        if transport == "unix":
            assert plugin.address is not None
            socket_dir = os.path.dirname(plugin.address)
            assert stat.S_IMODE(os.stat(socket_dir).st_mode) == 0o700
        else:
            assert plugin.address is not None and plugin.address.startswith("127.0.0.1:")
        assert plugin.returncode is None
    assert plugin.returncode == 0
    if transport == "unix":
        assert not os.path.exists(socket_dir)


@pytest.mark.parametrize("tls", TLS)
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kv(transport: str, tls: bool) -> None:
    options = {"handshake": KV_HANDSHAKE, "tls": tls, "transport": transport}
    with PluginProcess(" ".join(KV), stub=kv_pb2_grpc.KVStub, **options) as plugin:  # type: ignore[arg-type]
        plugin.stub.Put(kv_pb2.PutRequest(key="a", value=b"1"), timeout=5)
        assert plugin.stub.Get(kv_pb2.GetRequest(key="a"), timeout=5).value == b"1"
        with pytest.raises(grpc.RpcError) as caught:  # the app's own errors pass through
            plugin.stub.Get(kv_pb2.GetRequest(key="missing"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert plugin.returncode == 0


def test_make_stub_and_channel() -> None:
    with PluginProcess(ECHO, tls=False) as plugin:
        with pytest.raises(RPCPluginError, match="no stub class"):
            _ = plugin.stub
        echo = plugin.make_stub(echo_pb2_grpc.EchoStub)
        assert echo.Echo(echo_pb2.EchoRequest(payload=b"x"), timeout=5).payload == b"x"
        health = health_pb2_grpc.HealthStub(plugin.channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_sixteen_threads_share_one_plugin() -> None:
    threads, calls = 16, 150
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads)
    with PluginProcess(ECHO, stub=echo_pb2_grpc.EchoStub) as plugin:

        def work(index: int) -> None:
            try:
                barrier.wait()
                for n in range(calls):
                    payload = f"{index}:{n}".encode()
                    reply = plugin.stub.Echo(echo_pb2.EchoRequest(payload=payload), timeout=10)
                    assert reply.payload == payload
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=50)
        assert not any(w.is_alive() for w in workers)
    assert errors == []
    assert plugin.returncode == 0


def test_environment_is_inherited_and_extended(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_THE_HOST", "inherited")
    # As if this host were itself a plugin of a multiplexing Go host:
    monkeypatch.setenv("PLUGIN_MULTIPLEX_GRPC", "true")
    monkeypatch.setenv("PLUGIN_UNIX_SOCKET_DIR", "/the/outer/hosts/dir")
    with PluginProcess(
        scenario("echo_faults"), stub=echo_pb2_grpc.EchoStub, env={"EXTRA_VAR": "added"}
    ) as plugin:

        def env(name: str) -> bytes:
            request = echo_pb2.EchoRequest(payload=b"env:" + name.encode())
            return bytes(plugin.stub.Echo(request, timeout=5).payload)

        assert env("FROM_THE_HOST") == b"inherited"
        assert env("EXTRA_VAR") == b"added"
        assert env("PLUGIN_PROTOCOL_VERSIONS") == b"1"
        assert env("PLUGIN_UNIX_SOCKET_DIR") == os.path.dirname(plugin.address or "").encode()
        assert env("PLUGIN_CLIENT_CERT").startswith(b"-----BEGIN CERTIFICATE-----")
        assert env("PLUGIN_TRANSPORT") == b"<unset>"
        assert env("PLUGIN_MULTIPLEX_GRPC") == b"<unset>"


def test_cwd_and_string_command(tmp_path: os.PathLike[str]) -> None:
    cmd = " ".join(scenario("echo_faults"))
    with PluginProcess(cmd, stub=echo_pb2_grpc.EchoStub, cwd=tmp_path, tls=False) as plugin:
        assert plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"ok"), timeout=5).payload == b"ok"
        assert os.readlink(f"/proc/{plugin.pid}/cwd") == str(tmp_path)
        assert os.readlink(f"/proc/{plugin.pid}/fd/0") == "/dev/null"  # stdin=None
        assert os.getpgid(plugin.pid) == plugin.pid  # its own process group


def test_plugin_stdout_arrives_through_stdio(plugin_records: Records) -> None:
    received: list[bytes] = []
    arrived = threading.Event()

    def sink(data: bytes) -> None:
        received.append(data)
        if b"second" in b"".join(received):
            arrived.set()

    with PluginProcess(
        scenario("echo_faults"), stub=echo_pb2_grpc.EchoStub, stdio_stdout=sink
    ) as plugin:
        for text in (b"print:first", b"print:second"):
            plugin.stub.Echo(echo_pb2.EchoRequest(payload=text), timeout=5)
        assert arrived.wait(10)
    assert b"".join(received) == b"first\nsecond\n"


def test_stdio_defaults_to_the_plugin_logger(plugin_records: Records) -> None:
    with PluginProcess(scenario("echo_faults"), stub=echo_pb2_grpc.EchoStub) as plugin:
        plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"print:to the logger"), timeout=5)
        record = plugin_records.wait_for("to the logger")
    assert record.levelno == logging.DEBUG
    assert record.plugin_stream == "stdout"  # type: ignore[attr-defined]
    assert record.name == "pyvider_rpcplugin_sync.plugin.echo_faults"


def test_custom_logger(plugin_records: Records) -> None:
    mine = logging.getLogger("pyvider_rpcplugin_sync.plugin.custom")
    with PluginProcess(scenario("echo_faults"), stub=echo_pb2_grpc.EchoStub, logger=mine) as p:
        p.stub.Echo(echo_pb2.EchoRequest(payload=b"log"), timeout=5)
        record = plugin_records.wait_for("done-marker")
    assert record.name == "pyvider_rpcplugin_sync.plugin.custom"
