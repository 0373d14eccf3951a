"""A host's start sequence, apart from PluginProcess's state (protocol.md §2, §3.5, §4.1).

``launch``: checksum, AutoMTLS identity, private socket directory, spawn,
read and validate the handshake line, choose the route (direct or TLS bridge).
``watch_reattached``: watch the process of a plugin started elsewhere.
``open_session``: connect the channel, then open the broker and stdio
streams a go-plugin host keeps for the plugin's lifetime. Each records what
they create in ``HostResources``, so that a failure half-way is cleaned up
by its ``release()``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc

from .._constants import PIPE_EOF_GRACE, REATTACH_POLL_INTERVAL
from .._errors import PluginStartError, RPCPluginError, TLSError
from .._protocol.handshake import (
    HandshakeLine,
    parse_handshake,
    validate_handshake,
)
from .._transport.dial import SessionSecurity, dial
from .channel import HostResources
from .env import make_socket_dir, plugin_environment, resolve_executable, verify_checksum
from .runner import Child, PidWatch, pid_alive
from .stdio import StderrLog, StdioSink, StdioStream
from .supervisor import watch_directory

if TYPE_CHECKING:
    from .._protocol.reattach import ReattachConfig
    from .._transport.tls.certs import Identity
    from .config import HostConfig


@dataclass(frozen=True)
class Launched:
    """A plugin that printed a valid handshake line, not yet connected."""

    line: HandshakeLine
    network: str  # where the host dials: the line's, through the launcher's translation
    address: str
    version: int
    security: SessionSecurity | None  # AutoMTLS: the main channel's and brokered ones'


def launch(
    argv: list[str],
    environ: dict[str, str],
    config: HostConfig,
    res: HostResources,
    *,
    stderr_log: StderrLog,
    on_exit: Callable[[int], None],
    name: str,
) -> Launched:
    """Spawn the plugin and read its handshake line; raise a typed error on failure."""
    cwd = _path(config.cwd)
    if config.checksum is not None:
        path = _path(config.checksum_file) or resolve_executable(argv[0], environ, cwd)
        verify_checksum(path, config.checksum)
    identity: Identity | None = None
    if config.tls:
        from .._transport.tls.certs import generate_identity

        identity = generate_identity()
    socket_dir = res.socket_dir = make_socket_dir(
        config.transport, parent=_path(config.unix_socket_dir), group=config.unix_socket_group
    )
    if socket_dir is not None:
        watch_directory(socket_dir)  # removed by the supervisor if this host dies
    env = plugin_environment(
        environ,
        config.handshake,
        client_cert_pem=identity.cert_pem.decode("ascii") if identity else None,
        socket_dir=socket_dir,
        socket_group=config.unix_socket_group,
        transport=config.transport,
    )
    child = res.child = Child(
        config.launcher.command(argv),
        env=env,
        cwd=cwd,
        stdin=config.stdin,
        on_stderr_line=stderr_log,
        on_exit=on_exit,
        name=name,
    )
    line = parse_handshake(child.read_handshake(config.start_timeout))
    res.adopt_socket(line)
    version = validate_handshake(line, config.handshake.protocol_versions)
    network, address = config.launcher.host_address(line.network, line.address)
    return Launched(line, network, address, version, session_security(line, identity))


def _path(value: str | os.PathLike[str] | None) -> str | None:
    return os.fspath(value) if value is not None else None


def session_security(line: HandshakeLine, identity: Identity | None) -> SessionSecurity | None:
    """AutoMTLS (``identity`` given) pinned to field 6's certificate, or plaintext."""
    if identity is None:
        if line.server_cert:
            raise TLSError(
                "the plugin sent a certificate although AutoMTLS was not requested",
                hint="use tls=True for this plugin",
            )
        return None
    if not line.server_cert:
        raise TLSError(
            "the plugin ignored AutoMTLS: its handshake line has no certificate (field 6)",
            hint="the plugin must support go-plugin AutoMTLS (PLUGIN_CLIENT_CERT), "
            "or use tls=False",
        )
    from .._transport.tls.certs import peer_certificate_from_field

    return SessionSecurity(identity, peer_certificate_from_field(line.server_cert))


def watch_reattached(
    config: ReattachConfig,
    res: HostResources,
    on_exit: Callable[[int], None],
) -> None:
    """Watch a reattached plugin's process (when it is not this one)."""
    pid = config.pid
    if pid and pid != os.getpid():
        if not pid_alive(pid):
            raise PluginStartError(
                f"reattach: plugin process {pid} not found",
                hint="the plugin has exited; start it again",
            )
        res.watch = PidWatch(pid, on_exit, REATTACH_POLL_INTERVAL, name="reattached")


def open_session(
    res: HostResources,
    network: str,
    address: str,
    *,
    security: SessionSecurity | None,
    credentials: grpc.ChannelCredentials | None,
    channel_options: Sequence[tuple[str, Any]],
    connect_timeout: float,
    environ: Mapping[str, str],
    logger: logging.Logger,
    stdio: tuple[StdioSink | None, StdioSink | None],
    stderr_log: StderrLog,
    name: str,
) -> grpc.Channel:
    """Connect to the plugin, open its broker and stdio streams; the raw channel."""
    connection = res.connection = dial(
        network,
        address,
        security=security,
        credentials=credentials,
        bridge_dir=lambda: res.socket_dir,
        options=channel_options,
    )
    try:
        connection.wait_ready(connect_timeout)
    except RPCPluginError:
        child = res.child
        if child is not None and child.exited.wait(PIPE_EOF_GRACE):
            raise PluginStartError(
                "plugin exited before we could connect",
                returncode=child.returncode,
                stderr_tail=child.stderr_tail(),
            ) from None
        raise
    from .._services.broker import open_host_broker

    channel = connection.channel
    res.broker = open_host_broker(channel, network, res.socket_dir, environ, security)
    res.stdio = StdioStream(channel, logger, *stdio, name=name, stderr_log=stderr_log)
    return channel
