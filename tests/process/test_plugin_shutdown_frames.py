"""The controller's Shutdown reply leaves before the server's GOAWAY, frame by frame.

h2-based hosts (grpclib, and anything built on the ``h2`` library) ignore
every frame that follows a GOAWAY, so a reply queued after it is lost and the
host falls back to killing the plugin. A minimal HTTP/2 client on a raw
socket records the order in which the plugin's frames arrive.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

import hpack
import pytest
from hyperframe.frame import (
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    SettingsFrame,
)
from plugin_harness import KV_ENV, module_cmd, started

pytestmark = pytest.mark.timeout(60)

KV = module_cmd("pyvider_rpcplugin_sync.examples.kv_plugin")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
STREAM = 1
FRAME_HEADER_SIZE = 9
EMPTY_GRPC_MESSAGE = b"\x00\x00\x00\x00\x00"  # uncompressed, zero-length protobuf Empty


@dataclass
class Received:
    frames: list[Frame]
    headers: dict[int, list[list[tuple[str, str]]]]  # header blocks in order, per frame index


def shutdown_request(encoder: hpack.Encoder) -> bytes:
    block = encoder.encode(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/plugin.GRPCController/Shutdown"),
            (":authority", "localhost"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
    )
    return b"".join(
        [
            PREFACE,
            SettingsFrame(0).serialize(),
            HeadersFrame(STREAM, data=block, flags=["END_HEADERS"]).serialize(),
            DataFrame(STREAM, data=EMPTY_GRPC_MESSAGE, flags=["END_STREAM"]).serialize(),
        ]
    )


def read_exactly(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def exchange(address: str) -> Received:
    """Send one Shutdown call and read frames until the plugin closes the connection."""
    encoder, decoder = hpack.Encoder(), hpack.Decoder()
    received = Received(frames=[], headers={})
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(address)
        sock.sendall(shutdown_request(encoder))
        while (head := read_exactly(sock, FRAME_HEADER_SIZE)) is not None:
            frame, length = Frame.parse_frame_header(memoryview(head))
            body = read_exactly(sock, length) if length else b""
            if body is None:
                break
            frame.parse_body(memoryview(body))
            received.frames.append(frame)
            if isinstance(frame, HeadersFrame):
                received.headers[len(received.frames) - 1] = decoder.decode(frame.data)
            try:
                acknowledge(sock, frame)
            except OSError:
                break  # the plugin is already gone; what it sent is what counts
    return received


def acknowledge(sock: socket.socket, frame: Frame) -> None:
    """Answer what a real client answers, so the server is never kept waiting."""
    if "ACK" in frame.flags:
        return
    if isinstance(frame, SettingsFrame):
        sock.sendall(SettingsFrame(0, flags=["ACK"]).serialize())
    elif isinstance(frame, PingFrame):
        sock.sendall(PingFrame(0, opaque_data=frame.opaque_data, flags=["ACK"]).serialize())


def test_shutdown_reply_precedes_goaway() -> None:
    # The lost-reply race showed in most shutdowns before the fix; several
    # fresh plugins make a regression visible on every run.
    for attempt in range(5):
        with started(KV, KV_ENV) as plugin:
            received = exchange(plugin.line.address)
            assert plugin.proc.wait(timeout=5) == 0
        kinds = [type(frame).__name__ for frame in received.frames]
        trailers = [
            index
            for index, frame in enumerate(received.frames)
            if isinstance(frame, HeadersFrame)
            and frame.stream_id == STREAM
            and "END_STREAM" in frame.flags
        ]
        goaways = [i for i, frame in enumerate(received.frames) if isinstance(frame, GoAwayFrame)]
        assert trailers, f"attempt {attempt}: no reply trailers at all: {kinds}"
        assert goaways, f"attempt {attempt}: the plugin closed without GOAWAY: {kinds}"
        assert trailers[0] < goaways[0], f"attempt {attempt}: GOAWAY before the reply: {kinds}"
        status = dict(received.headers[trailers[0]]).get("grpc-status")
        assert status == "0", f"attempt {attempt}: Shutdown answered grpc-status {status}"
        data = [
            frame
            for frame in received.frames[: trailers[0]]
            if isinstance(frame, DataFrame) and frame.stream_id == STREAM
        ]
        assert b"".join(frame.data for frame in data) == EMPTY_GRPC_MESSAGE


def test_shutdown_exits_promptly_after_replying() -> None:
    with started(KV, KV_ENV) as plugin:
        begin = time.monotonic()
        exchange(plugin.line.address)
        assert plugin.proc.wait(timeout=5) == 0
        elapsed = time.monotonic() - begin
    assert elapsed < 1.0
