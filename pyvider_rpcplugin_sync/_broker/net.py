"""Where brokered servers listen and how brokered channels dial.

The wire is in docs/protocol.md, "AutoMTLS" and "GRPCBroker".

A broker session is plaintext, or AutoMTLS with this side's identity and the
peer's pinned certificate (the host's from ``PLUGIN_CLIENT_CERT``, the plugin's
from handshake field 6). Brokered servers always require the peer's certificate
and brokered channels present ours and trust only the peer's, in both directions.
grpcio does the TLS when it can use the peer's key; a P-521 peer (Go go-plugin)
goes through the ``ssl`` bridge, as the main connection does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from .._constants import (
    DEFAULT_CALL_TIMEOUT,
    NETWORK_TCP,
    NETWORK_UNIX,
)
from .._errors import BrokerClosed, BrokerError
from .._transport.dial import Connection, SessionSecurity, dial
from .._transport.gate import CallGate
from .._transport.guard import GuardedChannel
from .._transport.listener import Listener, bind, bind_bridged

if TYPE_CHECKING:
    from .._protos.goplugin_pb2 import ConnInfo


@dataclass(frozen=True)
class BrokerNetwork:
    """How one side of a session listens for and dials brokered connections.

    ``environ`` carries what ``listener.bind`` reads: the session's socket
    directory (``PLUGIN_UNIX_SOCKET_DIR``), the port range and socket group.
    """

    transport: str
    environ: Mapping[str, str]
    security: SessionSecurity | None = None

    def bind(self, server: grpc.Server) -> Listener:
        """A fresh listener for ``server`` (not started), with the session's TLS."""
        security = self.security
        if security is None:
            return bind(server, self.transport, self.environ)
        from .._transport.tls.certs import plugin_server_credentials, server_ssl_context

        if security.bridged:
            context = server_ssl_context(security.identity, security.peer_cert)
            return bind_bridged(server, self.transport, self.environ, context)
        credentials = plugin_server_credentials(security.peer_cert, security.identity)
        return bind(server, self.transport, self.environ, credentials)

    def dial(
        self,
        info: ConnInfo,
        bridge_dir: Callable[[], str],
        on_close: Callable[[BrokeredChannel], None],
        call_timeout: float | None = DEFAULT_CALL_TIMEOUT,
    ) -> BrokeredChannel:
        """A channel to the peer's brokered server described by ``info``; lazy, like Go's."""
        if info.network not in (NETWORK_UNIX, NETWORK_TCP) or not info.address:
            raise BrokerError(
                f"broker id {info.service_id}: unknown address type "
                f"{info.network!r} (address {info.address!r})",
                hint="the peer must announce a 'unix' or 'tcp' address",
            )
        connection = dial(
            info.network,
            info.address,
            security=self.security,
            bridge_dir=bridge_dir,
            bridge_name="tls-bridge-broker",
        )
        return BrokeredChannel(connection, info.service_id, on_close, call_timeout)


class BrokeredChannel(GuardedChannel):
    """A ``grpc.Channel`` to a brokered server; ``close()`` also stops its TLS bridge.

    Stubs keep its multicallables: after ``close()`` (the channel's or the
    session's) their calls raise ``BrokerClosed`` rather than grpc's bare
    ``ValueError``. The broker closes every channel it handed out when the
    session ends.
    """

    def __init__(
        self,
        connection: Connection,
        service_id: int,
        on_close: Callable[[BrokeredChannel], None] | None = None,
        call_timeout: float | None = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        super().__init__(
            connection.channel,
            self._why,
            call_timeout=call_timeout,
            gate=CallGate(self._closed_error),
        )
        self._connection = connection
        self.service_id = service_id
        self._on_close = on_close
        self._lock = threading.Lock()
        self._closed = False

    def _why(self, exc: BaseException) -> BrokerClosed | None:
        if not self._closed:
            return None  # the call's own failure, or the peer's
        return self._closed_error()

    def _closed_error(self) -> BrokerClosed:
        return BrokerClosed(
            f"broker id {self.service_id}: the brokered channel is closed",
            hint="the session ended or the channel was closed; dial a new one in a live session",
        )

    def close(self) -> None:
        """Close the channel and its bridge (idempotent, thread-safe)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.gate.close()  # new calls raise BrokerClosed at once
        self._connection.close()
        if self._on_close is not None:
            self._on_close(self)

    def __enter__(self) -> BrokeredChannel:
        return self

    def __repr__(self) -> str:
        return f"<BrokeredChannel broker id {self.service_id}>"
