"""The yamux frame codec: round trips however the bytes are split, and a fuzz of the
decoder and of a whole session with arbitrary bytes (typed errors only, never a crash
or a hang)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvider_rpcplugin_sync._transport.yamux.frames import (
    HEADER_SIZE,
    Flag,
    Frame,
    FrameDecoder,
    FrameType,
    YamuxProtocolError,
    encode,
)
from pyvider_rpcplugin_sync._transport.yamux.session import Session, SessionEnded

uint32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    frame_type = draw(st.sampled_from(FrameType))
    flags = Flag(draw(st.integers(0, 15)))
    if frame_type is FrameType.DATA:
        payload = draw(st.binary(max_size=2000))
        return Frame(frame_type, flags, draw(uint32), len(payload), payload)
    return Frame(frame_type, flags, draw(uint32), draw(uint32))


@settings(deadline=None)
@given(st.lists(frames(), max_size=20), st.data())
def test_frames_round_trip_however_the_bytes_are_split(
    items: list[Frame], data: st.DataObject
) -> None:
    wire = b"".join(frame.encode() for frame in items)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=10)))
    decoder = FrameDecoder()
    decoded: list[Frame] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        decoded += decoder.feed(wire[start:cut])
        start = cut
    assert decoded == items


def test_the_header_is_twelve_big_endian_bytes() -> None:
    raw = encode(FrameType.WINDOW_UPDATE, Flag.SYN | Flag.ACK, 0x01020304, 0x0A0B0C0D)
    assert raw == bytes([0, 1, 0, 3, 1, 2, 3, 4, 0x0A, 0x0B, 0x0C, 0x0D])
    assert HEADER_SIZE == 12


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (bytes([1, 0, 0, 0]) + bytes(8), "version 1"),
        (bytes([0, 9, 0, 0]) + bytes(8), "unknown yamux frame type 9"),
        (bytes([0, 0, 0, 0, 0, 0, 0, 1, 0xFF, 0xFF, 0xFF, 0xFF]), "exceeds"),
    ],
)
def test_bad_headers_are_typed_errors(raw: bytes, message: str) -> None:
    with pytest.raises(YamuxProtocolError, match=message):
        FrameDecoder().feed(raw)


def test_only_data_frames_carry_a_payload() -> None:
    with pytest.raises(ValueError, match="payload"):
        encode(FrameType.PING, Flag.NONE, 0, 0, b"x")
    with pytest.raises(ValueError, match="length"):
        encode(FrameType.DATA, Flag.NONE, 1, 5, b"x")


@settings(deadline=None)
@given(st.binary(max_size=4000))
def test_the_decoder_takes_any_bytes_without_crashing(data: bytes) -> None:
    with contextlib.suppress(YamuxProtocolError):
        FrameDecoder().feed(data)


@settings(deadline=None)
@given(st.lists(st.one_of(frames().map(Frame.encode), st.binary(max_size=64)), max_size=30))
@pytest.mark.parametrize("client", [True, False])
def test_a_session_fed_garbage_ends_with_a_go_away_or_goes_on(
    client: bool, chunks: list[bytes]
) -> None:
    session = Session(client=client)
    for chunk in chunks:
        events = session.receive(chunk)
        session.data_to_send()
        if any(isinstance(event, SessionEnded) for event in events):
            assert session.ended is not None
            assert session.receive(b"anything") == []
            return
