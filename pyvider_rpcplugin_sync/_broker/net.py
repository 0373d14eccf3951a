"""Where brokered servers listen and how brokered channels dial (protocol.md §3.5, §4.3).

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
from typing import TYPE_CHECKING, Any

import grpc

from .._constants import (
    NETWORK_TCP,
    NETWORK_UNIX,
    TLS_SERVER_NAME,
    UNLIMITED_MESSAGE_OPTIONS,
)
from .._errors import BrokerClosed, BrokerError
from .._transport.guard import guarded_stream, guarded_unary
from .._transport.listener import Listener, bind, bind_bridged

if TYPE_CHECKING:
    from cryptography import x509

    from .._protos.goplugin_pb2 import ConnInfo
    from .._transport.tls.bridge import BridgeClient
    from .._transport.tls.certs import Identity


@dataclass(frozen=True)
class SessionSecurity:
    """AutoMTLS of one plugin session: our identity, and the one peer certificate we trust."""

    identity: Identity
    peer_cert: x509.Certificate

    @property
    def bridged(self) -> bool:
        from .._transport.tls.certs import needs_bridge

        return needs_bridge(self.peer_cert)


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

    def dial(self, info: ConnInfo, bridge_dir: Callable[[], str]) -> BrokeredChannel:
        """A channel to the peer's brokered server described by ``info``; lazy, like Go's."""
        if info.network not in (NETWORK_UNIX, NETWORK_TCP) or not info.address:
            raise BrokerError(
                f"broker id {info.service_id}: unknown address type "
                f"{info.network!r} (address {info.address!r})",
                hint="the peer must announce a 'unix' or 'tcp' address",
            )
        target = f"unix:{info.address}" if info.network == NETWORK_UNIX else info.address
        security = self.security
        if security is None:
            channel = grpc.insecure_channel(target, options=UNLIMITED_MESSAGE_OPTIONS)
            return BrokeredChannel(channel, info.service_id)
        from .._transport.tls.certs import client_ssl_context, host_channel_credentials

        if security.bridged:
            from .._transport.tls.bridge import BridgeClient

            context = client_ssl_context(security.identity, security.peer_cert)
            bridge = BridgeClient(
                info.network, info.address, context, bridge_dir(), name="tls-bridge-broker"
            )
            bridge.start()
            channel = grpc.insecure_channel(bridge.target, options=UNLIMITED_MESSAGE_OPTIONS)
            return BrokeredChannel(channel, info.service_id, bridge)
        credentials = host_channel_credentials(security.peer_cert, security.identity)
        options = (*UNLIMITED_MESSAGE_OPTIONS, ("grpc.ssl_target_name_override", TLS_SERVER_NAME))
        channel = grpc.secure_channel(target, credentials, options=options)
        return BrokeredChannel(channel, info.service_id)


class BrokeredChannel(grpc.Channel):  # type: ignore[misc]
    """A ``grpc.Channel`` to a brokered server; ``close()`` also stops its TLS bridge.

    The broker closes every channel it handed out when the session ends.
    """

    def __init__(
        self, channel: grpc.Channel, service_id: int, bridge: BridgeClient | None = None
    ) -> None:
        self._channel = channel
        self._bridge = bridge
        self.service_id = service_id
        self._on_close: Callable[[BrokeredChannel], None] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def subscribe(self, callback: Callable[..., None], try_to_connect: bool = False) -> None:
        self._channel.subscribe(callback, try_to_connect=try_to_connect)

    def unsubscribe(self, callback: Callable[..., None]) -> None:
        self._channel.unsubscribe(callback)

    # Stubs keep these multicallables: after close() (the channel's or the session's)
    # their calls raise BrokerClosed rather than grpc's bare ValueError.
    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return guarded_unary(self._channel.unary_unary(method, *args, **kwargs), self._why)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return guarded_stream(self._channel.unary_stream(method, *args, **kwargs), self._why)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return guarded_unary(self._channel.stream_unary(method, *args, **kwargs), self._why)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return guarded_stream(self._channel.stream_stream(method, *args, **kwargs), self._why)

    def _why(self, exc: BaseException) -> BrokerClosed | None:
        if not self._closed:
            return None  # the call's own failure, or the peer's
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
        self._channel.close()
        if self._bridge is not None:
            self._bridge.close()
        if self._on_close is not None:
            self._on_close(self)

    def __enter__(self) -> BrokeredChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<BrokeredChannel broker id {self.service_id}>"
