"""How a host starts its session: three ways to get a plugin, one way to connect to it.

Every way is a ``Start`` that yields the same ``Launched``: where to dial, the
negotiated version, the session's AutoMTLS and one death watch.

- ``Spawn``: checksum, AutoMTLS identity, private socket directory, the plugin's
  environment, the process (through the user's ``CommandLauncher``), and its
  handshake line read and validated;
- ``Reattach``: a plugin started elsewhere, its pid watched;
- ``InProcess``: a ``PluginServer`` in this process (``testing.serve_in_process``).

``open_session`` then dials the plugin and opens the broker and stdio streams a
go-plugin host keeps for the plugin's lifetime. Each step records what it
creates in ``HostResources``, so that a failure half-way is cleaned up by its
``release()``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import grpc

from .._constants import NETWORK_UNIX, PIPE_EOF_GRACE, REATTACH_POLL_INTERVAL
from .._errors import PluginStartError, RPCPluginError, StartTimeout, TLSError
from .._protocol.handshake import (
    HandshakeLine,
    parse_handshake,
    validate_handshake,
)
from .._transport.dial import SessionSecurity, dial
from .channel import HostResources, bounded_connect_attempts
from .env import (
    make_socket_dir,
    plugin_environment,
    plugin_temp_dir,
    resolve_executable,
    verify_checksum,
)
from .runner import Child, PidWatch, pid_alive
from .stdio import StderrLog, StdioStream
from .supervisor import watch_directory

if TYPE_CHECKING:
    from .._protocol.reattach import ReattachConfig
    from .._transport.tls.certs import Identity
    from .config import HostConfig
    from .lifecycle import DeathWatch


@dataclass(frozen=True)
class Launched:
    """A plugin that is there to be dialed, not yet connected."""

    network: str  # where the host dials (for a spawned plugin: after the launcher's translation)
    address: str
    version: int
    line: HandshakeLine | None = None  # None when reattached: no handshake line was read
    security: SessionSecurity | None = None  # AutoMTLS: the main channel's and brokered ones'
    credentials: grpc.ChannelCredentials | None = None  # a reattached plugin's own TLS
    watch: DeathWatch | None = None
    environ: Mapping[str, str] = field(
        default_factory=dict[str, str]
    )  # what the broker's listeners read


@dataclass(frozen=True)
class Hooks:
    """What a start reports to its host as it goes, and when the whole start must be done."""

    on_exit: Callable[[int], None]
    stderr_log: StderrLog
    name: str
    # time.monotonic() by which the start (handshake, connect, health) ends: start_timeout.
    deadline: float = float("inf")


class Start(Protocol):
    """One way to get a plugin to dial."""

    def launch(self, res: HostResources, config: HostConfig, hooks: Hooks) -> Launched: ...


@dataclass(frozen=True)
class Spawn:
    """Run the plugin's command and read its handshake line."""

    argv: list[str]
    environ: dict[str, str]  # read when the host was built, then inherited

    def launch(self, res: HostResources, config: HostConfig, hooks: Hooks) -> Launched:
        return _spawn(self.argv, self.environ, config, res, hooks)


@dataclass(frozen=True)
class Reattach:
    """A plugin started elsewhere (go-plugin's ``ReattachConfig``): no spawn, no handshake."""

    config: ReattachConfig
    credentials: grpc.ChannelCredentials | None

    def launch(self, res: HostResources, config: HostConfig, hooks: Hooks) -> Launched:
        from .._protocol.reattach import reattach_version

        version = reattach_version(self.config, config.handshake.protocol_versions)
        watch_reattached(self.config, res, hooks.on_exit)
        return Launched(
            self.config.network,
            self.config.address,
            version,
            credentials=self.credentials,
            watch=res.watch,
        )


def _spawn(
    argv: list[str],
    environ: dict[str, str],
    config: HostConfig,
    res: HostResources,
    hooks: Hooks,
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
        multiplex=config.multiplex,
    )
    started_ns = time.time_ns()  # what the plugin made is newer than this
    child = res.child = Child(
        config.launcher.command(argv),
        env=env,
        cwd=cwd,
        stdin=config.stdin,
        on_stderr_line=hooks.stderr_log,
        on_exit=hooks.on_exit,
        name=hooks.name,
    )
    line = parse_handshake(child.read_handshake(hooks.deadline, config.start_timeout))
    res.adopt_socket(line, plugin_temp_dir(env), started_ns)
    version = validate_handshake(line, config.handshake.protocol_versions)
    network, address = config.launcher.host_address(line.network, line.address)
    security = session_security(line, identity)
    return Launched(network, address, version, line, security, watch=child, environ=environ)


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
    launched: Launched,
    config: HostConfig,
    *,
    logger: logging.Logger,
    stderr_log: StderrLog,
    name: str,
    deadline: float = float("inf"),
) -> grpc.Channel:
    """Connect to the plugin, open its broker and stdio streams; the raw channel.

    The connect step (the first health check) gets ``connect_timeout``, and no more
    than what is left of the start's ``deadline`` (``start_timeout``).
    """
    left = deadline - time.monotonic()
    start_bound = left < config.connect_timeout  # the start's time runs out first
    step = max(left, 0.0) if start_bound else config.connect_timeout
    network, address, mux = launched.network, launched.address, None
    if config.multiplex:
        from .._broker.mux_host import check_multiplex, connect_mux

        check_multiplex(launched.line)
        mux = res.mux = connect_mux(network, address, step, res.socket_dir)
        # The main connection is the first stream, sent without a knock.
        network, address = NETWORK_UNIX, mux.dial_relay(None, lambda: None).path
    connection = res.connection = dial(
        network,
        address,
        security=launched.security,
        credentials=launched.credentials,
        bridge_dir=lambda: res.socket_dir or (mux.private_dir if mux else None),
        options=bounded_connect_attempts(config.resolved_channel_options(), step),
    )
    child = res.child

    def start_ran_out(details: str) -> RPCPluginError:
        return StartTimeout(
            f"the plugin at {connection.target} did not answer within start_timeout "
            f"({config.start_timeout:g} s, for the whole start): {details}",
            hint="raise start_timeout, or check that the plugin is not stuck",
            returncode=child.returncode if child is not None else None,
            stderr_tail=child.stderr_tail() if child is not None else "",
        )

    try:
        connection.wait_ready(step, timed_out=start_ran_out if start_bound else None)
    except RPCPluginError:
        # A plugin that is exiting gets a moment (within the start's time) to finish.
        grace = min(PIPE_EOF_GRACE, max(deadline - time.monotonic(), 0.0))
        if child is not None and child.exited.wait(grace):
            raise PluginStartError(
                "plugin exited before we could connect",
                returncode=child.returncode,
                stderr_tail=child.stderr_tail(),
            ) from None
        raise
    from .._services.broker import open_host_broker

    channel = connection.channel
    res.broker = open_host_broker(
        channel, launched.network, res.socket_dir, launched.environ, launched.security, mux=mux
    )
    stdio = (config.stdio_stdout, config.stdio_stderr)
    res.stdio = StdioStream(channel, logger, *stdio, name=name, stderr_log=stderr_log)
    return channel
