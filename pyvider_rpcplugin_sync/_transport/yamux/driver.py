"""A yamux session over a connected socket: one reader thread feeds the sans-IO session,
one writer thread sends what it produces, and callers block on one condition until
their stream can go on. Every wait ends when the session does; close() stops both
threads and closes the socket."""

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
    Session,
    SessionClosedError,
    SessionEnded,
    StreamClosedError,
    StreamEnded,
    StreamOpened,
    StreamReset,
)

logger = logging.getLogger("pyvider_rpcplugin_sync.yamux")

RECV_SIZE = 256 * 1024
# A writer blocks while more than this much of its stream waits for the peer's window.
HIGH_WATER = 512 * 1024
JOIN_TIMEOUT = 5.0


class Stream:
    """One yamux stream, used like a blocking socket from any thread."""

    def __init__(self, connection: YamuxConnection, stream_id: int) -> None:
        self.stream_id = stream_id
        self._conn = connection
        self._inbox: deque[bytes] = deque()
        self._eof = False
        self._reset = False

    def read(self, max_bytes: int = RECV_SIZE, timeout: float | None = None) -> bytes:
        """Up to ``max_bytes``; b"" once the peer half-closed. Raises ConnectionResetError
        on a reset or the session's end, TimeoutError after ``timeout`` seconds."""
        conn = self._conn
        with conn._cond:
            if not conn._cond.wait_for(
                lambda: self._inbox or self._eof or self._reset or conn._ended, timeout
            ):
                raise TimeoutError(f"nothing on yamux stream {self.stream_id} in {timeout} s")
            if self._inbox:
                chunk = self._inbox.popleft()
                if len(chunk) > max_bytes:
                    self._inbox.appendleft(chunk[max_bytes:])
                    chunk = chunk[:max_bytes]
                conn._session.consumed(self.stream_id, len(chunk))
                conn._cond.notify_all()
                return chunk
            if self._eof:
                return b""
            raise ConnectionResetError(self._why_dead())

    def write(self, data: bytes, timeout: float | None = None) -> None:
        """Queue all of ``data``; blocks while the peer is far behind."""
        conn = self._conn
        with conn._cond:
            if not conn._cond.wait_for(
                lambda: (
                    self._reset or conn._ended or conn._session.pending(self.stream_id) < HIGH_WATER
                ),
                timeout,
            ):
                raise TimeoutError(f"yamux stream {self.stream_id} stayed full for {timeout} s")
            if self._reset or conn._ended:
                raise ConnectionResetError(self._why_dead())
            try:
                conn._session.send(self.stream_id, data)
            except (StreamClosedError, SessionClosedError) as exc:
                raise ConnectionResetError(str(exc)) from None
            conn._cond.notify_all()

    def close(self) -> None:
        """Half-close: the peer reads EOF after what was written."""
        conn = self._conn
        with conn._cond:
            conn._session.close_stream(self.stream_id)
            conn._forget_if_done(self.stream_id)
            conn._cond.notify_all()

    def reset(self) -> None:
        conn = self._conn
        with conn._cond:
            self._reset = True
            conn._session.reset_stream(self.stream_id)
            conn._streams.pop(self.stream_id, None)
            conn._cond.notify_all()

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
        self._cond = threading.Condition()
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
        with self._cond:
            if self._ended:
                raise SessionClosedError(f"yamux session ended: {self._end_reason}")
            stream = Stream(self, self._session.open_stream())
            self._streams[stream.stream_id] = stream
            self._cond.notify_all()
            return stream

    def accept(self, timeout: float | None = None) -> Stream:
        """The next stream the peer opens. SessionClosedError once the session is over."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._accepted or self._ended, timeout):
                raise TimeoutError(f"no yamux stream opened in {timeout} s")
            if self._accepted:
                return self._accepted.popleft()
            raise SessionClosedError(f"yamux session ended: {self._end_reason}")

    def ping(self, timeout: float = 5.0) -> float:
        """Round-trip time of one ping, in seconds."""
        with self._cond:
            if self._ended:
                raise SessionClosedError(f"yamux session ended: {self._end_reason}")
            started = time.monotonic()
            opaque = self._session.ping()
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: opaque in self._pings or self._ended, timeout):
                raise TimeoutError(f"no answer to a yamux ping in {timeout} s")
            if opaque not in self._pings:
                raise SessionClosedError(f"yamux session ended: {self._end_reason}")
            return self._pings.pop(opaque) - started

    def close(self) -> None:
        """Go away (normal), send what is queued, close the socket, stop both threads."""
        with self._cond:
            if not self._closing:
                self._closing = True
                self._session.go_away()
            self._cond.notify_all()
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

    # -- threads

    def _end(self, reason: str) -> None:
        with self._cond:
            if not self._ended:
                self._ended = True
                self._end_reason = reason
            self._cond.notify_all()

    def _read_loop(self) -> None:
        try:
            while True:
                data = self._sock.recv(RECV_SIZE)
                if not data:
                    self._end("the peer closed the connection")
                    return
                with self._cond:
                    for event in self._session.receive(data):
                        self._dispatch(event)
                    self._cond.notify_all()
                if self._ended:
                    return
        except OSError as exc:
            self._end(f"reading failed: {exc}")

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, StreamOpened):
            stream = Stream(self, event.stream_id)
            self._streams[event.stream_id] = stream
            self._accepted.append(stream)
            return
        if isinstance(event, SessionEnded):
            logger.debug("yamux session ended: %s", event.reason)
            self._ended = True
            self._end_reason = event.reason
            return
        if isinstance(event, PingAnswered):
            self._pings[event.opaque] = time.monotonic()
            return
        stream_id = getattr(event, "stream_id", None)
        target = self._streams.get(stream_id) if stream_id is not None else None
        if target is None:
            return
        if isinstance(event, DataReceived):
            target._inbox.append(event.data)
        elif isinstance(event, StreamEnded):
            target._eof = True
            self._forget_if_done(event.stream_id)
        elif isinstance(event, StreamReset):
            target._reset = True
            del self._streams[event.stream_id]

    def _forget_if_done(self, stream_id: int) -> None:
        if not self._session.knows(stream_id):
            self._streams.pop(stream_id, None)

    def _write_loop(self) -> None:
        while True:
            with self._cond:
                out = self._session.data_to_send()
                while not out and not self._closing and not self._ended:
                    self._cond.wait()
                    out = self._session.data_to_send()
                if not out:
                    return
            try:
                self._sock.sendall(out)
            except OSError as exc:
                self._end(f"writing failed: {exc}")
                return
