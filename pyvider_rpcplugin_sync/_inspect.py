"""What ``inspect`` reports about any go-plugin plugin: handshake, TLS, health, services."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import grpc

from ._constants import DEFAULT_CONNECT_TIMEOUT, DEFAULT_PING_TIMEOUT, Transport
from ._errors import RPCPluginError
from ._host.process import PluginProcess
from ._protocol.handshake import HandshakeConfig

REFLECTION_METHOD = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"


def describe(
    cmd: Sequence[str],
    *,
    handshake: HandshakeConfig,
    tls: bool,
    transport: Transport | None,
    start_timeout: float,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> Iterator[str]:
    """Start the plugin, yield report lines, shut it down."""
    begin = time.perf_counter()
    with PluginProcess(
        list(cmd),
        handshake=handshake,
        tls=tls,
        transport=transport,
        start_timeout=start_timeout,
        connect_timeout=connect_timeout,
    ) as plugin:
        started = time.perf_counter() - begin
        line = plugin.handshake_line
        assert line is not None  # set by a successful start
        yield f"command:            {' '.join(cmd)}"
        yield f"pid:                {plugin.pid}"
        yield f"start-up:           {started * 1000:.1f} ms (spawn to connected channel)"
        yield (
            f"handshake:          core={line.core_version} app={line.app_version} "
            f"network={line.network} protocol={line.protocol}"
        )
        yield f"address:            {line.address}"
        yield f"negotiated version: {plugin.negotiated_version}"
        yield from _tls_lines(line.server_cert)
        yield f"health (plugin):    {_health(plugin)}"
        services = list_services(plugin.channel)
        if services is None:
            yield "services:           not listed (the plugin serves no reflection)"
        else:
            yield "services:"
            yield from (f"  - {name}" for name in services)
        stop_begin = time.perf_counter()
    yield (
        f"shutdown:           {(time.perf_counter() - stop_begin) * 1000:.1f} ms, "
        f"exit code {plugin.returncode}"
    )


def _tls_lines(cert_field: str) -> Iterator[str]:
    if not cert_field:
        yield "tls:                off (plaintext)"
        return
    from cryptography.hazmat.primitives.serialization import Encoding

    from ._transport.tls.certs import curve_name, peer_certificate_from_field

    cert = peer_certificate_from_field(cert_field)
    fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()
    yield "tls:                mutual TLS (AutoMTLS)"
    yield f"  subject:          {cert.subject.rfc4514_string()}"
    yield f"  key:              ECDSA {curve_name(cert)}" if curve_name(cert) else "  key: RSA"
    yield f"  valid until:      {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
    yield f"  sha256:           {fingerprint}"


def _health(plugin: PluginProcess[Any]) -> str:
    try:
        return "SERVING" if plugin.ping(timeout=DEFAULT_PING_TIMEOUT) else "NOT SERVING"
    except RPCPluginError as exc:
        return f"failed ({exc.message})"


def list_services(channel: grpc.Channel, timeout: float = 5.0) -> list[str] | None:
    """Service names from server reflection, or None when the plugin offers none."""
    from grpc_reflection.v1alpha import reflection_pb2

    call = channel.stream_stream(
        REFLECTION_METHOD,
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    try:
        for reply in call(iter([request]), timeout=timeout):
            return sorted(s.name for s in reply.list_services_response.service)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            return None
        raise
    return None
