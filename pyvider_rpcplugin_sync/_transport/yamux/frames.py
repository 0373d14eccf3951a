"""yamux frames: a 12-byte big-endian header (version, type, flags, stream id, length) and,
for data frames only, ``length`` bytes of payload. Pure functions and an incremental
decoder; no I/O."""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

VERSION = 0
HEADER = struct.Struct(">BBHII")
HEADER_SIZE = HEADER.size
MAX_UINT32 = 0xFFFFFFFF
# Every stream starts with this receive window on both sides; only data bytes count.
INITIAL_WINDOW = 256 * 1024


class FrameType(enum.IntEnum):
    DATA = 0
    WINDOW_UPDATE = 1
    PING = 2
    GO_AWAY = 3


class Flag(enum.IntFlag):
    NONE = 0
    SYN = 1
    ACK = 2
    FIN = 4
    RST = 8


# The same flags as plain ints, for the hot paths (IntFlag arithmetic is slow).
SYN, ACK, FIN, RST = 1, 2, 4, 8
_TYPES: tuple[FrameType, ...] = tuple(FrameType)


class GoAwayCode(enum.IntEnum):
    NORMAL = 0
    PROTOCOL_ERROR = 1
    INTERNAL_ERROR = 2


class YamuxProtocolError(Exception):
    """The peer sent something yamux forbids; the session is over."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame. ``length`` is the payload size for DATA, the window delta for
    WINDOW_UPDATE, the opaque value for PING and the error code for GO_AWAY."""

    type: FrameType
    flags: int  # a combination of Flag
    stream_id: int
    length: int
    payload: bytes = b""

    def encode(self) -> bytes:
        return encode(self.type, self.flags, self.stream_id, self.length, self.payload)


def encode(
    frame_type: FrameType, flags: int, stream_id: int, length: int, payload: bytes = b""
) -> bytes:
    """Header (plus payload for DATA) ready for the wire."""
    if frame_type is FrameType.DATA and length != len(payload):
        raise ValueError("a data frame's length is its payload's size")
    if frame_type is not FrameType.DATA and payload:
        raise ValueError("only data frames carry a payload")
    if not 0 <= stream_id <= MAX_UINT32 or not 0 <= length <= MAX_UINT32:
        raise ValueError("stream id and length are unsigned 32-bit values")
    return HEADER.pack(VERSION, frame_type, flags, stream_id, length) + payload


class FrameDecoder:
    """Turns received bytes into frames, however they were split by the transport.

    ``max_payload`` bounds what one data frame may announce before its payload is
    buffered: a peer cannot make us hold more than that (the session's receive window
    is the real bound, checked there)."""

    def __init__(self, max_payload: int = 16 * 1024 * 1024) -> None:
        self._buffer = bytearray()
        self._max_payload = max_payload
        self._header: tuple[FrameType, int, int, int] | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """The frames completed by ``data``; raises YamuxProtocolError on a bad header."""
        if self._buffer:
            self._buffer += data
            data = bytes(self._buffer)
            self._buffer.clear()
        frames: list[Frame] = []
        offset, end = 0, len(data)
        while True:
            if self._header is None:
                if end - offset < HEADER_SIZE:
                    break
                self._header = _parse_header(data, offset, self._max_payload)
                offset += HEADER_SIZE
            frame_type, flags, stream_id, length = self._header
            size = length if frame_type is FrameType.DATA else 0
            if end - offset < size:
                break
            payload = data[offset : offset + size] if size else b""
            offset += size
            self._header = None
            frames.append(Frame(frame_type, flags, stream_id, length, payload))
        if offset < end:
            self._buffer += data[offset:]
        return frames


def _parse_header(raw: bytes, offset: int, max_payload: int) -> tuple[FrameType, int, int, int]:
    fields: tuple[int, int, int, int, int] = HEADER.unpack_from(raw, offset)
    version, type_byte, flags, stream_id, length = fields
    if version != VERSION:
        raise YamuxProtocolError(f"yamux version {version}; only version 0 exists")
    if type_byte >= len(_TYPES):
        raise YamuxProtocolError(f"unknown yamux frame type {type_byte}")
    frame_type = _TYPES[type_byte]
    if frame_type is FrameType.DATA and length > max_payload:
        raise YamuxProtocolError(
            f"a data frame of {length} bytes exceeds the {max_payload}-byte limit"
        )
    return frame_type, flags, stream_id, length
