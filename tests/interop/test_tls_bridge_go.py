"""A real Go go-plugin 1.0.1 plugin (``go/cmd/kvplugin``) with AutoMTLS, reached from
Python through BridgeClient: grpcio -> BridgeClient -> TLS 1.3 (plugin cert P-521) -> Go.

The plugin is started by hand the way a host does it (cookie, versions,
``PLUGIN_CLIENT_CERT``); its handshake line is parsed with the library's parser and
its certificate taken from field 6. PyPI grpcio cannot verify or present P-521, which
is why the bridge exists (docs/protocol.md, "AutoMTLS"). Go host -> Python plugin through
BridgeServer needs the plugin-server integration and is tested there.
"""

from __future__ import annotations

import os
import selectors
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from pyvider_rpcplugin_sync._protocol.handshake import HandshakeLine, parse_handshake
from pyvider_rpcplugin_sync._protos import goplugin_pb2, kv_pb2, kv_pb2_grpc
from pyvider_rpcplugin_sync._transport.tls.bridge import BridgeClient
from pyvider_rpcplugin_sync._transport.tls.bridge_certs import go_style_identity
from pyvider_rpcplugin_sync._transport.tls.certs import (
    Identity,
    client_ssl_context,
    curve_name,
    generate_identity,
    needs_bridge,
    peer_certificate_from_field,
)

pytestmark = [pytest.mark.interop, pytest.mark.timeout(60)]

START_TIMEOUT = 30.0
CALL_TIMEOUT = 10.0


@pytest.fixture
def private_dir() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="tbgo-")  # 0700; short: sun_path is 107 bytes
    yield directory
    shutil.rmtree(directory)


class GoPlugin:
    def __init__(self, proc: subprocess.Popen[bytes], line: HandshakeLine) -> None:
        self.proc = proc
        self.line = line
        self.cert = peer_certificate_from_field(line.server_cert)


def read_handshake(proc: subprocess.Popen[bytes], stderr_path: Path) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        ready = sel.select(START_TIMEOUT)
    line = proc.stdout.readline().decode() if ready else ""
    assert line, f"no handshake line; stderr:\n{stderr_path.read_text()[-2000:]}"
    return line


@contextmanager
def go_plugin(binary: Path, host: Identity, directory: str) -> Iterator[GoPlugin]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KV_", "PLUGIN_", "BASIC_"))}
    env.update(
        BASIC_PLUGIN="hello",
        PLUGIN_PROTOCOL_VERSIONS="1",
        PLUGIN_CLIENT_CERT=host.cert_pem.decode(),
        KV_PLUGIN_LOG_LEVEL="warn",
        TMPDIR=directory,  # go-plugin 1.0.1 puts its socket in $TMPDIR
    )
    stderr_path = Path(directory, "plugin.stderr")
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(binary)], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr
        )
    try:
        yield GoPlugin(proc, parse_handshake(read_handshake(proc, stderr_path)))
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        assert proc.stdout is not None
        proc.stdout.close()


@contextmanager
def bridged_channel(
    plugin: GoPlugin, host: Identity, directory: str, trusted: GoPlugin | None = None
) -> Iterator[tuple[grpc.Channel, BridgeClient]]:
    context = client_ssl_context(host, (trusted or plugin).cert)
    line = plugin.line
    with (
        BridgeClient(line.network, line.address, context, directory) as bridge,
        grpc.insecure_channel(bridge.target) as channel,
    ):
        yield channel, bridge


def shutdown(channel: grpc.Channel) -> None:
    """go-plugin's graceful stop: the Go plugin hard-stops, so UNAVAILABLE is success."""
    call = channel.unary_unary(
        "/plugin.GRPCController/Shutdown",
        request_serializer=goplugin_pb2.Empty.SerializeToString,
        response_deserializer=goplugin_pb2.Empty.FromString,
    )
    try:
        call(goplugin_pb2.Empty(), timeout=CALL_TIMEOUT)
    except grpc.RpcError as exc:
        assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), exc


@pytest.mark.parametrize("host_curve", ["secp256r1", "secp521r1"])
def test_python_host_to_go_plugin_with_full_mutual_tls(
    go_bins: dict[str, Path], private_dir: str, host_curve: str
) -> None:
    host = generate_identity() if host_curve == "secp256r1" else go_style_identity()
    with go_plugin(go_bins["kvplugin"], host, private_dir) as plugin:
        assert plugin.line.network == "unix"
        assert curve_name(plugin.cert) == "secp521r1" and needs_bridge(plugin.cert)
        with bridged_channel(plugin, host, private_dir) as (channel, bridge):
            stub = kv_pb2_grpc.KVStub(channel)
            stub.Put(kv_pb2.PutRequest(key="a", value=b"1" * 70_000), timeout=CALL_TIMEOUT)
            reply = stub.Get(kv_pb2.GetRequest(key="a"), timeout=CALL_TIMEOUT)
            assert reply.value == b"1" * 70_000
            with pytest.raises(grpc.RpcError) as missing:
                stub.Get(kv_pb2.GetRequest(key="nope"), timeout=CALL_TIMEOUT)
            assert missing.value.code() == grpc.StatusCode.NOT_FOUND
            shutdown(channel)
            assert plugin.proc.wait(timeout=CALL_TIMEOUT) == 0
            assert bridge.last_error is None


def test_go_plugin_refuses_a_host_certificate_it_was_not_given(
    go_bins: dict[str, Path], private_dir: str
) -> None:
    host, intruder = generate_identity(), generate_identity()
    with go_plugin(go_bins["kvplugin"], host, private_dir) as plugin:
        with bridged_channel(plugin, intruder, private_dir) as (channel, bridge):
            with pytest.raises(grpc.RpcError) as failure:
                kv_pb2_grpc.KVStub(channel).Get(kv_pb2.GetRequest(key="a"), timeout=CALL_TIMEOUT)
            assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
            assert bridge.last_error is not None
            assert "TLS handshake with the plugin at unix:" in bridge.last_error
            assert "rejected our certificate" in bridge.last_error
        # The rightful host still gets in.
        with bridged_channel(plugin, host, private_dir) as (channel, bridge):
            kv_pb2_grpc.KVStub(channel).Put(kv_pb2.PutRequest(key="k"), timeout=CALL_TIMEOUT)
            assert bridge.last_error is None


def test_host_refuses_a_go_plugin_with_an_unexpected_certificate(
    go_bins: dict[str, Path], private_dir: str
) -> None:
    host = generate_identity()
    with (
        go_plugin(go_bins["kvplugin"], host, private_dir) as plugin,
        go_plugin(go_bins["kvplugin"], host, private_dir) as other,
        bridged_channel(plugin, host, private_dir, trusted=other) as (channel, bridge),
    ):
        with pytest.raises(grpc.RpcError) as failure:
            kv_pb2_grpc.KVStub(channel).Get(kv_pb2.GetRequest(key="a"), timeout=CALL_TIMEOUT)
        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE
        assert bridge.last_error is not None
        assert "certificate verify failed" in bridge.last_error
