"""The one dialer: a grpc channel to a plugin's server or a brokered one.

Three routes, chosen from the session's security: plaintext; AutoMTLS done by
grpcio (our identity presented, only the peer's pinned certificate trusted);
and AutoMTLS through the ``ssl`` bridge for peers whose certificate grpcio
cannot verify (P-521, every Go go-plugin peer), where grpcio speaks plaintext
to a private unix socket and the bridge does the TLS. The host's main
connection, the broker's brokered channels (both sides) and ``testing`` dial
here, and ``wait_ready`` turns a first failed call into a typed error.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from .._constants import (
    CONNECT_PROBE_TIMEOUT,
    NETWORK_UNIX,
    TLS_SERVER_NAME,
    UNLIMITED_MESSAGE_OPTIONS,
)
from .._errors import RPCPluginError, TLSError, TransportError
from .._services.health import health_check

if TYPE_CHECKING:
    from cryptography import x509

    from .tls.bridge import BridgeClient
    from .tls.certs import Identity

# grpc's description of an HTTP/2 answer without gRPC framing (a 404 reads as
# UNIMPLEMENTED, like a gRPC server without the health service): the one place a
# grpc message is read, and only to word a start error better.
_NOT_GRPC_WORDS = "http2 header with status"
_LISTENING_HINT = "is the plugin listening on the address it printed?"
_TLS_HINT = (
    "the plugin must trust PLUGIN_CLIENT_CERT and present the certificate of its handshake line"
)


@dataclass(frozen=True)
class SessionSecurity:
    """AutoMTLS of one plugin session: our identity, and the one peer certificate we trust."""

    identity: Identity
    peer_cert: x509.Certificate

    @property
    def bridged(self) -> bool:
        """Whether grpcio cannot verify the peer, so the ``ssl`` bridge does the TLS."""
        from .tls.certs import needs_bridge

        return needs_bridge(self.peer_cert)


def target_of(network: str, address: str) -> str:
    """grpc's target string for a go-plugin network and address."""
    return f"unix:{address}" if network == NETWORK_UNIX else address


@dataclass
class Connection:
    """A channel to one server, and the TLS bridge it runs through, if any."""

    network: str
    address: str
    channel: grpc.Channel
    secured: bool
    bridge: BridgeClient | None = None

    @property
    def target(self) -> str:
        """Where the peer listens, as grpc writes it (for messages)."""
        return target_of(self.network, self.address)

    def wait_ready(
        self, timeout: float, *, timed_out: Callable[[str], RPCPluginError] | None = None
    ) -> None:
        """Dial now (a health check) so that a failure surfaces as a typed error.

        A peer without the health service still counts as ready. ``timed_out(details)``
        makes the error for a peer that did not answer within ``timeout`` (default: a
        ``TransportError`` whose hint names ``connect_timeout``).
        """
        try:
            health_check(self.channel, timeout)
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.UNIMPLEMENTED:
                if _NOT_GRPC_WORDS in (exc.details() or "").lower():
                    raise TransportError(
                        f"the peer at {self.target} is not a gRPC server: {exc.details()}",
                        hint="the handshake line points at an HTTP/2 server that is no plugin",
                    ) from None
                return
            bridge_failed = self.bridge is not None and self.bridge.last_failure is not None
            if code == grpc.StatusCode.DEADLINE_EXCEEDED and timed_out and not bridge_failed:
                raise timed_out(f"{code.name}: {exc.details()}") from None
            raise self.failure(exc) from None

    def failure(self, exc: grpc.RpcError) -> RPCPluginError:
        """The typed error for a call that could not reach the peer."""
        bridge = self.bridge
        if bridge is not None and bridge.last_failure is not None:
            phase, reason = bridge.last_failure
            if phase == "connect":
                return TransportError(
                    reason, hint="is the plugin listening on the address it printed?"
                )
            return TLSError(reason, hint=_TLS_HINT)
        details = f"{exc.code().name}: {exc.details()}"
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return TransportError(
                f"the plugin at {self.target} did not answer in time: {details}",
                hint="raise connect_timeout, or check that the plugin is not stuck",
            )
        if self.secured and accepts_connections(self.network, self.address):
            # It listens, yet grpc could not get a channel through: the TLS handshake failed.
            return TLSError(
                f"TLS handshake with the plugin at {self.target} failed: {details}",
                hint=_TLS_HINT,
            )
        return TransportError(
            f"could not connect to the plugin at {self.target}: {details}",
            hint=_LISTENING_HINT,
        )

    def close(self) -> None:
        """Close the channel, then its bridge. Idempotent."""
        self.channel.close()
        if self.bridge is not None:
            self.bridge.close()


def dial(
    network: str,
    address: str,
    *,
    security: SessionSecurity | None = None,
    credentials: grpc.ChannelCredentials | None = None,
    bridge_dir: Callable[[], str | None] | None = None,
    options: Sequence[tuple[str, Any]] = UNLIMITED_MESSAGE_OPTIONS,
    bridge_name: str = "tls-bridge-client",
) -> Connection:
    """A channel to ``network``/``address``; lazy (nothing is sent until the first call).

    ``security``: the session's AutoMTLS; ``credentials``: the application's own TLS
    (a reattached plugin); neither: plaintext. ``bridge_dir`` gives the private
    directory for a TLS bridge's socket, asked only when a bridge is needed.
    """
    target = target_of(network, address)
    if security is None:
        channel = _channel(target, credentials, options)
        return Connection(network, address, channel, secured=credentials is not None)
    from .tls.certs import client_ssl_context, host_channel_credentials

    if not security.bridged:
        pinned = host_channel_credentials(security.peer_cert, security.identity)
        return Connection(network, address, _channel(target, pinned, options), secured=True)
    directory = bridge_dir() if bridge_dir is not None else None
    if directory is None:
        raise TransportError(
            "no private directory for the TLS bridge's socket",
            hint="set TMPDIR to a short directory (e.g. /tmp)",
        )
    from .tls.bridge import BridgeClient

    context = client_ssl_context(security.identity, security.peer_cert)
    bridge = BridgeClient(network, address, context, directory, name=bridge_name)
    bridge.start()
    try:
        channel = _channel(bridge.target, None, options)
    except BaseException:
        bridge.close()
        raise
    return Connection(network, address, channel, secured=True, bridge=bridge)


def _channel(
    target: str, credentials: grpc.ChannelCredentials | None, options: Sequence[tuple[str, Any]]
) -> grpc.Channel:
    if credentials is None:
        return grpc.insecure_channel(target, options=tuple(options))
    secure = (*options, ("grpc.ssl_target_name_override", TLS_SERVER_NAME))
    return grpc.secure_channel(target, credentials, options=secure)


def accepts_connections(network: str, address: str) -> bool:
    """Whether something accepts a stream connection at ``address`` right now."""
    from .tls.bridge_loop import parse_sockaddr

    with contextlib.suppress(OSError, ValueError):
        family, sockaddr = parse_sockaddr(network, address)
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.settimeout(CONNECT_PROBE_TIMEOUT)
            probe.connect(sockaddr)
            return True
    return False
