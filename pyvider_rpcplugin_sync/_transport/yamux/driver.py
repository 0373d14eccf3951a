"""A yamux session over a connected socket, for threads: one reader thread feeds the
sans-IO session; callers send their own data (in order, under a send lock); a writer
thread sends the rest (window updates, ping answers, opens, closes, go-away).

One lock guards the session; each kind of waiter has its own condition on it (each
stream, accept, ping, the writer), so an event wakes only the threads it concerns.
A stream given a sink socket (a relay's) gets received data written straight to it
by the reader thread whenever nothing waits before it: no hand-off per frame.
Every wait ends when the session does; close() stops both threads and closes the socket.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections import deque

from .session import (
    DataReceived,
    Event,
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

logger = logging.getLogger("pyvider_rpcplugin_sync.yamux")

# Under malloc's mmap threshold (128 KiB): a bigger buffer costs an mmap per recv.
RECV_SIZE = 64 * 1024
# A writer blocks while more than this much of its stream waits for the peer's window.
HIGH_WATER = 512 * 1024
JOIN_TIMEOUT = 5.0


class Stream:
    """One yamux stream, used like a blocking socket from any thread."""

    def __init__(self, connection: YamuxConnection, stream_id: int) -> None:
        self.stream_id = stream_id
        self._conn = connection
        self._cond = threading.Condition(connection._lock)
        self._inbox: deque[bytes] = deque()
        self._eof = False
        self._reset = False
        self._sink: socket.socket | None = None
        self._holding = False  # read() returned a chunk its caller may still be delivering

    def deliver_to(self, sink: socket.socket) -> None:
        """Let received data go straight to ``sink`` when nothing is queued before it;
        the caller still reads (and writes to ``sink``) whatever has to wait."""
        with self._cond:
            self._sink = sink

    def read(self, max_bytes: int = RECV_SIZE, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes``; b"" once the peer half-closed. Raises ConnectionResetError
        on a reset or the session's end, TimeoutError after ``timeout`` seconds."""
        conn = self._conn
        with self._cond:
            self._holding = False
            if not self._cond.wait_for(
                lambda: self._inbox or self._eof or self._reset or conn._ended, timeout
            ):
                raise TimeoutError(f"nothing on yamux stream {self.stream_id} in {timeout} s")
            if self._inbox:
                chunk = self._inbox.popleft()
                if len(chunk) > max_bytes:
                    self._inbox.appendleft(chunk[max_bytes:])
                    chunk = chunk[:max_bytes]
                self._holding = True
                conn._session.consumed(self.stream_id, len(chunk))
                conn._wake_writer()
                return chunk
            if self._eof:
                return b""
            raise ConnectionResetError(self._why_dead())

    def write(self, data: bytes, timeout: float | None = None) -> None:
        """Queue all of ``data`` and send what the window allows; blocks while the peer
        is far behind."""
        conn = self._conn
        session = conn._session
        with self._cond:
            if session.pending(self.stream_id) >= HIGH_WATER and not self._cond.wait_for(
                lambda: self._reset or conn._ended or session.pending(self.stream_id) < HIGH_WATER,
                timeout,
            ):
                raise TimeoutError(f"yamux stream {self.stream_id} stayed full for {timeout} s")
            if self._reset or conn._ended:
                raise ConnectionResetError(self._why_dead())
            try:
                session.send(self.stream_id, data)
            except (StreamClosedError, SessionClosedError) as exc:
                raise ConnectionResetError(str(exc)) from None
        conn._flush()

    def close(self) -> None:
        """Half-close: the peer reads EOF after what was written."""
        conn = self._conn
        with self._cond:
            conn._session.close_stream(self.stream_id)
            conn._forget_if_done(self.stream_id)
            conn._wake_writer()

    def reset(self) -> None:
        conn = self._conn
        with self._cond:
            self._reset = True
            conn._session.reset_stream(self.stream_id)
            conn._streams.pop(self.stream_id, None)
            self._cond.notify_all()
            conn._wake_writer()

    def _why_dead(self) -> str:
        if self._reset:
            return f"yamux stream {self.stream_id} was reset"
        return f"yamux session ended: {self._conn._end_reason}"


class YamuxConnection:
    """A yamux session (``client=True`` on the side that dialed) over ``sock``, which it
    owns from now on."""

    def __init__(self, sock: socket.socket, *, client: bool, name: str = "yamux") -> None:
        sock.settimeout(None)
        self._sock = sock
        self._session = Session(client=client)
        self._lock = threading.Lock()
        self._accept_cond = threading.Condition(self._lock)
        self._ping_cond = threading.Condition(self._lock)
        self._write_cond = threading.Condition(self._lock)
        self._send_lock = threading.Lock()  # one sender at a time: frames stay in order
        self._streams: dict[int, Stream] = {}
        self._accepted: deque[Stream] = deque()
        self._pings: dict[int, float] = {}
        self._ended = False
        self._end_reason = ""
        self._closing = False
        self._reader = threading.Thread(target=self._read_loop, name=f"{name}-read", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name=f"{name}-write", daemon=True)
        self._reader.start()
        self._writer.start()

    @property
    def ended(self) -> bool:
        return self._ended

    def open(self) -> Stream:
        """A new stream; data may follow at once (the peer's ACK is not awaited)."""
        with self._lock:
            if self._ended:
                raise SessionClosedError(f"yamux session ended: {self._end_reason}")
            stream = Stream(self, self._session.open_stream())
            self._streams[stream.stream_id] = stream
        self._flush()
        return stream

    def accept(self, timeout: float | None = None) -> Stream:
        """The next stream the peer opens. SessionClosedError once the session is over."""
        with self._accept_cond:
            if not self._accept_cond.wait_for(lambda: self._accepted or self._ended, timeout):
                raise TimeoutError(f"no yamux stream opened in {timeout} s")
            if self._accepted:
                return self._accepted.popleft()
            raise SessionClosedError(f"yamux session ended: {self._end_reason}")

    def ping(self, timeout: float = 5.0) -> float:
        """Round-trip time of one ping, in seconds."""
        with self._ping_cond:
            if self._ended:
                raise SessionClosedError(f"yamux session ended: {self._end_reason}")
            started = time.monotonic()
            opaque = self._session.ping()
            self._write_cond.notify()
            if not self._ping_cond.wait_for(lambda: opaque in self._pings or self._ended, timeout):
                raise TimeoutError(f"no answer to a yamux ping in {timeout} s")
            if opaque not in self._pings:
                raise SessionClosedError(f"yamux session ended: {self._end_reason}")
            return self._pings.pop(opaque) - started

    def close(self) -> None:
        """Go away (normal), send what is queued, close the socket, stop both threads."""
        with self._lock:
            if not self._closing:
                self._closing = True
                self._session.go_away()
            self._write_cond.notify()
        self._writer.join(JOIN_TIMEOUT)
        self._end("closed")
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        if threading.current_thread() is not self._reader:
            self._reader.join(JOIN_TIMEOUT)
        self._sock.close()

    def __enter__(self) -> YamuxConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals (the lock held where noted)

    def _wake_writer(self) -> None:
        """(lock held) Let the writer send what the session has queued."""
        if self._session.has_output():
            self._write_cond.notify()

    def _end(self, reason: str) -> None:
        with self._lock:
            self._mark_ended(reason)

    def _mark_ended(self, reason: str) -> None:
        """(lock held) Wake every waiter: the session is over."""
        if not self._ended:
            self._ended = True
            self._end_reason = reason
        for stream in self._streams.values():
            stream._cond.notify_all()
        for cond in (self._accept_cond, self._ping_cond, self._write_cond):
            cond.notify_all()

    def _read_loop(self) -> None:
        try:
            while True:
                data = self._sock.recv(RECV_SIZE)
                if not data:
                    self._end("the peer closed the connection")
                    return
                with self._lock:
                    for event in self._session.receive(data):
                        self._dispatch(event)
                    self._wake_writer()
                if self._ended:
                    return
        except OSError as exc:
            self._end(f"reading failed: {exc}")

    def _dispatch(self, event: Event) -> None:
        """(lock held)"""
        if isinstance(event, StreamOpened):
            stream = Stream(self, event.stream_id)
            self._streams[event.stream_id] = stream
            self._accepted.append(stream)
            self._accept_cond.notify()
            return
        if isinstance(event, SessionEnded):
            logger.debug("yamux session ended: %s", event.reason)
            self._mark_ended(event.reason)
            return
        if isinstance(event, PingAnswered):
            self._pings[event.opaque] = time.monotonic()
            self._ping_cond.notify_all()
            return
        stream_id = getattr(event, "stream_id", None)
        target = self._streams.get(stream_id) if stream_id is not None else None
        if target is None:
            return
        if isinstance(event, DataReceived):
            if self._deliver(target, event.data):
                return  # written straight to the sink: nobody to wake
        elif isinstance(event, StreamEnded):
            target._eof = True
            self._forget_if_done(event.stream_id)
        elif isinstance(event, StreamReset):
            target._reset = True
            del self._streams[event.stream_id]
        elif not isinstance(event, SendWindowOpened):
            return
        target._cond.notify_all()

    def _deliver(self, stream: Stream, data: bytes) -> bool:
        """(lock held) True when all of ``data`` went to the stream's sink."""
        sent = 0
        sink = stream._sink
        if sink is not None and not stream._inbox and not stream._holding:
            try:
                sent = sink.send(data, socket.MSG_DONTWAIT)
            except OSError:  # full, or closed: the slow path decides
                sent = 0
            if sent:
                self._session.consumed(stream.stream_id, sent)
        if sent == len(data):
            return True
        stream._inbox.append(data[sent:] if sent else data)
        return False

    def _flush(self) -> None:
        """Send what the session has queued, in order, from the calling thread."""
        with self._send_lock:
            with self._lock:
                out = self._session.data_to_send()
            if not out:
                return
            try:
                self._sock.sendall(out)
            except OSError as exc:
                self._end(f"writing failed: {exc}")

    def _forget_if_done(self, stream_id: int) -> None:
        """(lock held)"""
        if not self._session.knows(stream_id):
            self._streams.pop(stream_id, None)

    def _write_loop(self) -> None:
        while True:
            with self._write_cond:
                self._write_cond.wait_for(
                    lambda: self._session.has_output() or self._closing or self._ended
                )
                if not self._session.has_output():
                    return
            self._flush()
