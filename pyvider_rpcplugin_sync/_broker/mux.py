"""The multiplexed broker (go-plugin >= 1.6, ``PLUGIN_MULTIPLEX_GRPC``): every gRPC
connection of a session is a yamux stream over one socket (the wire: docs/multiplexing.md).

A ``MuxSession`` owns the yamux connection and decides where each stream goes. A knock
for a brokered id (``knocked``) queues that id: the next stream the peer opens is
relayed to that id's server. A stream nobody knocked for goes to the main server (the
plugin side) or is refused (the host side, which serves no main server). Dialing an id
(``dial_relay``) gives grpcio a private unix socket: each connection grpcio makes there
knocks first, then opens a stream and is relayed over it, so every redial knocks again.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable

from .._constants import SOCKET_DIR_PREFIX
from .._transport.listener import socket_path
from .._transport.yamux.driver import Stream, YamuxConnection
from .._transport.yamux.relay import Relay
from .._transport.yamux.session import SessionClosedError

logger = logging.getLogger("pyvider_rpcplugin_sync.broker")

CONNECT_TIMEOUT = 5.0


class MuxSession:
    """Routing of one multiplexed session's streams; thread-safe. ``main_target``: the
    socket of the main gRPC server (plugin side), or None (host side). ``directory``: the
    session's private socket directory, where its dial sockets go (whoever made it removes
    it, even after this process was killed); None: a private directory of its own."""

    def __init__(self, main_target: str | None, directory: str | None = None) -> None:
        self._main_target = main_target
        self._lock = threading.Lock()
        self._routes: dict[int, str] = {}
        self._knocks: collections.deque[int] = collections.deque()
        self._relays: set[Relay] = set()
        self._dialers: set[DialRelay] = set()
        self._conn: YamuxConnection | None = None
        self._acceptor: threading.Thread | None = None
        self._owns_dir = directory is None
        self._dir = directory or tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX)  # 0700
        self._closed = False

    @property
    def connection(self) -> YamuxConnection | None:
        return self._conn

    @property
    def private_dir(self) -> str:
        """Where this session's own sockets go (removed on close)."""
        return self._dir

    def start(self, conn: YamuxConnection) -> None:
        """Serve the streams of ``conn`` (the session's one connection) from now on."""
        with self._lock:
            if self._closed:
                conn.close()
                return
            self._conn = conn
        self._acceptor = threading.Thread(target=self._accept_loop, name="mux-accept", daemon=True)
        self._acceptor.start()

    def route(self, service_id: int, target: str) -> None:
        """Brokered server ``service_id`` listens on ``target``; it now takes knocks."""
        with self._lock:
            self._routes[service_id] = target

    def unroute(self, service_id: int) -> None:
        with self._lock:
            self._routes.pop(service_id, None)

    def knocked(self, service_id: int) -> str:
        """The peer knocked for ``service_id``: "" and the next stream goes there, or the
        error text for the acknowledgement."""
        with self._lock:
            if service_id not in self._routes:
                return f"no listener for id {service_id}"
            self._knocks.append(service_id)
            return ""

    def dial_relay(self, service_id: int | None, knock: Callable[[], None]) -> DialRelay:
        """A private socket for grpcio to dial; each connection runs ``knock()`` (raises
        when refused) then rides a new stream. ``service_id`` None: the main connection
        (no knock)."""
        with self._lock:
            if self._closed:
                raise SessionClosedError("the multiplexed session is closed")
            dialer = DialRelay(self, socket_path(self._dir), service_id, knock)
            self._dialers.add(dialer)
            return dialer

    def close(self) -> None:
        """Close the yamux connection, every relay and dial socket, and the directory."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            conn, relays, dialers = self._conn, list(self._relays), list(self._dialers)
            self._relays.clear()
            self._dialers.clear()
        if conn is not None:
            conn.close()
        for dialer in dialers:
            dialer.close()
        for relay in relays:
            relay.close()
        if self._acceptor is not None:
            self._acceptor.join(CONNECT_TIMEOUT)
        if self._owns_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    # -- internals

    def _open_stream(self) -> Stream:
        conn = self._conn
        if conn is None:
            raise SessionClosedError("the multiplexed connection is not established yet")
        return conn.open()

    def _add_relay(self, stream: Stream, sock: socket.socket, name: str) -> None:
        relay = Relay(stream, sock, name, self._forget_relay)
        with self._lock:
            if not self._closed:
                self._relays.add(relay)
                return
        relay.close()

    def _forget_relay(self, relay: Relay) -> None:
        with self._lock:
            self._relays.discard(relay)

    def _forget_dialer(self, dialer: DialRelay) -> None:
        with self._lock:
            self._dialers.discard(dialer)

    def _accept_loop(self) -> None:
        conn = self._conn
        assert conn is not None
        while True:
            try:
                stream = conn.accept()
            except SessionClosedError:
                return
            with self._lock:
                service_id = self._knocks.popleft() if self._knocks else None
                target = self._main_target if service_id is None else self._routes.get(service_id)
            if target is None:
                logger.debug("mux: refused stream %d (no knock, no main server)", stream.stream_id)
                stream.reset()
                continue
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(CONNECT_TIMEOUT)
                sock.connect(target)
                sock.settimeout(None)
            except OSError as exc:
                logger.debug("mux: stream %d: %s unreachable: %s", stream.stream_id, target, exc)
                sock.close()
                stream.reset()
                continue
            self._add_relay(stream, sock, f"mux-{service_id or 'main'}-{stream.stream_id}")


class DialRelay:
    """A private unix socket grpcio dials for one brokered (or the main) channel."""

    def __init__(
        self,
        session: MuxSession,
        path: str,
        service_id: int | None,
        knock: Callable[[], None],
    ) -> None:
        self.path = path
        self._session = session
        self._service_id = service_id
        self._knock = knock
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(16)
        self._closed = False
        self._thread = threading.Thread(
            target=self._loop, name=f"mux-dial-{service_id or 'main'}", daemon=True
        )
        self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                local, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                self._knock()
                stream = self._session._open_stream()
            except Exception as exc:
                # grpcio sees a failed connection and redials with backoff.
                logger.debug("mux: dialing id %s failed: %s", self._service_id, exc)
                local.close()
                continue
            self._session._add_relay(stream, local, f"mux-dial-{stream.stream_id}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._thread.join(CONNECT_TIMEOUT)
        self._session._forget_dialer(self)
