"""What a host holds in this process: fds by kind and threads, compared around one case.

Child processes are checked by ``proc_scan.no_child_left_behind`` (autouse in this
directory). grpc creates some process-wide state (pollers, thread pools) on first
use: measure only after one real session has run.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator

# Threads that are still finishing get this long to end (joined, not slept on).
THREAD_SETTLE = 5.0
# grpc closes the socket of a cancelled connect attempt on its own threads, a moment
# after the call gave up: nothing to wait on, so it is polled for up to this long.
FD_SETTLE = 3.0
_FD_POLL = 0.05
# grpc's pollers (anonymous eventfd/epoll inodes) come and go with its channels on its
# own schedule; a leak per session would show up as one more each case, far above this.
POLLER_SLACK = 4


def open_fds() -> Counter[str]:
    """Kinds of open fds ("socket", "pipe", "anon_inode:[eventpoll]", paths) and counts."""
    kinds: Counter[str] = Counter()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the fd listdir itself used, closed meanwhile
        kinds[re.sub(r":\[\d+\]$", "", target)] += 1
    return kinds


def settle_threads(before: set[threading.Thread], timeout: float = THREAD_SETTLE) -> None:
    """Join the threads started since ``before`` (up to ``timeout`` in all): no sleeping."""
    current = threading.current_thread()
    for thread in threading.enumerate():
        if thread not in before and thread is not current:
            thread.join(timeout)


@contextlib.contextmanager
def leaves_nothing() -> Iterator[None]:
    """Fail if the block leaves a thread or an fd (beyond grpc's pollers) behind."""
    threads, fds = set(threading.enumerate()), open_fds()
    yield
    settle_threads(threads)
    left = [t.name for t in threading.enumerate() if t not in threads]
    assert left == [], f"threads left behind: {left}"
    deadline = time.monotonic() + FD_SETTLE
    while (grown := open_fds() - fds) and _beyond_pollers(grown) and time.monotonic() < deadline:
        time.sleep(_FD_POLL)
    pollers = sum(n for kind, n in grown.items() if kind.startswith("anon_inode:"))
    others = Counter({kind: n for kind, n in grown.items() if not kind.startswith("anon_inode:")})
    assert others == Counter(), f"fds left behind: {dict(others)}"
    assert pollers <= POLLER_SLACK, f"{pollers} more grpc pollers"


def _beyond_pollers(grown: Counter[str]) -> bool:
    return any(not kind.startswith("anon_inode:") for kind in grown)
