"""TLS bridge for peers whose certificate is P-521 (docs/protocol.md, "AutoMTLS", docs/tls.md).

PyPI grpcio's BoringSSL cannot do TLS 1.3 with a P-521 key on either side, and every
Go go-plugin peer uses P-521 AutoMTLS certificates. A bridge terminates TLS with
Python's ``ssl`` (OpenSSL) and relays plaintext to or from grpcio over a private
unix socket, with full mutual verification (see ``certs.server_ssl_context`` and
``certs.client_ssl_context``: each side trusts exactly the other's certificate).

- ``BridgeServer`` (plugin side) accepts TLS clients on the plugin's public
  listener and relays each connection to the grpcio server's private unix socket.
- ``BridgeClient`` (host side) listens on a private unix socket for the host's
  plaintext grpcio channel and relays each connection over TLS to the plugin.

Each bridge is one event-loop thread (``selectors``, non-blocking sockets,
``ssl.MemoryBIO``); ``bridge_relay.Relay`` is the per-connection state machine.
A failed handshake closes that connection only and is logged at WARNING on the
``pyvider_rpcplugin_sync.tls`` logger; the bridge keeps serving.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import socket
import ssl
import struct
import time
from typing import Any

from ..._constants import BRIDGE_HANDSHAKE_TIMEOUT, NETWORK_UNIX, TLS_SERVER_NAME
from ..listener import checked_socket_path
from .bridge_loop import (
    BridgeLoop,
    listen,
    listen_tcp_in_range,
    no_delay,
    parse_sockaddr,
    peer_label,
    socket_address,
)
from .bridge_relay import Relay, logger

# Connect + TLS handshake must finish within this long, or the connection is dropped.
HANDSHAKE_TIMEOUT = BRIDGE_HANDSHAKE_TIMEOUT
BRIDGE_SOCKET_PREFIX = "tls-bridge-"

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "BridgeClient",
    "BridgeServer",
    "listen",
    "listen_tcp_in_range",
    "socket_address",
]


# --- plugin side ---------------------------------------------------------------------


class BridgeServer(BridgeLoop):
    """Plugin side: TLS on ``listener`` (unix or TCP), plaintext to grpcio at ``backend_path``.

    ``ssl_context`` comes from ``certs.server_ssl_context(identity, host_cert)``: it must
    require a client certificate. The bridge owns ``listener`` (a bound socket; see
    ``listen``) and closes it, removing its socket file if it is a unix socket.
    """

    def __init__(
        self,
        listener: socket.socket,
        backend_path: str,
        ssl_context: ssl.SSLContext,
        *,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        name: str = "tls-bridge-server",
    ) -> None:
        if ssl_context.verify_mode != ssl.CERT_REQUIRED:
            raise ValueError("BridgeServer needs an ssl context that requires client certificates")
        super().__init__(listener, ssl_context, name=name, handshake_timeout=handshake_timeout)
        self.backend_path = backend_path

    def _admit(self, sock: socket.socket, peer: Any) -> Relay:
        return Relay(
            self,
            sock,
            None,
            context=self._context,
            server_hostname=None,
            label=peer_label(peer),
            deadline=time.monotonic() + self._handshake_timeout,
        )

    def open_backend(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            # A unix connect completes at once or fails (EAGAIN: the backlog is full).
            sock.connect(self.backend_path)
        except BaseException:
            sock.close()
            raise
        return sock

    def relay_failed(self, relay: Relay, phase: str, reason: str) -> None:
        if phase == "tls":
            logger.warning("refused a %s: %s", relay.label, reason)
        elif phase == "backend":
            logger.warning(
                "TLS bridge: could not reach the gRPC server at %s: %s", self.backend_path, reason
            )
        else:
            logger.warning("TLS bridge: %s: %s", relay.label, reason)


# --- host side -----------------------------------------------------------------------


class BridgeClient(BridgeLoop):
    """Host side: plaintext on a private unix socket in ``socket_dir``, TLS to the plugin.

    ``ssl_context`` comes from ``certs.client_ssl_context(identity, plugin_cert)``. Point
    the host's grpcio channel (insecure credentials) at ``target``. ``socket_dir``
    must be private (0700): whoever reaches the socket speaks to the plugin as the host.
    The last failure to connect to or handshake with the plugin is in ``last_error``,
    and with its phase (``"connect"`` or ``"tls"``) in ``last_failure``.
    """

    def __init__(
        self,
        plugin_network: str,
        plugin_address: str,
        ssl_context: ssl.SSLContext,
        socket_dir: str,
        *,
        server_hostname: str = TLS_SERVER_NAME,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
        name: str = "tls-bridge-client",
    ) -> None:
        if ssl_context.verify_mode != ssl.CERT_REQUIRED:
            raise ValueError("BridgeClient needs an ssl context that verifies the plugin")
        self._family, self._sockaddr = parse_sockaddr(plugin_network, plugin_address)
        self.plugin = f"{plugin_network}:{plugin_address}"
        self._server_hostname = server_hostname
        self.path = _bridge_socket_path(socket_dir)
        listener = listen(NETWORK_UNIX, self.path)
        try:
            os.chmod(self.path, 0o600)
            super().__init__(listener, ssl_context, name=name, handshake_timeout=handshake_timeout)
        except BaseException:
            listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            raise
        self.last_failure: tuple[str, str] | None = None

    @property
    def target(self) -> str:
        """The grpcio target of the private socket: ``unix:<path>``."""
        return f"unix:{self.path}"

    def _admit(self, sock: socket.socket, peer: Any) -> Relay | None:
        uid = _peer_uid(sock)
        if uid is not None and uid != os.getuid():
            logger.warning("TLS bridge: refused a local connection from uid %d", uid)
            sock.close()
            return None
        tls_sock = socket.socket(self._family, socket.SOCK_STREAM)
        tls_sock.setblocking(False)
        code = tls_sock.connect_ex(self._sockaddr)
        if code not in (0, errno.EINPROGRESS):
            # Recorded before the host's connection closes: its caller may look at once.
            self._record(
                "connect", f"could not connect to the plugin at {self.plugin}: {os.strerror(code)}"
            )
            tls_sock.close()
            sock.close()
            return None
        no_delay(tls_sock)
        return Relay(
            self,
            tls_sock,
            sock,
            context=self._context,
            server_hostname=self._server_hostname,
            label=f"plugin at {self.plugin}",
            deadline=time.monotonic() + self._handshake_timeout,
            tls_connecting=code == errno.EINPROGRESS,
        )

    def relay_failed(self, relay: Relay, phase: str, reason: str) -> None:
        if phase == "connect":
            self._record("connect", f"could not connect to the plugin at {self.plugin}: {reason}")
        elif phase == "tls":
            self._record("tls", f"TLS handshake with the plugin at {self.plugin} failed: {reason}")
        else:
            logger.warning("TLS bridge: %s: %s", relay.label, reason)

    @property
    def last_error(self) -> str | None:
        failure = self.last_failure
        return failure[1] if failure is not None else None

    def _record(self, phase: str, message: str) -> None:
        logger.warning("%s", message)
        with self._lock:
            self.last_failure = (phase, message)


def _bridge_socket_path(directory: str) -> str:
    path = os.path.join(directory, f"{BRIDGE_SOCKET_PREFIX}{secrets.token_hex(4)}")
    return checked_socket_path(path, "use a shorter socket directory (e.g. under /tmp)")


def _peer_uid(sock: socket.socket) -> int | None:
    """The uid of a unix socket's peer (Linux), or None where unknown."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None or sock.family != socket.AF_UNIX:
        return None
    try:
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, 12))
    except OSError:
        return None
    return int(uid)
