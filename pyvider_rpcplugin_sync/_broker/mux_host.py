"""The host's side of a multiplexed session: the field-7 check, and the one connection
to the plugin, on which the host runs the yamux client."""

from __future__ import annotations

import socket

from .._constants import NETWORK_TCP
from .._errors import MultiplexNotSupported, TransportError
from .._protocol.handshake import HandshakeLine
from .._transport.tls.bridge_loop import parse_sockaddr
from .._transport.yamux.driver import YamuxConnection
from .mux import MuxSession

_HINT = (
    "the plugin must support go-plugin 1.6's broker multiplexing (go-plugin >= 1.6.0 or "
    "this library; not go-plugin 1.0.1 or pyvider-rpcplugin), or use multiplex=False"
)


def check_multiplex(line: HandshakeLine | None) -> None:
    """A multiplexing host needs field 7 to say true (go-plugin's
    ErrGRPCBrokerMuxNotSupported otherwise)."""
    if line is None:
        raise MultiplexNotSupported(
            "broker multiplexing needs a handshake line; a reattached plugin has none",
            hint="use multiplex=False with PluginProcess.reattach",
        )
    if line.multiplex is None:
        raise MultiplexNotSupported(
            "client requested gRPC broker multiplexing but plugin does not support the "
            "feature: its handshake line has no 7th field",
            hint=_HINT,
        )
    if not line.multiplex:
        raise MultiplexNotSupported(
            "client requested gRPC broker multiplexing but plugin does not support the "
            "feature: field 7 of its handshake line is false",
            hint=_HINT,
        )


def connect_mux(
    network: str, address: str, timeout: float, directory: str | None = None
) -> MuxSession:
    """Dial the plugin once and start the yamux client on that connection; its sockets go
    in ``directory`` (the session's socket directory) when there is one."""
    try:
        family, sockaddr = parse_sockaddr(network, address)
    except ValueError as exc:
        raise TransportError(str(exc), hint="the plugin must print a unix or tcp address") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(max(timeout, 0.001))
        sock.connect(sockaddr)
        if network == NETWORK_TCP:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        sock.close()
        raise TransportError(
            f"could not connect to the plugin at {network}:{address}: {exc}",
            hint="is the plugin listening on the address it printed?",
        ) from None
    session = MuxSession(main_target=None, directory=directory)
    session.start(YamuxConnection(sock, client=True, name="mux-host"))
    return session
