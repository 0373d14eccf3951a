"""plugin.GRPCStdio: forwards what the plugin writes after the handshake.

The wire is in docs/protocol.md, "GRPCStdio".

After the handshake, file descriptor 1 is pointed at a pipe that a daemon
thread drains into a bounded queue, so a chatty plugin (C code and child
processes included) never blocks and never corrupts the handshake stream.
``sys.stderr`` becomes a tee: the text still reaches the real stderr (crash
tracebacks must reach the host's logs) and a copy goes to the stream.
"""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import os
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

import grpc
from google.protobuf import empty_pb2

from .._constants import STDIO_CHUNK_SIZE, STDIO_POLL_INTERVAL, STDIO_QUEUE_CHUNKS, STDIO_SERVICE
from .._protos.goplugin_pb2 import StdioData

logger = logging.getLogger(__name__)

STDOUT = StdioData.STDOUT
STDERR = StdioData.STDERR


class StdioQueue:
    """Bounded queue of (channel, bytes) chunks; the oldest are dropped when full."""

    def __init__(self, max_chunks: int = STDIO_QUEUE_CHUNKS) -> None:
        self._chunks: collections.deque[tuple[int, bytes]] = collections.deque()
        self._max_chunks = max_chunks
        self._ready = threading.Condition()
        self._closed = False
        self.dropped = 0

    def put(self, channel: int, data: bytes) -> None:
        if not data:
            return
        with self._ready:
            if len(self._chunks) >= self._max_chunks:
                self._chunks.popleft()
                self.dropped += 1
            self._chunks.append((channel, data))
            self._ready.notify_all()

    def take(self, timeout: float) -> list[tuple[int, bytes]]:
        """Everything queued, waiting up to ``timeout`` for the first chunk."""
        with self._ready:
            if not self._chunks and not self._closed:
                self._ready.wait(timeout)
            chunks = list(self._chunks)
            self._chunks.clear()
            return chunks

    def wake(self) -> None:
        with self._ready:
            self._ready.notify_all()

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed


class _TeeWriter(io.TextIOBase):
    """A text stream that writes to the real stderr and copies into the queue."""

    def __init__(self, real: TextIO, queue: StdioQueue) -> None:
        self._real = real
        self._queue = queue

    def write(self, text: str) -> int:
        try:
            self._real.write(text)
            self._real.flush()
        except (OSError, ValueError):
            pass  # the real stderr is gone (host died); the copy still matters
        self._queue.put(STDERR, text.encode("utf-8", "backslashreplace"))
        return len(text)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._real.flush()

    def writable(self) -> bool:
        return True


class StdioCapture:
    """Redirects fd 1 and ``sys.stdout``/``sys.stderr`` into a queue; undone by ``restore``."""

    def __init__(self, queue: StdioQueue) -> None:
        self.queue = queue
        self._saved_fd: int | None = None
        self._saved_streams: tuple[TextIO, TextIO] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> None:
        read_fd, write_fd = os.pipe()
        sys.stdout.flush()
        self._saved_fd = os.dup(1)
        os.dup2(write_fd, 1)
        os.close(write_fd)
        self._saved_streams = (sys.stdout, sys.stderr)
        sys.stdout = io.TextIOWrapper(
            os.fdopen(1, "wb", buffering=0, closefd=False),
            encoding="utf-8",
            errors="backslashreplace",
            line_buffering=True,
        )
        sys.stderr = _TeeWriter(self._saved_streams[1], self.queue)
        self._reader = threading.Thread(
            target=self._drain, args=(read_fd,), name="plugin-stdout-drain", daemon=True
        )
        self._reader.start()

    def _drain(self, read_fd: int) -> None:
        try:
            while chunk := os.read(read_fd, STDIO_CHUNK_SIZE):
                self.queue.put(STDOUT, chunk)
        finally:
            os.close(read_fd)

    def restore(self) -> None:
        if self._saved_streams is None or self._saved_fd is None:
            return
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()
        sys.stdout, sys.stderr = self._saved_streams
        # Pointing fd 1 back closes the pipe's last writer (unless a child
        # process inherited it), so the drain thread sees EOF and ends.
        os.dup2(self._saved_fd, 1)
        os.close(self._saved_fd)
        self._saved_fd = None
        self._saved_streams = None
        if self._reader is not None:
            self._reader.join(timeout=1.0)


def stdio_handler(queue: StdioQueue) -> grpc.GenericRpcHandler:
    """``StreamStdio`` streams queued output until the host cancels or the server stops."""

    def stream_stdio(
        request: empty_pb2.Empty, context: grpc.ServicerContext
    ) -> Iterator[StdioData]:
        context.add_callback(queue.wake)
        while context.is_active():
            chunks = queue.take(STDIO_POLL_INTERVAL)
            for channel, data in chunks:
                yield StdioData(channel=channel, data=data)  # type: ignore[arg-type]
            # A stopping server closes the queue; what was written before still goes out.
            if queue.closed and not chunks:
                return

    return grpc.method_handlers_generic_handler(
        STDIO_SERVICE,
        {
            "StreamStdio": grpc.unary_stream_rpc_method_handler(
                stream_stdio,
                request_deserializer=empty_pb2.Empty.FromString,
                response_serializer=StdioData.SerializeToString,
            )
        },
    )
