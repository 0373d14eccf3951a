"""A minimal HTTP/2 client on a raw socket: one unary gRPC call, frames recorded in order.

grpcio hides the order of frames; the controller check needs it (a ``Shutdown``
reply that arrives after the server's GOAWAY is lost to hosts built on the
``h2`` library). Request headers are HPACK literals without indexing, so no
HPACK state is needed; response header blocks are not decoded.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from dataclasses import dataclass, field

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7
END_STREAM, ACK, END_HEADERS = 0x1, 0x1, 0x4
STREAM = 1
EMPTY_MESSAGE = b"\x00\x00\x00\x00\x00"  # gRPC frame: uncompressed, zero-length protobuf


@dataclass(frozen=True)
class Frame:
    type: int
    flags: int
    stream: int
    payload: bytes


@dataclass
class Exchange:
    """What the server sent in answer to one call, until the call or connection ended."""

    frames: list[Frame] = field(default_factory=list[Frame])
    closed: bool = False  # the server closed the connection
    timed_out: bool = False

    def index(self, kind: int, stream: int | None = None) -> int | None:
        for i, frame in enumerate(self.frames):
            if frame.type == kind and (stream is None or frame.stream == stream):
                return i
        return None

    @property
    def got_settings(self) -> bool:
        return self.index(SETTINGS) is not None

    @property
    def reply_index(self) -> int | None:
        """The first DATA frame of the call: the reply message."""
        return self.index(DATA, STREAM)

    @property
    def goaway_index(self) -> int | None:
        return self.index(GOAWAY)

    @property
    def ended(self) -> bool:
        """The call ended (END_STREAM or RST_STREAM on its stream)."""
        return any(
            f.stream == STREAM
            and (f.type == RST_STREAM or (f.type in (DATA, HEADERS) and f.flags & END_STREAM))
            for f in self.frames
        )

    @property
    def trailers_only(self) -> bool:
        """The call ended without a reply message: the server refused it."""
        return self.ended and self.reply_index is None


def _hpack_int(value: int, prefix_bits: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([value])
    out = bytearray([limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode(), value.encode()
    return (
        b"\x00"
        + _hpack_int(len(raw_name), 7)
        + raw_name
        + _hpack_int(len(raw_value), 7)
        + raw_value
    )


def frame_bytes(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


def request_bytes(path: str, scheme: str = "http") -> bytes:
    block = b"".join(
        _literal(name, value)
        for name, value in (
            (":method", "POST"),
            (":scheme", scheme),
            (":path", path),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        )
    )
    return b"".join(
        [
            PREFACE,
            frame_bytes(SETTINGS, 0, 0),
            frame_bytes(HEADERS, END_HEADERS, STREAM, block),
            frame_bytes(DATA, END_STREAM, STREAM, EMPTY_MESSAGE),
        ]
    )


def _read_exact(sock: socket.socket, size: int, deadline: float) -> bytes | None:
    data = bytearray()
    while len(data) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        sock.settimeout(remaining)
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """An acknowledgement; a peer that already closed must not hide the frames it sent."""
    with contextlib.suppress(OSError):
        sock.sendall(data)


def unary_call(
    sock: socket.socket, path: str, timeout: float, *, linger: float = 0.5, scheme: str = "http"
) -> Exchange:
    """Send one call with an empty message on ``sock``; record frames until the connection
    closes, ``timeout`` passes, or ``linger`` seconds after the call ended. The socket is
    closed afterwards."""
    exchange = Exchange()
    deadline = time.monotonic() + timeout
    try:
        sock.settimeout(timeout)
        sock.sendall(request_bytes(path, scheme))
        while True:
            header = _read_exact(sock, 9, deadline)
            if header is None:
                exchange.closed = True
                break
            length = int.from_bytes(header[:3], "big")
            stream = struct.unpack(">I", header[5:9])[0] & 0x7FFFFFFF
            payload = _read_exact(sock, length, deadline) if length else b""
            if payload is None:
                exchange.closed = True
                break
            frame = Frame(header[3], header[4], stream, payload)
            exchange.frames.append(frame)
            if exchange.ended:
                deadline = min(deadline, time.monotonic() + linger)
            if frame.type == SETTINGS and not frame.flags & ACK:
                _send_quietly(sock, frame_bytes(SETTINGS, ACK, 0))
            elif frame.type == PING and not frame.flags & ACK:
                _send_quietly(sock, frame_bytes(PING, ACK, 0, frame.payload))
    except TimeoutError:
        exchange.timed_out = True
    except OSError:
        exchange.closed = True  # reset by the peer, or a TLS alert
    finally:
        sock.close()
    return exchange


def settings_answer(sock: socket.socket, timeout: float) -> bool:
    """True when the peer answers an HTTP/2 preface with a SETTINGS frame (a live h2 server)."""
    deadline = time.monotonic() + timeout
    try:
        sock.settimeout(timeout)
        sock.sendall(PREFACE + frame_bytes(SETTINGS, 0, 0))
        header = _read_exact(sock, 9, deadline)
        return header is not None and header[3] == SETTINGS
    except (TimeoutError, OSError):
        return False
    finally:
        sock.close()
