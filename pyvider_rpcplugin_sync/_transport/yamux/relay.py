"""Relaying one yamux stream to a local socket: grpcio can serve and dial only sockets, so
each stream of a multiplexed session is pumped to (or from) a private unix socket, one
thread per direction. EOF travels as a half-close both ways; an error on either side
resets the stream and closes the socket."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable

from .driver import RECV_SIZE, Stream


class Relay:
    """Pumps ``stream`` <-> ``sock`` until both directions end; owns both."""

    def __init__(
        self,
        stream: Stream,
        sock: socket.socket,
        name: str,
        on_done: Callable[[Relay], None] | None = None,
    ) -> None:
        self._stream = stream
        self._on_done = on_done
        stream.deliver_to(sock)
        self._sock = sock
        self._lock = threading.Lock()
        self._open_directions = 2
        self._threads = [
            threading.Thread(target=self._up, name=f"{name}-up", daemon=True),
            threading.Thread(target=self._down, name=f"{name}-down", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _up(self) -> None:
        """Local socket -> stream."""
        try:
            while data := self._sock.recv(RECV_SIZE):
                self._stream.write(data)
            self._stream.close()
        except OSError:
            self._abort()
        self._direction_done()

    def _down(self) -> None:
        """Stream -> local socket."""
        try:
            while data := self._stream.read():
                self._sock.sendall(data)
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_WR)
        except OSError:  # ConnectionResetError included: the stream was reset
            self._abort()
        self._direction_done()

    def _abort(self) -> None:
        self._stream.reset()
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def _direction_done(self) -> None:
        with self._lock:
            self._open_directions -= 1
            last = self._open_directions == 0
        if last:
            self._sock.close()
            if self._on_done is not None:
                self._on_done(self)

    def close(self, timeout: float = 5.0) -> None:
        """Cut both directions now and wait for the threads."""
        self._abort()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
