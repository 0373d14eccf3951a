"""A yamux session as a sans-IO state machine: bytes in (``receive``), events out, bytes
to write out (``data_to_send``). The caller owns the socket and the threads.

Flow control: each direction of each stream has a window (256 KiB to start). Data the
application queues with ``send`` leaves only as far as the peer's window allows; the
rest waits in the stream and leaves when a window update arrives. Received data shrinks
our window; the application gives credit back with ``consumed`` once it has taken the
bytes, and a window update goes out when half the window has been given back. A peer
that sends past the window breaks the protocol: a go-away (protocol error) and the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .frames import (
    ACK,
    FIN,
    HEADER,
    INITIAL_WINDOW,
    MAX_UINT32,
    RST,
    SYN,
    VERSION,
    Frame,
    FrameDecoder,
    FrameType,
    GoAwayCode,
    YamuxProtocolError,
)

MAX_FRAME = 64 * 1024


@dataclass(frozen=True, slots=True)
class StreamOpened:
    """The peer opened ``stream_id`` (already acknowledged)."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class DataReceived:
    stream_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class StreamEnded:
    """The peer half-closed ``stream_id``: it will send no more."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class StreamReset:
    stream_id: int


@dataclass(frozen=True, slots=True)
class SendWindowOpened:
    """Queued data of ``stream_id`` left, or can now leave: writers may go on."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class PingAnswered:
    opaque: int


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """A go-away that ends the session (any code but normal), or our own protocol error."""

    code: GoAwayCode
    reason: str


@dataclass(frozen=True, slots=True)
class GoAwayReceived:
    """A normal go-away: the peer accepts no new streams; existing ones go on."""


Event = (
    StreamOpened
    | DataReceived
    | StreamEnded
    | StreamReset
    | SendWindowOpened
    | PingAnswered
    | SessionEnded
    | GoAwayReceived
)


class StreamClosedError(Exception):
    """Sending on a stream that was reset, half-closed by us, or never existed."""


class SessionClosedError(Exception):
    """The session is over (go-away, protocol error or close)."""


@dataclass(slots=True)
class _Stream:
    stream_id: int
    send_window: int = INITIAL_WINDOW
    recv_window: int = INITIAL_WINDOW
    credit: int = 0  # consumed bytes not yet given back in a window update
    outbound: bytearray = field(default_factory=bytearray)
    flags_due: int = 0  # SYN or ACK, carried by the next frame we send
    fin_queued: bool = False  # FIN goes out once outbound is empty
    local_closed: bool = False
    remote_closed: bool = False


class Session:
    """One side of a yamux session. The client opens odd stream ids, the server even ones."""

    def __init__(self, *, client: bool, max_frame: int = MAX_FRAME) -> None:
        self.client = client
        self._next_id = 1 if client else 2
        self._streams: dict[int, _Stream] = {}
        self._decoder = FrameDecoder()
        self._out = bytearray()
        self._max_frame = max_frame
        self._next_ping = 1
        self.local_go_away = False
        self.remote_go_away = False
        self.ended: SessionEnded | None = None

    # -- what the application asks for

    def open_stream(self) -> int:
        """A new stream id; its SYN leaves at once (a window update of 0, as Go does)."""
        self._check_open()
        if self.remote_go_away or self.local_go_away:
            raise SessionClosedError("the session is going away; no new streams")
        stream_id = self._next_id
        if stream_id > MAX_UINT32:
            raise SessionClosedError("stream ids are exhausted")
        self._next_id += 2
        self._streams[stream_id] = _Stream(stream_id, flags_due=SYN)
        self._flush_stream(self._streams[stream_id], force=True)
        return stream_id

    def send(self, stream_id: int, data: bytes) -> None:
        """Queue ``data``; it leaves as the peer's window allows (see ``pending``)."""
        stream = self._sendable(stream_id)
        size = len(data)
        if not stream.outbound and size <= stream.send_window and size <= self._max_frame:
            # The common case: nothing queued, room in the window: one frame, no copy.
            stream.send_window -= size
            self._emit(FrameType.DATA, self._take_flags(stream), stream_id, size, data)
            return
        stream.outbound += data
        self._flush_stream(stream)

    def pending(self, stream_id: int) -> int:
        """Bytes of ``stream_id`` queued and not yet framed (0 for an unknown stream)."""
        stream = self._streams.get(stream_id)
        return len(stream.outbound) if stream is not None else 0

    def close_stream(self, stream_id: int) -> None:
        """Half-close: FIN after whatever is queued. Idempotent."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.fin_queued or self.ended is not None:
            return
        stream.fin_queued = True
        self._flush_stream(stream, force=not stream.outbound)

    def reset_stream(self, stream_id: int) -> None:
        """Abort ``stream_id`` now: queued data is dropped and the peer gets RST."""
        stream = self._streams.pop(stream_id, None)
        if stream is None or self.ended is not None:
            return
        self._emit(FrameType.WINDOW_UPDATE, self._take_flags(stream) | RST, stream_id, 0)

    def consumed(self, stream_id: int, size: int) -> None:
        """The application took ``size`` received bytes; give the window back in halves."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.remote_closed or self.ended is not None:
            return
        stream.credit += size
        if stream.credit >= INITIAL_WINDOW // 2:
            self._send_window_update(stream)

    def ping(self) -> int:
        """Send a ping; PingAnswered(opaque) comes back with the returned value."""
        self._check_open()
        opaque = self._next_ping
        self._next_ping = self._next_ping % MAX_UINT32 + 1
        self._emit(FrameType.PING, SYN, 0, opaque)
        return opaque

    def go_away(self, code: GoAwayCode = GoAwayCode.NORMAL) -> None:
        """Tell the peer we accept no new streams (a non-normal code ends the session)."""
        if self.ended is not None or self.local_go_away:
            return
        self.local_go_away = True
        self._emit(FrameType.GO_AWAY, 0, 0, code)
        if code is not GoAwayCode.NORMAL:
            self.ended = SessionEnded(code, "we ended the session")

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def has_output(self) -> bool:
        return bool(self._out)

    def knows(self, stream_id: int) -> bool:
        """False once a stream is reset or closed both ways (or was never opened)."""
        return stream_id in self._streams

    # -- what the peer sent

    def receive(self, data: bytes) -> list[Event]:
        """Feed received bytes; the events they complete. After a protocol error the
        session answers nothing more but a go-away already queued."""
        if self.ended is not None:
            return []
        try:
            frames = self._decoder.feed(data)
        except YamuxProtocolError as exc:
            return [self._protocol_error(str(exc))]
        events: list[Event] = []
        for frame in frames:
            try:
                events.extend(self._handle(frame))
            except YamuxProtocolError as exc:
                events.append(self._protocol_error(str(exc)))
            if self.ended is not None:
                break
        return events

    def _handle(self, frame: Frame) -> list[Event]:
        if frame.type is FrameType.PING:
            if frame.flags & SYN:
                self._emit(FrameType.PING, ACK, 0, frame.length)
                return []
            return [PingAnswered(frame.length)] if frame.flags & ACK else []
        if frame.type is FrameType.GO_AWAY:
            return [self._go_away_received(frame.length)]
        return self._stream_frame(frame)

    def _go_away_received(self, code: int) -> Event:
        if code == GoAwayCode.NORMAL:
            self.remote_go_away = True
            return GoAwayReceived()
        try:
            known = GoAwayCode(code)
        except ValueError:
            known = GoAwayCode.PROTOCOL_ERROR
        self.ended = SessionEnded(known, f"the peer went away with code {code}")
        return self.ended

    def _stream_frame(self, frame: Frame) -> list[Event]:
        events: list[Event] = []
        stream_id = frame.stream_id
        if frame.flags & SYN:
            if not self._incoming(stream_id):
                return []
            events.append(StreamOpened(stream_id))
        stream = self._streams.get(stream_id)
        if stream is None:
            return events  # a stream we reset or closed: drop what is still in flight
        if frame.type is FrameType.WINDOW_UPDATE:
            if stream.send_window + frame.length > MAX_UINT32:
                raise YamuxProtocolError(f"stream {stream_id}'s window overflows")
            stream.send_window += frame.length
            if frame.length and stream.outbound:
                self._flush_stream(stream)
                events.append(SendWindowOpened(stream_id))
        elif frame.payload:
            if stream.remote_closed:
                raise YamuxProtocolError(f"data on stream {stream_id} after its FIN")
            if len(frame.payload) > stream.recv_window:
                raise YamuxProtocolError(f"stream {stream_id} sent past its receive window")
            stream.recv_window -= len(frame.payload)
            events.append(DataReceived(stream_id, frame.payload))
        if frame.flags & RST:
            del self._streams[stream_id]
            events.append(StreamReset(stream_id))
        elif frame.flags & FIN and not stream.remote_closed:
            stream.remote_closed = True
            events.append(StreamEnded(stream_id))
            self._forget_if_done(stream)
        return events

    def _incoming(self, stream_id: int) -> bool:
        """Register (and acknowledge) a stream the peer opens; False when refused."""
        if stream_id == 0:
            raise YamuxProtocolError("a stream frame with SYN on stream 0")
        if stream_id in self._streams:
            raise YamuxProtocolError(f"stream {stream_id} opened twice")
        if self.local_go_away:
            self._emit(FrameType.WINDOW_UPDATE, RST, stream_id, 0)
            return False
        stream = _Stream(stream_id, flags_due=ACK)
        self._streams[stream_id] = stream
        self._flush_stream(stream, force=True)
        return True

    # -- internals

    def _check_open(self) -> None:
        if self.ended is not None:
            raise SessionClosedError(self.ended.reason)

    def _sendable(self, stream_id: int) -> _Stream:
        self._check_open()
        stream = self._streams.get(stream_id)
        if stream is None:
            raise StreamClosedError(f"stream {stream_id} is reset or unknown")
        if stream.fin_queued:
            raise StreamClosedError(f"stream {stream_id} is closed for sending")
        return stream

    def _take_flags(self, stream: _Stream) -> int:
        flags, stream.flags_due = stream.flags_due, 0
        return flags

    def _flush_stream(self, stream: _Stream, *, force: bool = False) -> None:
        """Frame as much queued data as the window allows; ``force`` sends a frame even
        with nothing to carry (SYN, ACK or FIN)."""
        while stream.outbound and stream.send_window > 0:
            size = min(len(stream.outbound), stream.send_window, self._max_frame)
            chunk = bytes(stream.outbound[:size])
            del stream.outbound[:size]
            stream.send_window -= size
            flags = self._take_flags(stream)
            if stream.fin_queued and not stream.outbound:
                flags |= FIN
                stream.local_closed = True
            self._emit(FrameType.DATA, flags, stream.stream_id, size, chunk)
            force = False
        if stream.fin_queued and not stream.outbound and not stream.local_closed:
            stream.local_closed = True
            self._emit(FrameType.WINDOW_UPDATE, self._take_flags(stream) | FIN,
                       stream.stream_id, 0)  # fmt: skip
        elif force and stream.flags_due:
            self._emit(FrameType.WINDOW_UPDATE, self._take_flags(stream), stream.stream_id, 0)
        self._forget_if_done(stream)

    def _send_window_update(self, stream: _Stream) -> None:
        delta, stream.credit = stream.credit, 0
        stream.recv_window += delta
        self._emit(FrameType.WINDOW_UPDATE, self._take_flags(stream), stream.stream_id, delta)

    def _forget_if_done(self, stream: _Stream) -> None:
        if stream.local_closed and stream.remote_closed:
            self._streams.pop(stream.stream_id, None)

    def _emit(
        self, frame_type: FrameType, flags: int, stream_id: int, length: int, payload: bytes = b""
    ) -> None:
        self._out += HEADER.pack(VERSION, frame_type, flags, stream_id, length)
        self._out += payload

    def _protocol_error(self, reason: str) -> SessionEnded:
        if not self.local_go_away:
            self._emit(FrameType.GO_AWAY, 0, 0, GoAwayCode.PROTOCOL_ERROR)
            self.local_go_away = True
        self.ended = SessionEnded(GoAwayCode.PROTOCOL_ERROR, reason)
        return self.ended
