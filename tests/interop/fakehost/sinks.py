"""Where the fake host's stdio reader writes: Go's ``SyncStdout``/``SyncStderr`` writers.

A Go host's stdio loop (``grpc_stdio.go``, ``grpcStdioClient.Run``) receives one
``StdioData`` and ``io.Copy``\\ s it into the writer before it receives the next: a
slow writer is backpressure all the way to the plugin. ``HandOff`` models a writer
that is an unbuffered Go channel: the reader blocks until the consumer takes the
chunk, and the next message is received from gRPC only after that.
"""

from __future__ import annotations

import threading
import time


class Discard:
    """Go's default ``SyncStdout``/``SyncStderr`` (``io.Discard``); counts what it drops."""

    def __init__(self) -> None:
        self.chunks = 0
        self.bytes = 0

    def __call__(self, channel: int, data: bytes) -> None:
        self.chunks += 1
        self.bytes += len(data)


class Collector:
    """A writer that never blocks; keeps everything per channel, waitable."""

    def __init__(self) -> None:
        self._data: dict[int, bytearray] = {}
        self._changed = threading.Condition()

    def __call__(self, channel: int, data: bytes) -> None:
        with self._changed:
            self._data.setdefault(channel, bytearray()).extend(data)
            self._changed.notify_all()

    def data(self, channel: int) -> bytes:
        with self._changed:
            return bytes(self._data.get(channel, b""))

    def wait_for(self, channel: int, needle: bytes, timeout: float) -> bytes:
        with self._changed:
            found = self._changed.wait_for(lambda: needle in self._data.get(channel, b""), timeout)
            data = bytes(self._data.get(channel, b""))
        if not found:
            raise AssertionError(f"{needle!r} never arrived on channel {channel}: {data[-500:]!r}")
        return data


class HandOff:
    """An unbuffered hand-off: ``__call__`` (the stdio reader) blocks until ``get`` takes it.

    ``offered`` counts chunks the reader has offered (taken or waiting), so a test can
    see that the host stopped reading from gRPC while nobody consumed.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: tuple[int, bytes] | None = None
        self._closed = False
        self.offered = 0
        self.taken = 0

    def __call__(self, channel: int, data: bytes) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._item is None or self._closed)
            if self._closed:
                return
            self._item = (channel, data)
            self.offered += 1
            self._cond.notify_all()
            # Unbuffered: the writer returns only once the consumer has the chunk.
            self._cond.wait_for(lambda: self._item is None or self._closed)

    def waiting(self, timeout: float) -> bool:
        """Wait until a chunk is on offer (the reader is blocked on us)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._item is not None, timeout)

    def get(self, timeout: float) -> tuple[int, bytes] | None:
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is not None or self._closed, timeout):
                return None
            item, self._item = self._item, None
            if item is not None:
                self.taken += 1
            self._cond.notify_all()
            return item

    def read_until(self, needle: bytes, timeout: float) -> dict[int, bytes]:
        """Consume chunks until ``needle`` has arrived on some channel; return all per channel."""
        deadline = time.monotonic() + timeout
        got: dict[int, bytearray] = {}
        while True:
            remaining = deadline - time.monotonic()
            item = self.get(max(0.0, remaining)) if remaining > 0 else None
            if item is None:
                tails = {ch: bytes(data[-300:]) for ch, data in got.items()}
                raise AssertionError(f"{needle!r} did not arrive within {timeout} s: {tails}")
            channel, data = item
            got.setdefault(channel, bytearray()).extend(data)
            if needle in got[channel]:
                return {ch: bytes(data) for ch, data in got.items()}

    def close(self) -> None:
        """Release a blocked reader for good (the host is done)."""
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()
