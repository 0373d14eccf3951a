"""The newest go-plugin host (v1.8), as a protocol-level fake, loading our plugins.

Real go-plugin 1.8.0 and 1.6.0 hosts are in test_go18_host.py; the fake stays for what a
real host cannot be made to do: a P-256 host certificate (grpcio's own mutual TLS, no
bridge), a foreign client certificate, the order of ``StartStream`` and ``StreamStdio``,
a host that stops reading ``StreamStdio``, field 7 from a host that does not require
multiplexing, and a plugin with two protocol versions. ``fakehost.FakeNewestHost`` does
what v1.8's ``Client`` started through a ``RunnerFunc`` does on the wire (see its
docstring): ``PLUGIN_UNIX_SOCKET_DIR`` (a 0700 dir it removes), the 7-field line with
``PLUGIN_MULTIPLEX_GRPC``, ``StartStream`` and ``StreamStdio`` at once, a stdio loop
with Go's backpressure, health ``Check("plugin")``, ``Shutdown`` without a deadline
then at most 2 s before SIGKILL. Our plugins under test:
``pyvider_rpcplugin_sync.examples.kv_plugin`` (``BASIC_PLUGIN=hello``),
``tests/plugins/behave_plugin.py`` (default cookie; ``test.Behave/Print`` and
``Flood`` write to stdout) and ``fakehost/versioned_plugin.py`` (versions 1 and 2).
"""

from __future__ import annotations

import contextlib
import os
import random
import stat
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from fakehost import (
    KILL_GRACE,
    MARKER_VAR,
    STDIO_STDERR,
    STDIO_STDOUT,
    Collector,
    FakeNewestHost,
    HandOff,
    HostError,
    KillReport,
    parse_line,
)
from grpc_health.v1 import health_pb2

from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc, kv_pb2, kv_pb2_grpc

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
KV_PLUGIN = [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.kv_plugin"]
BEHAVE_PLUGIN = [sys.executable, str(REPO_ROOT / "tests" / "plugins" / "behave_plugin.py")]
VERSIONED_PLUGIN = [sys.executable, str(HERE / "fakehost" / "versioned_plugin.py")]
BASIC = ("BASIC_PLUGIN", "hello")
DEFAULT_COOKIE = ("PLUGIN_MAGIC_COOKIE", "test_cookie_value")
ONE_MIB = 1 << 20
SERVING = health_pb2.HealthCheckResponse.SERVING
QUIET_STREAM_ENDS = {"EOF", "CANCELLED", "UNAVAILABLE"}


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake passes the host's environment on, as go-plugin does: nothing plugin-related
    from the developer's shell may reach the plugin."""
    for name in list(os.environ):
        if name.startswith(("KV_", "PLUGIN_", "BASIC_PLUGIN", "PYVIDER_CLIENT_")):
            monkeypatch.delenv(name)


def fake_host(cmd: list[str], marker: str, *, env: dict[str, str] | None = None, **kw: Any) -> Any:
    return FakeNewestHost(
        cmd,
        env={MARKER_VAR: marker, **(env or {})},
        cwd=REPO_ROOT,
        start_timeout=30,
        **kw,
    )


def behave(host: FakeNewestHost, method: str, payload: bytes, timeout: float = 20) -> bytes:
    assert host.channel is not None
    reply: bytes = host.channel.unary_unary(f"/test.Behave/{method}")(payload, timeout=timeout)
    return reply


def exercise_kv(channel: grpc.Channel) -> None:
    stub = kv_pb2_grpc.KVStub(channel)
    values = {
        "text": b"hello",
        "binary": bytes(range(256)),
        "empty": b"",
        "big": random.Random(7).randbytes(ONE_MIB),
    }
    for key, value in values.items():
        stub.Put(kv_pb2.PutRequest(key=key, value=value), timeout=30)
    for key, value in values.items():
        assert stub.Get(kv_pb2.GetRequest(key=key), timeout=30).value == value, key
    with pytest.raises(grpc.RpcError) as missing:
        stub.Get(kv_pb2.GetRequest(key="absent"), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def assert_graceful(report: KillReport | None) -> None:
    """Shutdown answered, the plugin exited 0 by itself within go-plugin's 2 s: no SIGKILL."""
    assert report is not None
    assert report.graceful and not report.forced_kill, report
    assert report.shutdown_status in ("OK", "UNAVAILABLE", "CANCELLED"), report
    assert report.returncode == 0, report
    assert report.seconds < KILL_GRACE, report


def assert_host_clean(host: FakeNewestHost) -> None:
    assert host.socket_dir is not None and not os.path.exists(host.socket_dir)
    assert host.alive_threads == [], host.alive_threads
    assert host.hclog.problems == [], host.hclog.problems
    assert host.stdio_unknown_channels == []
    assert host.stdio_end in QUIET_STREAM_ENDS, host.stdio_end
    assert host.broker_end in QUIET_STREAM_ENDS, host.broker_end


# --- the full cycle: unix/tcp x plaintext/AutoMTLS ----------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize("auto_mtls", [False, True], ids=["plain", "automtls"])
def test_fake_newest_host_loads_our_kv_plugin(marker: str, transport: str, auto_mtls: bool) -> None:
    host = fake_host(
        KV_PLUGIN,
        marker,
        cookie=BASIC,
        auto_mtls=auto_mtls,
        env={"PLUGIN_TRANSPORT": transport, "PLUGIN_LOG_LEVEL": "debug"},
    )
    with host:
        parsed = host.parsed
        assert parsed is not None
        assert host.env_sent["PLUGIN_UNIX_SOCKET_DIR"] == host.socket_dir
        assert "PLUGIN_MULTIPLEX_GRPC" not in host.env_sent
        assert len(parsed.parts) == 6, parsed.parts  # no field 7 unless the host asks
        assert (parsed.version, parsed.network, parsed.protocol) == (1, transport, "grpc")
        if transport == "unix":
            socket_dir = Path(host.socket_dir or "")
            assert Path(parsed.address).parent == socket_dir
            assert stat.S_IMODE(socket_dir.stat().st_mode) == 0o700
        else:
            address, port = parsed.address.rsplit(":", 1)
            assert address == "127.0.0.1" and 10000 <= int(port) <= 25000, parsed.address
        if auto_mtls:
            # Field 6 decoded by Go's RawStdEncoding (no padding allowed), P-256 leaf.
            assert parsed.server_cert_der is not None and "=" not in parsed.parts[5]
            from cryptography import x509

            cert = x509.load_der_x509_certificate(parsed.server_cert_der)
            assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
        else:
            assert parsed.parts[5] == "" and parsed.server_cert_der is None
        assert host.ping() == SERVING
        exercise_kv(host.client())
    assert_graceful(host.kill_report)
    assert host.kill_report is not None
    if transport == "unix":
        assert host.kill_report.socket_left_by_plugin is False, "the plugin left its socket"
    assert host.hclog.entries, "no hclog lines at PLUGIN_LOG_LEVEL=debug"
    assert_host_clean(host)


@pytest.mark.timeout(60)
def test_fake_newest_host_mtls_rejects_foreign_host_cert(marker: str) -> None:
    """Mutual means mutual: a client that pins the plugin's certificate but presents one
    other than PLUGIN_CLIENT_CERT gets no RPC through (the TLS handshake fails)."""
    import ssl

    from pyvider_rpcplugin_sync._transport.tls.certs import generate_identity

    host = fake_host(KV_PLUGIN, marker, cookie=BASIC, auto_mtls=True)
    with host:
        assert host.parsed is not None and host.parsed.server_cert_der is not None
        pinned = ssl.DER_cert_to_PEM_cert(host.parsed.server_cert_der).encode("ascii")
        foreign = generate_identity()
        credentials = grpc.ssl_channel_credentials(pinned, foreign.key_pem, foreign.cert_pem)
        options = [("grpc.ssl_target_name_override", "localhost")]
        with grpc.secure_channel(host.target, credentials, options=options) as channel:
            check = channel.unary_unary(
                "/grpc.health.v1.Health/Check",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            with pytest.raises(grpc.RpcError) as refused:
                check(health_pb2.HealthCheckRequest(service="plugin"), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert host.ping() == SERVING  # the real host is still fine
    assert_graceful(host.kill_report)


# --- stdio: StreamStdio, both orders, backpressure ---------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("first_stream", ["broker", "stdio"])
def test_fake_newest_host_stdio_arrives_over_streamstdio(marker: str, first_stream: str) -> None:
    collector = Collector()
    host = fake_host(
        BEHAVE_PLUGIN,
        marker,
        cookie=DEFAULT_COOKIE,
        stdio_writer=collector,
        first_stream=first_stream,
    )
    with host:
        assert behave(host, "Print", b"hello-stdio") == b"hello-stdio"
        out = collector.wait_for(STDIO_STDOUT, b"fd1:hello-stdio\n", timeout=10)
        assert b"hello-stdio\n" in out.replace(b"fd1:hello-stdio\n", b"")  # print() too
        collector.wait_for(STDIO_STDERR, b"hello-stdio", timeout=10)
        assert host.stdout_discarded == 0, "stdout after the handshake reached the pipe"
    assert_graceful(host.kill_report)
    assert_host_clean(host)


@pytest.mark.timeout(90)
def test_fake_newest_host_stdio_backpressure_never_blocks_the_plugin(marker: str) -> None:
    """The host stops reading StreamStdio (its writer blocks, as Go's io.Copy into a slow
    SyncStdout does); the plugin floods 16 MiB of stdout and stderr and must neither block
    nor stall its other RPCs; the stream resumes when the host reads again; shutdown
    stays graceful even with the stdio stream stalled."""
    handoff = HandOff()
    host = fake_host(BEHAVE_PLUGIN, marker, cookie=DEFAULT_COOKIE, stdio_writer=handoff)
    with host:
        behave(host, "Print", b"before-flood")
        assert handoff.waiting(timeout=10), "no stdio chunk reached the host"
        assert handoff.offered == 1  # the host holds one chunk and reads no more

        started = time.monotonic()
        assert behave(host, "Flood", str(16 * ONE_MIB).encode(), timeout=30) == b"done"
        flood_seconds = time.monotonic() - started
        assert handoff.offered == 1, "the host read on although its writer was blocked"
        assert host.ping() == SERVING  # other RPCs are not stuck behind the stalled stream
        assert behave(host, "Print", b"after-flood") == b"after-flood"

        got = handoff.read_until(b"fd1:after-flood\n", timeout=60)
        stdout, stderr = got.get(STDIO_STDOUT, b""), got.get(STDIO_STDERR, b"")
        assert b"before-flood" in stdout and b"x" * 1024 in stdout
        assert stdout.index(b"before-flood") < stdout.index(b"x" * 1024)
        assert stdout.index(b"x" * 1024) < stdout.index(b"fd1:after-flood")
        assert b"e" * 1000 in stderr
        assert set(stdout.replace(b"before-flood", b"").replace(b"fd1:", b"")) <= set(
            b"x\nafter-flood"
        )

        behave(host, "Print", b"stalled-at-shutdown")
        assert handoff.waiting(timeout=10)
    print(f"\nflood of 16 MiB returned in {flood_seconds:.2f} s with the host not reading")
    assert_graceful(host.kill_report)
    assert_host_clean(host)


# --- the 7th field and broker multiplexing ----------------------------------------------------


@pytest.mark.timeout(60)
def test_fake_newest_host_field_7_parsed_by_split_all(marker: str) -> None:
    """Without multiplexing the newest host ignores field 7, but splits on every '|':
    our 7-field line (as the plugin prints it for a mux host) parses with the cert intact.
    (The fake host speaks no yamux, so nothing is called; SIGTERM stops the plugin.)"""
    host = fake_host(KV_PLUGIN, marker, cookie=BASIC, multiplex=True, auto_mtls=True)
    try:
        with contextlib.suppress(HostError):
            host.start()
        line = host.first_line or ""
        parsed = parse_line(line + "\r\n", versions=(1,), multiplex=False)
        assert parsed.parts[6] == "true" and parsed.server_cert_der is not None
    finally:
        if host.proc is not None:
            host.proc.terminate()
            host.proc.wait(timeout=10)
        host.kill()


# --- versions (a plugin with two of them) ---------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("versions", "expected"),
    [((1, 2), 2), ((2, 1), 2), ((1,), 1), ((1, 3), 1)],
    ids=["1,2", "2,1", "1", "1,3"],
)
def test_fake_newest_host_version_negotiation(
    marker: str, versions: tuple[int, ...], expected: int
) -> None:
    host = fake_host(VERSIONED_PLUGIN, marker, cookie=BASIC, versions=versions)
    with host:
        assert host.parsed is not None and host.parsed.version == expected
        channel = host.client()
        if expected == 2:
            reply = echo_pb2_grpc.EchoStub(channel).Echo(
                echo_pb2.EchoRequest(payload=b"v2"), timeout=10
            )
            assert reply.payload == b"v2"
        else:
            stub = kv_pb2_grpc.KVStub(channel)
            stub.Put(kv_pb2.PutRequest(key="v", value=b"1"), timeout=10)
            assert stub.Get(kv_pb2.GetRequest(key="v"), timeout=10).value == b"1"
    assert_graceful(host.kill_report)


# --- the fake itself: go-plugin's parsing rules ---------------------------------------------


@pytest.mark.timeout(10)
def test_fakehost_parser_follows_go_plugin() -> None:
    cert = "A" * 60  # > 50 chars: used
    assert parse_line(f" 1|1|unix|/s|grpc|{cert}|true|extra \r\n", versions=(1,), multiplex=True)
    with pytest.raises(HostError, match="illegal base64 data at input byte 60"):
        parse_line(f"1|1|unix|/s|grpc|{cert}==", versions=(1,), multiplex=False)
    with pytest.raises(HostError, match=r"Plugin version: 2, Client versions: \[1\]"):
        parse_line("1|2|unix|/s|grpc|", versions=(1,), multiplex=False)
    with pytest.raises(HostError, match='unsupported plugin protocol "netrpc"'):
        parse_line("1|1|unix|/s", versions=(1,), multiplex=False)
    with pytest.raises(HostError, match="update the"):
        parse_line("1|1|unix|/s|grpc|", versions=(1,), multiplex=True)
    short = parse_line("1|1|tcp|127.0.0.1:1|grpc|short-junk", versions=(1,), multiplex=False)
    assert short.server_cert_der is None
