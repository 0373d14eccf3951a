"""The plugin's side of a multiplexed session: one public socket the host dials exactly
once, a yamux server session on that connection, and the sockets where the main gRPC
server and every brokered server listen for the relayed streams: beside the public one
in the session's socket directory (over TCP, in a private 0700 directory of their own)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Mapping

from .._constants import (
    ENV_UNIX_SOCKET_DIR,
    ENV_UNIX_SOCKET_GROUP,
    LOOPBACK_HOST,
    NETWORK_TCP,
    NETWORK_UNIX,
    SOCKET_DIR_PREFIX,
)
from .._protocol.handshake import port_range
from .._transport.listener import _socket_directory, share_with_group, socket_path
from .._transport.tls.bridge_loop import listen, listen_tcp_in_range
from .._transport.yamux.driver import YamuxConnection
from .mux import CONNECT_TIMEOUT, MuxSession

logger = logging.getLogger("pyvider_rpcplugin_sync.broker")


class MuxServing:
    """Binds the public socket now; ``start`` serves the host's one connection."""

    def __init__(self, transport: str, environ: Mapping[str, str]) -> None:
        self._owned_dir: str | None = None
        self.backend_dir = ""
        self.network = transport
        try:
            if transport == NETWORK_TCP:
                self._public = listen_tcp_in_range(*port_range(environ), host=LOOPBACK_HOST)
                host, port = self._public.getsockname()[:2]
                self.network, self.address = NETWORK_TCP, f"{host}:{port}"
                self.backend_dir = tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX)
            else:
                directory, self._owned_dir = _socket_directory(environ)
                self.address = socket_path(directory)
                self._public = listen(NETWORK_UNIX, self.address)
                self.network = NETWORK_UNIX
                group = environ.get(ENV_UNIX_SOCKET_GROUP)
                if group:
                    share_with_group(self.address, group)
                # The servers' sockets go beside the public one: that directory is the
                # session's, private (or the host's), and removed by whoever made it.
                self.backend_dir = directory
        except BaseException:
            self._remove_dirs()
            raise
        self.session: MuxSession | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    def backend_environ(self, environ: Mapping[str, str]) -> dict[str, str]:
        """``environ`` for binding the private servers: the private dir, no group."""
        private = {k: v for k, v in environ.items() if k != ENV_UNIX_SOCKET_GROUP}
        private[ENV_UNIX_SOCKET_DIR] = self.backend_dir
        return private

    def start(self, main_target: str) -> MuxSession:
        """Route streams nobody knocked for to ``main_target``; accept in the background."""
        self.session = MuxSession(main_target, self.backend_dir)
        self._thread = threading.Thread(target=self._accept, name="mux-listen", daemon=True)
        self._thread.start()
        return self.session

    def _accept(self) -> None:
        try:
            conn, _ = self._public.accept()
        except OSError:
            return  # closed before the host dialed
        # go-plugin's muxer takes the first connection only.
        self._close_public()
        if self.network == NETWORK_TCP:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self.session is not None
        self.session.start(YamuxConnection(conn, client=False, name="mux-plugin"))

    def _close_public(self) -> None:
        with contextlib.suppress(OSError):
            self._public.shutdown(socket.SHUT_RDWR)
        self._public.close()
        if self.network == NETWORK_UNIX:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)

    def _remove_dirs(self) -> None:
        if self.network == NETWORK_TCP and self.backend_dir:
            shutil.rmtree(self.backend_dir, ignore_errors=True)
        if self._owned_dir is not None:
            shutil.rmtree(self._owned_dir, ignore_errors=True)

    def close(self) -> None:
        """Stop accepting, close the session and its relays, remove both directories."""
        if self._closed:
            return
        self._closed = True
        self._close_public()
        if self._thread is not None:
            self._thread.join(CONNECT_TIMEOUT)
        if self.session is not None:
            self.session.close()
        self._remove_dirs()


def multiplex_requested(value: str | None) -> bool:
    """``PLUGIN_MULTIPLEX_GRPC`` as go-plugin's plugin reads it (strconv.ParseBool)."""
    return (value or "").strip() in ("1", "t", "T", "TRUE", "true", "True")
