"""The bytes on the wire, decoded by hand from docs/protocol.md, "The internal services".

Not from our ``_protos``.

The fake host deliberately does not reuse the library's generated messages for the
go-plugin internal services: if our ``.proto`` copies had a wrong field number, a
fake built on them would agree with the plugin and prove nothing. Health is the
official ``grpc.health.v1`` (grpcio-health-checking), as a Go host uses grpc-go's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

# Method paths a newest go-plugin host calls (docs/protocol.md, "The internal services").
START_STREAM = "/plugin.GRPCBroker/StartStream"
STREAM_STDIO = "/plugin.GRPCStdio/StreamStdio"
SHUTDOWN = "/plugin.GRPCController/Shutdown"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"

# plugin.Empty and google.protobuf.Empty both have no fields: zero bytes.
EMPTY = b""

# plugin.StdioData.Channel
STDIO_INVALID, STDIO_STDOUT, STDIO_STDERR = 0, 1, 2

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5


class WireError(ValueError):
    """Bytes that are not a valid protobuf message of the expected shape."""


def identity(data: bytes) -> bytes:
    return data


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise WireError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise WireError("varint longer than 10 bytes")


def fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of every field in ``buf``."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire_type = key >> 3, key & 7
        value: int | bytes
        if wire_type == _VARINT:
            value, pos = _varint(buf, pos)
        elif wire_type == _LEN:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise WireError("truncated length-delimited field")
            value, pos = buf[pos : pos + length], pos + length
        elif wire_type in (_I64, _I32):
            size = 8 if wire_type == _I64 else 4
            value, pos = int.from_bytes(buf[pos : pos + size], "little"), pos + size
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        yield number, wire_type, value


def decode_stdio_data(buf: bytes) -> tuple[int, bytes]:
    """``plugin.StdioData``: 1 ``channel`` (enum), 2 ``data`` (bytes)."""
    channel, data = STDIO_INVALID, b""
    for number, wire_type, value in fields(buf):
        if number == 1 and wire_type == _VARINT and isinstance(value, int):
            channel = value
        elif number == 2 and wire_type == _LEN and isinstance(value, bytes):
            data = value
        else:
            raise WireError(f"unexpected field {number} (wire type {wire_type}) in StdioData")
    return channel, data


@dataclass(frozen=True)
class ConnInfo:
    """``plugin.ConnInfo``: 1 service_id, 2 network, 3 address, 4 knock (message)."""

    service_id: int = 0
    network: str = ""
    address: str = ""
    knock: bytes | None = None


def decode_conn_info(buf: bytes) -> ConnInfo:
    values: dict[int, int | bytes] = {}
    for number, _wire_type, value in fields(buf):
        values[number] = value
    service_id = values.get(1, 0)
    network = values.get(2, b"")
    address = values.get(3, b"")
    knock = values.get(4)
    if not isinstance(service_id, int) or not isinstance(network, bytes):
        raise WireError("malformed ConnInfo")
    if not isinstance(address, bytes) or isinstance(knock, int):
        raise WireError("malformed ConnInfo")
    return ConnInfo(service_id, network.decode(), address.decode(), knock)
