"""The host's connection to a plugin: credentials, dialing, health, Shutdown, rate limit,
and ``HostResources``, everything to release when the plugin goes.

Plain functions over a ``grpc.Channel`` that ``PluginProcess`` composes
(protocol.md §3.5 host recipe, §4.4, §4.6). Internal services are called
through the raw channel, never through the rate limiter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2

from .._constants import (
    CONTROLLER_SERVICE,
    DEFAULT_CONTROLLER_TIMEOUT,
    HEALTH_SERVICE,
    HEALTH_SERVICE_NAME,
    NETWORK_UNIX,
    READER_JOIN_TIMEOUT,
    TLS_SERVER_NAME,
    UNLIMITED_MESSAGE_OPTIONS,
    message_size_options,
    overrides_message_size,
)
from .._errors import PluginClosed, RPCPluginError, TLSError, TransportError
from .._protocol.handshake import HandshakeLine
from .._protos.goplugin_pb2 import Empty
from .runner import Child, PidWatch
from .stdio import StdioStream
from .supervisor import release_directory, release_socket, watch_socket

if TYPE_CHECKING:
    from .._broker.broker import Broker
    from .._protocol.reattach import ReattachConfig
    from .._ratelimit.bucket import TokenBucket
    from .._transport.tls.bridge import BridgeClient
    from .._transport.tls.certs import Identity

logger = logging.getLogger("pyvider_rpcplugin_sync.host")

# Go plugins stop hard inside Shutdown: the host then sees UNAVAILABLE or CANCELLED.
_SHUTDOWN_OK = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})
_TLS_WORDS = ("ssl", "handshake", "tsi_", "certificate")
# grpc's words for an HTTP/2 answer without gRPC framing (a 404 reads as UNIMPLEMENTED).
_NOT_GRPC_WORDS = "http2 header with status"
SERVING = health_pb2.HealthCheckResponse.SERVING


class HostResources:
    """Everything a host holds for one plugin.

    ``release`` is idempotent and needs no PluginProcess, so
    ``weakref.finalize`` can run it for a PluginProcess nobody closed.
    """

    def __init__(self) -> None:
        self.child: Child | None = None
        self.watch: PidWatch | None = None
        self.channel: grpc.Channel | None = None
        self.broker: Broker | None = None  # closing it also ends its StartStream
        self.stdio: StdioStream | None = None
        self.bridge: BridgeClient | None = None
        self.socket_dir: str | None = None
        # The plugin's unix socket when it is not in socket_dir (go-plugin < 1.5
        # ignores PLUGIN_UNIX_SOCKET_DIR and uses its TMPDIR).
        self.plugin_socket: str | None = None

    def adopt_socket(self, line: HandshakeLine) -> None:
        """Make sure the plugin's socket file goes with it, even where it put it."""
        if line.network != NETWORK_UNIX or self.plugin_socket is not None:
            return
        if self.socket_dir is not None and os.path.dirname(line.address) == self.socket_dir:
            return  # removed with the directory
        self.plugin_socket = line.address
        watch_socket(line.address)

    def shutdown(self, grace: float, reattached: ReattachConfig | None, name: str) -> None:
        """go-plugin's Kill: close the broker, ``Shutdown``, wait ``grace``, then signals.

        A reattached plugin is never signalled: this host did not start it.
        """
        if self.broker is not None:  # go-plugin closes the broker first
            self.broker.close()
            self.broker = None
        child, channel = self.child, self.channel

        def ask() -> bool:
            return channel is not None and request_shutdown(channel, name)

        if reattached is not None:
            shut = not reattached.test and ask()
            if shut and self.watch is not None and not self.watch.exited.wait(grace):
                logger.warning(
                    "reattached plugin %s is still running after Shutdown; "
                    "leaving it alone (this host did not start it)",
                    reattached.pid,
                )
            return
        if child is not None:
            graceful = (
                not child.exited.is_set()
                and channel is not None
                and request_shutdown(channel, name)
            )
            child.stop(grace if graceful else 0)

    def release(self) -> None:
        if self.broker is not None:
            self.broker.close()
            self.broker = None
        if self.child is not None:
            self.child.kill_now()  # a no-op once reaped
        if self.stdio is not None:
            self.stdio.close(READER_JOIN_TIMEOUT)
            self.stdio = None
        if self.watch is not None:
            self.watch.close(READER_JOIN_TIMEOUT)
            self.watch = None
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            release_directory(self.socket_dir)
            self.socket_dir = None
        if self.plugin_socket is not None:
            remove_own_socket(self.plugin_socket)
            release_socket(self.plugin_socket)
            self.plugin_socket = None


def remove_own_socket(path: str) -> None:
    """Unlink ``path`` if it is a socket of this user (never a file a plugin named)."""
    with contextlib.suppress(OSError):
        info = os.lstat(path)
        if stat.S_ISSOCK(info.st_mode) and info.st_uid == os.getuid():
            os.unlink(path)


def target_of(network: str, address: str) -> str:
    return f"unix:{address}" if network == NETWORK_UNIX else address


@dataclass
class Route:
    """How the host's channel reaches the plugin: directly, or through the TLS bridge."""

    target: str
    credentials: grpc.ChannelCredentials | None = None
    bridge: BridgeClient | None = None

    @property
    def secured(self) -> bool:
        return self.credentials is not None or self.bridge is not None


def route_to(line: HandshakeLine, identity: Identity | None, socket_dir: str | None) -> Route:
    """The route for AutoMTLS (``identity`` given) or plaintext, pinned to field 6's cert.

    grpcio cannot handshake with a P-521 peer (every Go go-plugin plugin): such a
    plugin is reached through a ``BridgeClient`` that does the TLS with
    Python's ``ssl`` and serves the channel plaintext on a private unix socket.
    """
    target = target_of(line.network, line.address)
    if identity is None:
        if line.server_cert:
            raise TLSError(
                "the plugin sent a certificate although AutoMTLS was not requested",
                hint="use tls=True for this plugin",
            )
        return Route(target)
    if not line.server_cert:
        raise TLSError(
            "the plugin ignored AutoMTLS: its handshake line has no certificate (field 6)",
            hint="the plugin must support go-plugin AutoMTLS (PLUGIN_CLIENT_CERT), "
            "or use tls=False",
        )
    from .._transport.tls.certs import client_ssl_context, host_channel_credentials, needs_bridge
    from .._transport.tls.certs import peer_certificate_from_field as peer_certificate

    cert = peer_certificate(line.server_cert)
    if not needs_bridge(cert):
        return Route(target, credentials=host_channel_credentials(cert, identity))
    if socket_dir is None:
        raise TransportError(
            "no private directory for the TLS bridge's socket",
            hint="set TMPDIR to a short directory (e.g. /tmp)",
        )
    from .._transport.tls.bridge import BridgeClient

    bridge = BridgeClient(
        line.network, line.address, client_ssl_context(identity, cert), socket_dir
    )
    bridge.start()
    return Route(bridge.target, bridge=bridge)


def channel_options(
    max_message_size: int, extra: Sequence[tuple[str, Any]]
) -> tuple[tuple[str, Any], ...]:
    """The host channel's grpc options: message sizes (unless ``extra`` sets them), then
    ``extra`` (keepalive, compression, ...), as ``PluginProcess(channel_options=)``."""
    extra = tuple(extra)
    if overrides_message_size(extra):
        return extra
    return (*message_size_options(max_message_size), *extra)


_GRPC_CLIENT_INTERCEPTORS = (
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
)


def _is_grpcext(interceptor: object) -> bool:
    """OpenTelemetry's grpc client interceptor follows its own ``grpcext`` protocol."""
    return hasattr(interceptor, "intercept_unary") or hasattr(interceptor, "intercept_stream")


def check_interceptors(interceptors: Sequence[Any]) -> tuple[Any, ...]:
    """``interceptors`` as a tuple; a TypeError for anything that is not one."""
    for interceptor in interceptors:
        if not isinstance(interceptor, _GRPC_CLIENT_INTERCEPTORS) and not _is_grpcext(interceptor):
            raise TypeError(
                f"{interceptor!r} is not a grpc client interceptor (grpc.UnaryUnaryClient"
                "Interceptor and the like, or opentelemetry's client_interceptor())"
            )
    return tuple(interceptors)


def intercepted(channel: grpc.Channel, interceptors: Sequence[Any]) -> grpc.Channel:
    """``channel`` behind ``interceptors``, the first one outermost. grpc's client
    interceptors and opentelemetry-instrumentation-grpc's ``client_interceptor()`` mix."""
    for interceptor in reversed(interceptors):
        if isinstance(interceptor, _GRPC_CLIENT_INTERCEPTORS):
            channel = grpc.intercept_channel(channel, interceptor)
        else:
            from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

            channel = intercept_channel(channel, interceptor)  # type: ignore[no-untyped-call]
    return channel


def open_channel(
    target: str,
    credentials: grpc.ChannelCredentials | None,
    options: Sequence[tuple[str, Any]] = UNLIMITED_MESSAGE_OPTIONS,
) -> grpc.Channel:
    """A channel with ``options`` (default: go-plugin's sizes); non-blocking."""
    if credentials is None:
        return grpc.insecure_channel(target, options=tuple(options))
    secure = (*options, ("grpc.ssl_target_name_override", TLS_SERVER_NAME))
    return grpc.secure_channel(target, credentials, options=secure)


def health_check(channel: grpc.Channel, timeout: float) -> Any:
    """``grpc.health.v1.Health/Check`` of service "plugin"; raises ``grpc.RpcError``."""
    check = channel.unary_unary(
        f"/{HEALTH_SERVICE}/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    # wait_for_ready=False: a refused connection or a failed TLS handshake fails at
    # once, with grpc's reason, instead of waiting out the timeout.
    request = health_pb2.HealthCheckRequest(service=HEALTH_SERVICE_NAME)
    return check(request, timeout=timeout, wait_for_ready=False)


def wait_connected(channel: grpc.Channel, timeout: float, target: str, route: Route) -> None:
    """Dial now so that a failure surfaces at start; a plugin without health still counts."""
    try:
        health_check(channel, timeout)
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
            if _NOT_GRPC_WORDS in (exc.details() or "").lower():
                raise TransportError(
                    f"the peer at {target} is not a gRPC server: {exc.details()}",
                    hint="the handshake line points at an HTTP/2 server that is no plugin",
                ) from None
            return
        reason = route.bridge.last_error if route.bridge is not None else None
        if reason and reason.startswith("could not connect"):
            raise TransportError(
                reason, hint="is the plugin listening on the address it printed?"
            ) from None
        if reason:
            raise TLSError(
                reason,
                hint="the plugin must trust PLUGIN_CLIENT_CERT and present the "
                "certificate of its handshake line",
            ) from None
        raise connect_failure(exc, target, route.secured) from None


def connect_failure(exc: grpc.RpcError, target: str, tls: bool) -> RPCPluginError:
    details = f"{exc.code().name}: {exc.details()}"
    if tls and any(word in details.lower() for word in _TLS_WORDS):
        return TLSError(
            f"TLS handshake with the plugin at {target} failed: {details}",
            hint="the plugin must trust PLUGIN_CLIENT_CERT and present the "
            "certificate of its handshake line",
        )
    if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        return TransportError(
            f"the plugin at {target} did not answer in time: {details}",
            hint="raise connect_timeout, or check that the plugin is not stuck",
        )
    return TransportError(
        f"could not connect to the plugin at {target}: {details}",
        hint="is the plugin listening on the address it printed?",
    )


def check_serving(response: Any) -> bool:
    if response.status != SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        raise RPCPluginError(
            f"the plugin reports health status {status}",
            hint="the plugin is up but says it cannot serve",
        )
    return True


def request_shutdown(channel: grpc.Channel, name: str) -> bool:
    """``plugin.GRPCController/Shutdown``; True when the plugin accepted it."""
    shutdown = channel.unary_unary(
        f"/{CONTROLLER_SERVICE}/Shutdown",
        request_serializer=Empty.SerializeToString,
        response_deserializer=Empty.FromString,
    )
    try:
        shutdown(Empty(), timeout=DEFAULT_CONTROLLER_TIMEOUT)
    except grpc.RpcError as exc:
        if exc.code() in _SHUTDOWN_OK:
            return True
        logger.debug("Shutdown of plugin %s failed: %s", name, exc)
        return False
    return True


def rate_limit_interceptor(bucket: TokenBucket | None, mode: str) -> Any:
    """The client interceptor for ``rate_limit=``, or None (nothing on the call path)."""
    if mode not in ("wait", "fail"):
        raise ValueError(f"rate_limit_mode must be 'wait' or 'fail', not {mode!r}")
    if bucket is None:
        return None
    from .._ratelimit.interceptors import RateLimitClientInterceptor

    return RateLimitClientInterceptor(bucket, mode)


def unusable_error(
    what: str, *, child: Child | None, abandoned: bool, dead: bool, running: bool, closed: bool
) -> RPCPluginError:
    """Why ``what`` (stub, channel, broker, ...) cannot be used now, as the error to raise."""
    if abandoned:  # first: after a fork, the stderr tail's lock may be held
        return PluginClosed(
            "this plugin belongs to the process that started it (abandoned after fork)",
            hint="start a new PluginProcess in this process",
        )
    code, tail = (child.returncode, child.stderr_tail()) if child else (None, "")
    if dead and running:
        return PluginClosed(
            "the plugin has exited",
            returncode=code,
            stderr_tail=tail,
            hint="it crashed or was killed; start a new PluginProcess",
        )
    if closed:
        return PluginClosed("the plugin is closed", returncode=code)
    if not running:
        return RPCPluginError(
            "the plugin is not started",
            hint="use 'with PluginProcess(...) as plugin:' or start()",
        )
    return RPCPluginError(
        "no stub class was given",
        hint=f"pass stub=YourStub, or use make_stub(YourStub) ({what})",
    )
