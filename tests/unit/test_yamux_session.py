"""The sans-IO yamux session: two sessions wired back to back under random operations
(hypothesis) must deliver every stream's bytes in order, never send past a window, and
agree on which streams are open; plus the protocol's single rules one by one."""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyvider_rpcplugin_sync._transport.yamux.frames import (
    INITIAL_WINDOW,
    Flag,
    FrameDecoder,
    FrameType,
    GoAwayCode,
    encode,
)
from pyvider_rpcplugin_sync._transport.yamux.session import (
    DataReceived,
    Event,
    GoAwayReceived,
    PingAnswered,
    SendWindowOpened,
    Session,
    SessionClosedError,
    SessionEnded,
    StreamClosedError,
    StreamEnded,
    StreamOpened,
    StreamReset,
)


class Pair:
    """A client and a server session; ``pump`` moves bytes until both are quiet, taking
    (consuming) at most ``take`` received bytes per stream per round."""

    def __init__(self) -> None:
        self.sides = {"c": Session(client=True), "s": Session(client=False)}
        self.received: dict[str, dict[int, bytearray]] = {
            "c": defaultdict(bytearray),
            "s": defaultdict(bytearray),
        }
        self.unconsumed: dict[str, dict[int, int]] = {"c": defaultdict(int), "s": defaultdict(int)}
        self.events: dict[str, list[Event]] = {"c": [], "s": []}

    def pump(self, take: int | None = None) -> None:
        for _ in range(10_000):
            moved = False
            for me, peer in (("c", "s"), ("s", "c")):
                out = self.sides[me].data_to_send()
                if out:
                    moved = True
                    for event in self.sides[peer].receive(out):
                        assert not isinstance(event, SessionEnded), event
                        self.events[peer].append(event)
                        if isinstance(event, DataReceived):
                            self.received[peer][event.stream_id] += event.data
                            self.unconsumed[peer][event.stream_id] += len(event.data)
                for stream_id, size in list(self.unconsumed[me].items()):
                    part = size if take is None else min(size, take)
                    if part:
                        self.unconsumed[me][stream_id] -= part
                        self.sides[me].consumed(stream_id, part)
                        moved = True
            if not moved:
                return
        raise AssertionError("the sessions never went quiet")


operations = st.lists(
    st.tuples(
        st.sampled_from(["open", "send", "close", "reset", "ping"]),
        st.sampled_from("cs"),
        st.integers(0, 7),
        st.integers(0, 600_000),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(operations, st.one_of(st.none(), st.integers(1, 300_000)))
def test_random_operations_deliver_everything_in_order(ops: list, take: int | None) -> None:  # type: ignore[type-arg]
    pair = Pair()
    opened: dict[str, list[int]] = {"c": [], "s": []}
    sent: dict[str, dict[int, bytearray]] = {
        "c": defaultdict(bytearray),
        "s": defaultdict(bytearray),
    }
    closed: set[tuple[str, int]] = set()
    reset: set[int] = set()
    counter = 0
    for op, side, pick, size in ops:
        session = pair.sides[side]
        mine = opened[side] + [
            e.stream_id for e in pair.events[side] if isinstance(e, StreamOpened)
        ]
        if op == "open":
            opened[side].append(session.open_stream())
        elif op == "ping":
            session.ping()
        elif mine:
            stream_id = mine[pick % len(mine)]
            if op == "send" and (side, stream_id) not in closed and stream_id not in reset:
                counter += 1
                data = bytes([counter % 256]) * (size % 700_000)
                session.send(stream_id, data)
                sent[side][stream_id] += data
            elif op == "close":
                session.close_stream(stream_id)
                closed.add((side, stream_id))
            elif op == "reset" and stream_id not in reset:
                session.reset_stream(stream_id)
                reset.add(stream_id)
        pair.pump(take)
    pair.pump()
    for me, peer in (("c", "s"), ("s", "c")):
        assert all(i % 2 == (1 if me == "c" else 0) for i in opened[me])
        for stream_id, data in sent[me].items():
            got = pair.received[peer][stream_id]
            if stream_id in reset:
                assert data.startswith(got)  # a reset may cut the stream short
            else:
                assert got == data
                assert pair.sides[me].pending(stream_id) == 0
    pings = sum(1 for op in ops if op[0] == "ping")
    answered = sum(isinstance(e, PingAnswered) for side in "cs" for e in pair.events[side])
    assert answered == pings


def frames_of(raw: bytes) -> list[tuple[FrameType, Flag, int, int]]:
    return [(f.type, f.flags, f.stream_id, f.length) for f in FrameDecoder().feed(raw)]


def test_opening_sends_syn_and_accepting_answers_ack() -> None:
    client, server = Session(client=True), Session(client=False)
    assert client.open_stream() == 1
    assert client.open_stream() == 3
    syn = client.data_to_send()
    assert frames_of(syn) == [
        (FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0),
        (FrameType.WINDOW_UPDATE, Flag.SYN, 3, 0),
    ]
    assert server.receive(syn) == [StreamOpened(1), StreamOpened(3)]
    assert frames_of(server.data_to_send()) == [
        (FrameType.WINDOW_UPDATE, Flag.ACK, 1, 0),
        (FrameType.WINDOW_UPDATE, Flag.ACK, 3, 0),
    ]
    assert server.open_stream() == 2


def test_data_waits_for_the_window_and_leaves_on_update() -> None:
    client, server = Session(client=True), Session(client=False)
    stream = client.open_stream()
    client.send(stream, b"x" * (INITIAL_WINDOW + 10))
    assert client.pending(stream) == 10
    events = server.receive(client.data_to_send())
    assert sum(len(e.data) for e in events if isinstance(e, DataReceived)) == INITIAL_WINDOW
    server.consumed(stream, INITIAL_WINDOW // 2 - 1)
    server.data_to_send()  # the ACK only: half the window is not back yet
    server.consumed(stream, 1)
    update = server.data_to_send()
    assert frames_of(update) == [(FrameType.WINDOW_UPDATE, Flag.NONE, 1, INITIAL_WINDOW // 2)]
    assert client.receive(update) == [SendWindowOpened(stream)]
    assert client.pending(stream) == 0


def test_sending_past_the_window_is_a_protocol_error() -> None:
    server = Session(client=False)
    server.receive(encode(FrameType.WINDOW_UPDATE, Flag.SYN, 1, 0))
    too_much = b"y" * (INITIAL_WINDOW + 1)
    events = server.receive(encode(FrameType.DATA, Flag.NONE, 1, len(too_much), too_much))
    assert isinstance(events[-1], SessionEnded)
    assert events[-1].code is GoAwayCode.PROTOCOL_ERROR
    assert (FrameType.GO_AWAY, Flag.NONE, 0, 1) in frames_of(server.data_to_send())
    with pytest.raises(SessionClosedError):
        server.open_stream()


def test_fin_both_ways_forgets_the_stream_and_rst_drops_it_at_once() -> None:
    client, server = Session(client=True), Session(client=False)
    first, second = client.open_stream(), client.open_stream()
    server.receive(client.data_to_send())
    client.receive(server.data_to_send())
    client.close_stream(first)
    assert server.receive(client.data_to_send()) == [StreamEnded(first)]
    assert server.knows(first)
    server.close_stream(first)
    assert client.receive(server.data_to_send()) == [StreamEnded(first)]
    assert not client.knows(first) and not server.knows(first)
    client.reset_stream(second)
    assert server.receive(client.data_to_send()) == [StreamReset(second)]
    with pytest.raises(StreamClosedError):
        server.send(second, b"late")


def test_ping_is_answered_with_its_value() -> None:
    client, server = Session(client=True), Session(client=False)
    opaque = client.ping()
    assert server.receive(client.data_to_send()) == []
    assert frames_of(pong := server.data_to_send()) == [(FrameType.PING, Flag.ACK, 0, opaque)]
    assert client.receive(pong) == [PingAnswered(opaque)]


def test_go_away_refuses_new_streams_but_keeps_the_old() -> None:
    client, server = Session(client=True), Session(client=False)
    old = client.open_stream()
    server.receive(client.data_to_send())
    server.go_away()
    assert client.receive(server.data_to_send()) == [GoAwayReceived()]
    with pytest.raises(SessionClosedError, match="going away"):
        client.open_stream()
    client.send(old, b"still here")
    assert DataReceived(old, b"still here") in server.receive(client.data_to_send())
    # A SYN arriving after our go-away is refused with RST.
    server.receive(encode(FrameType.WINDOW_UPDATE, Flag.SYN, 99, 0))
    assert frames_of(server.data_to_send()) == [(FrameType.WINDOW_UPDATE, Flag.RST, 99, 0)]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (encode(FrameType.WINDOW_UPDATE, Flag.SYN, 0, 0), "stream 0"),
        (encode(FrameType.GO_AWAY, Flag.NONE, 0, GoAwayCode.INTERNAL_ERROR), "code 2"),
        (encode(FrameType.WINDOW_UPDATE, Flag.SYN, 5, 0) * 2, "opened twice"),
    ],
)
def test_session_ending_frames(raw: bytes, reason: str) -> None:
    events = Session(client=False).receive(raw)
    assert isinstance(events[-1], SessionEnded)
    assert reason in events[-1].reason


def test_frames_for_unknown_streams_are_dropped() -> None:
    server = Session(client=False)
    assert server.receive(encode(FrameType.DATA, Flag.NONE, 7, 3, b"abc")) == []
    assert server.ended is None
