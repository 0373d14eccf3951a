"""The event loop shared by both TLS bridges, and their listening sockets.

One thread per bridge runs a ``selectors`` loop over the listening socket, a wake-up
socketpair and every relay's sockets (``bridge_relay.Relay``). Connect and
handshake deadlines are the loop's only timers; without them it sleeps in select().
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import ssl
import threading
import time
from typing import Any, Self, cast

from ..._constants import LOOPBACK_HOST, NETWORK_TCP, NETWORK_UNIX
from ..._errors import TransportError
from .bridge_relay import Relay, logger

LISTEN_BACKLOG = 128
# Connections accepted per wake-up before other sockets get their turn.
ACCEPT_BATCH = 64
# After accept() fails for lack of descriptors, stop accepting for this long.
ACCEPT_PAUSE = 0.1


# --- listening sockets -------------------------------------------------------------


def listen(network: str, address: str, *, backlog: int = LISTEN_BACKLOG) -> socket.socket:
    """A listening socket: ``("unix", path)`` or ``("tcp", "127.0.0.1:port")`` (port 0 = any)."""
    family, sockaddr = parse_sockaddr(network, address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family != socket.AF_UNIX:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def listen_tcp_in_range(low: int, high: int, host: str = LOOPBACK_HOST) -> socket.socket:
    """Listen on the first free port of ``low..high`` (``0, 0``: any free port)."""
    if low == 0:
        return listen(NETWORK_TCP, f"{host}:0")
    for port in range(low, high + 1):
        try:
            return listen(NETWORK_TCP, f"{host}:{port}")
        except OSError:
            continue
    raise TransportError(
        f"no free TCP port on {host} in {low}..{high}",
        hint="widen PLUGIN_MIN_PORT..PLUGIN_MAX_PORT or use the unix transport",
    )


def socket_address(sock: socket.socket) -> tuple[str, str]:
    """``(network, address)`` of a bound socket, as a handshake line spells them."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return NETWORK_UNIX, os.fsdecode(name)
    host, port = name[0], name[1]
    return NETWORK_TCP, f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_sockaddr(network: str, address: str) -> tuple[socket.AddressFamily, Any]:
    if network == NETWORK_UNIX:
        return socket.AF_UNIX, address
    if network == NETWORK_TCP:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        return family, (host, int(port))
    raise ValueError(f"unknown network {network!r}; use 'unix' or 'tcp'")


# --- the event loop ------------------------------------------------------------------


class BridgeLoop:
    """A listening socket and its relays, served by one event-loop thread."""

    def __init__(
        self,
        listener: socket.socket,
        ssl_context: ssl.SSLContext,
        *,
        name: str,
        handshake_timeout: float,
    ) -> None:
        listener.listen(LISTEN_BACKLOG)  # accepts a socket that is only bound, too
        listener.setblocking(False)
        self.network, self.address = socket_address(listener)
        self._listener = listener
        self._context = ssl_context
        self._name = name
        self._handshake_timeout = handshake_timeout
        self.selector: selectors.BaseSelector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self.selector.register(self._listener, selectors.EVENT_READ, self._on_accept)
        self.selector.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._relays: set[Relay] = set()
        self._pending: set[Relay] = set()  # connecting or handshaking; loop thread only
        self._accept_paused_until: float | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._torn_down = False

    # --- public ------------------------------------------------------------------

    def start(self) -> None:
        """Start the event-loop thread (idempotent)."""
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self._name} is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def close(self) -> None:
        """Stop the loop, close every socket, join the thread. Idempotent, thread-safe."""
        with self._lock:
            thread = self._thread
            if not self._closed:
                self._closed = True
                if thread is not None:
                    with contextlib.suppress(OSError):
                        self._wake_w.send(b"\0")
        if thread is None:
            self._teardown()
        elif thread is not threading.current_thread():
            thread.join()

    @property
    def active_connections(self) -> int:
        with self._lock:
            return len(self._relays)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no connection is open; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._relays, timeout)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- RelayOwner ------------------------------------------------------------------

    def open_backend(self) -> socket.socket:
        raise NotImplementedError

    def relay_failed(self, relay: Relay, phase: str, reason: str) -> None:
        raise NotImplementedError

    def relay_closed(self, relay: Relay) -> None:
        self._pending.discard(relay)
        with self._lock:
            self._relays.discard(relay)
            if not self._relays:
                self._idle.notify_all()

    # --- loop thread ---------------------------------------------------------------

    def _admit(self, sock: socket.socket, peer: Any) -> Relay | None:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            while not self._closed:
                for key, mask in self.selector.select(self._timeout()):
                    try:
                        key.data(mask)
                    except Exception:
                        logger.exception("TLS bridge %s: unexpected error", self._name)
                if self._pending or self._accept_paused_until is not None:
                    self._on_timers(time.monotonic())
        except Exception:
            logger.exception("TLS bridge %s: event loop failed", self._name)
        finally:
            self._teardown()

    def _timeout(self) -> float | None:
        deadlines = [r.deadline for r in self._pending if r.deadline is not None]
        if self._accept_paused_until is not None:
            deadlines.append(self._accept_paused_until)
        if not deadlines:
            return None
        return max(0.0, min(deadlines) - time.monotonic())

    def _on_timers(self, now: float) -> None:
        for relay in list(self._pending):
            if relay.closed or relay.deadline is None:
                self._pending.discard(relay)
            else:
                relay.expire(now)
        paused = self._accept_paused_until
        if paused is not None and now >= paused:
            self._accept_paused_until = None
            self.selector.register(self._listener, selectors.EVENT_READ, self._on_accept)

    def _on_wake(self, mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            while self._wake_r.recv(4096):
                pass

    def _on_accept(self, mask: int) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                sock, peer = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                logger.warning("TLS bridge %s: accept failed: %s", self._name, exc)
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self.selector.unregister(self._listener)
                    self._accept_paused_until = time.monotonic() + ACCEPT_PAUSE
                return
            try:
                sock.setblocking(False)
                no_delay(sock)
                relay = self._admit(sock, peer)
            except OSError as exc:
                logger.warning("TLS bridge %s: could not set up a connection: %s", self._name, exc)
                sock.close()
                continue
            if relay is None:
                continue
            with self._lock:
                self._relays.add(relay)
            self._pending.add(relay)
            relay.begin()

    def _teardown(self) -> None:
        with self._lock:
            if self._torn_down:
                return
            self._torn_down = True
            relays = list(self._relays)
        for relay in relays:
            relay.close()
        self.selector.close()
        self._listener.close()
        self._remove_socket_file()
        with self._lock:
            self._wake_r.close()
            self._wake_w.close()
            self._relays.clear()
            self._idle.notify_all()

    def _remove_socket_file(self) -> None:
        if self.network == NETWORK_UNIX and self.address and not self.address.startswith("\0"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)


def no_delay(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def peer_label(peer: Any) -> str:
    if isinstance(peer, tuple) and len(cast("tuple[object, ...]", peer)) >= 2:
        host, port = cast("tuple[object, ...]", peer)[:2]
        return f"TLS client from {host}:{port}"
    return "TLS client"
