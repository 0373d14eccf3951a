"""Reading a plugin's output pipes until end of file, or until the host stops reading.

A pipe reaches end of file only when every process holding its write end has
closed it; a grandchild that left the plugin's process group (``setsid``) can
hold it open long after the plugin exited, where no signal to the group reaches
it. The readers therefore wait on the pipe and on a wake-up pipe of their own:
``stop()`` ends every read at once, and the pipes can then be closed safely (no
thread is inside a ``read`` of an fd that closes under it).
"""

from __future__ import annotations

import os
import select
from collections.abc import Iterable, Iterator

_READ_CHUNK = 64 * 1024


class PipeReaders:
    """The wake-up shared by one child's output readers."""

    def __init__(self) -> None:
        self._wake_read, self._wake_write = os.pipe()
        self._stopped = False

    def chunks(self, fd: int) -> Iterator[bytes]:
        """What arrives on ``fd``, until end of file, a read error, or ``stop()``."""
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        while True:
            events = poller.poll()
            if any(ready == self._wake_read for ready, _ in events):
                return
            try:
                chunk = os.read(fd, _READ_CHUNK)
            except OSError:
                return
            if not chunk:
                return
            yield chunk

    def stop(self) -> None:
        """Wake every reader for good (closing the write end makes the wake-up readable)."""
        if not self._stopped:
            self._stopped = True
            os.close(self._wake_write)

    def close(self) -> None:
        """Release the wake-up pipe, once no reader runs. Idempotent."""
        self.stop()
        if self._wake_read >= 0:
            os.close(self._wake_read)
            self._wake_read = -1


def split_lines(chunks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """The lines in ``chunks`` as ``readline(limit)`` gives them: each at most ``limit``
    bytes with its newline (a longer line comes in parts), the last one maybe without."""
    pending = bytearray()
    for chunk in chunks:
        pending += chunk
        while True:
            end = pending.find(b"\n", 0, limit)
            if end < 0:
                if len(pending) < limit:
                    break
                end = limit - 1
            yield bytes(pending[: end + 1])
            del pending[: end + 1]
    if pending:
        yield bytes(pending)
