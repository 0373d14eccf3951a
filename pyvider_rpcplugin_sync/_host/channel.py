"""What a host holds for one plugin (``HostResources``) and the host's own calls:
``Shutdown``, channel options, the application's interceptors and the rate limiter.

The library's calls (health, ``Shutdown``, stdio) go through the raw channel,
never through the application's interceptors or the rate limiter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

import grpc

from .._constants import (
    CONTROLLER_SERVICE,
    DEFAULT_CONTROLLER_TIMEOUT,
    NETWORK_UNIX,
    READER_JOIN_TIMEOUT,
    SOCKET_FILE_PREFIX,
    message_size_options,
    overrides_message_size,
)
from .._protocol.handshake import HandshakeLine
from .runner import Child, PidWatch
from .stdio import StdioStream
from .supervisor import release_directory, release_socket, watch_socket

if TYPE_CHECKING:
    from .._broker.broker import Broker
    from .._broker.mux import MuxSession
    from .._protocol.reattach import ReattachConfig
    from .._ratelimit.bucket import TokenBucket
    from .._transport.dial import Connection

logger = logging.getLogger("pyvider_rpcplugin_sync.host")

# Go plugins stop hard inside Shutdown: the host then sees UNAVAILABLE or CANCELLED.
_SHUTDOWN_OK = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED})


class HostResources:
    """Everything a host holds for one plugin.

    ``release`` is idempotent and needs no PluginProcess, so
    ``weakref.finalize`` can run it for a PluginProcess nobody closed.
    """

    def __init__(self) -> None:
        self.child: Child | None = None
        self.watch: PidWatch | None = None
        self.connection: Connection | None = None  # the channel, and its TLS bridge
        self.broker: Broker | None = None  # closing it also ends its StartStream
        self.stdio: StdioStream | None = None
        self.mux: MuxSession | None = None  # a multiplexed session's yamux connection
        self.socket_dir: str | None = None
        # The plugin's unix socket when it is not in socket_dir (go-plugin < 1.5
        # ignores PLUGIN_UNIX_SOCKET_DIR and uses its TMPDIR).
        self.plugin_socket: str | None = None
        self._socket_inode: tuple[int, int] | None = None

    @property
    def channel(self) -> grpc.Channel | None:
        """The raw channel: the library's own calls (health, Shutdown, stdio) use it."""
        return self.connection.channel if self.connection is not None else None

    def adopt_socket(self, line: HandshakeLine, temp_dir: str, started_ns: int) -> None:
        """Take charge of the plugin's socket file when the plugin made it, and only then.

        A socket in ``socket_dir`` goes with the directory. One elsewhere is the plugin's
        only if it is where go-plugin < 1.5 puts its own (``plugin<digits>`` in the
        plugin's temp dir ``temp_dir``), a socket of this user, made after the plugin
        started (``started_ns``, ``time.time_ns()`` before the spawn). Anything else a
        handshake line names (another program's server) is never removed.
        """
        if line.network != NETWORK_UNIX or self.plugin_socket is not None:
            return
        if self.socket_dir is not None and os.path.dirname(line.address) == self.socket_dir:
            return  # removed with the directory
        info = plugin_made_socket(line.address, temp_dir, started_ns)
        if info is None:
            return
        self.plugin_socket = line.address
        self._socket_inode = (info.st_dev, info.st_ino)
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
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if self.mux is not None:
            self.mux.close()  # the one multiplexed connection, its relays
            self.mux = None
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            release_directory(self.socket_dir)
            self.socket_dir = None
        if self.plugin_socket is not None:
            remove_own_socket(self.plugin_socket, self._socket_inode)
            release_socket(self.plugin_socket)
            self.plugin_socket = None


# The file clock lags time.time_ns() by up to one kernel tick (Linux stamps files
# from a coarse clock): a socket made right after the spawn may look this much older.
_FILE_CLOCK_SLACK_NS = 50_000_000
_GO_SOCKET_NAME = re.compile(rf"{re.escape(SOCKET_FILE_PREFIX)}[0-9]{{1,10}}")


def plugin_made_socket(path: str, temp_dir: str, started_ns: int) -> os.stat_result | None:
    """``path``'s status if it is a socket the plugin made in its temp dir, else None."""
    directory, name = os.path.split(path)
    if not _GO_SOCKET_NAME.fullmatch(name):
        return None
    try:
        if os.path.realpath(directory) != os.path.realpath(temp_dir):
            return None
        info = os.lstat(path)
    except OSError:
        return None
    made_after = min(info.st_mtime_ns, info.st_ctime_ns) >= started_ns - _FILE_CLOCK_SLACK_NS
    if stat.S_ISSOCK(info.st_mode) and info.st_uid == os.getuid() and made_after:
        return info
    return None


def remove_own_socket(path: str, inode: tuple[int, int] | None = None) -> None:
    """Unlink ``path`` if it is a socket of this user and, given ``inode`` (device,
    inode), still the file that was adopted (never a file a plugin merely named)."""
    with contextlib.suppress(OSError):
        info = os.lstat(path)
        same = inode is None or (info.st_dev, info.st_ino) == inode
        if stat.S_ISSOCK(info.st_mode) and info.st_uid == os.getuid() and same:
            os.unlink(path)


def channel_options(
    max_message_size: int, extra: Sequence[tuple[str, Any]]
) -> tuple[tuple[str, Any], ...]:
    """The host channel's grpc options: message sizes (unless ``extra`` sets them), then
    ``extra`` (keepalive, compression, ...), as ``PluginProcess(channel_options=)``."""
    extra = tuple(extra)
    if overrides_message_size(extra):
        return extra
    return (*message_size_options(max_message_size), *extra)


# grpc's own bound on one connect attempt (20 s by default): the socket of an attempt
# stays open that long, even after the call that started it gave up and the channel
# closed. A host's attempts end a moment after the call that waits for them.
_CONNECT_ATTEMPT_KEY = "grpc.min_reconnect_backoff_ms"
_CONNECT_ATTEMPT_MARGIN = 0.1


def bounded_connect_attempts(
    options: Sequence[tuple[str, Any]], seconds: float
) -> tuple[tuple[str, Any], ...]:
    """``options`` with each grpc connect attempt bounded by ``seconds`` (and a margin,
    so that the call waiting for it times out first), unless ``options`` set it."""
    options = tuple(options)
    if any(key == _CONNECT_ATTEMPT_KEY for key, _ in options):
        return options
    bound_ms = int((max(seconds, 0.0) + _CONNECT_ATTEMPT_MARGIN) * 1000)
    return (*options, (_CONNECT_ATTEMPT_KEY, bound_ms))


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


def _opentelemetry_intercept() -> Callable[[grpc.Channel, Any], grpc.Channel]:
    """opentelemetry-instrumentation-grpc's ``intercept_channel`` (untyped, so typed here)."""
    from opentelemetry.instrumentation.grpc import grpcext  # pyright: ignore[reportMissingTypeStubs]

    wrap = grpcext.intercept_channel  # pyright: ignore[reportUnknownMemberType, reportUnknownVariableType]
    return cast("Callable[[grpc.Channel, Any], grpc.Channel]", wrap)


def intercepted(channel: grpc.Channel, interceptors: Sequence[Any]) -> grpc.Channel:
    """``channel`` behind ``interceptors``, the first one outermost. grpc's client
    interceptors and opentelemetry-instrumentation-grpc's ``client_interceptor()`` mix."""
    for interceptor in reversed(interceptors):
        if isinstance(interceptor, _GRPC_CLIENT_INTERCEPTORS):
            channel = grpc.intercept_channel(channel, cast("Any", interceptor))
        else:
            channel = _opentelemetry_intercept()(channel, interceptor)
    return channel


def request_shutdown(channel: grpc.Channel, name: str) -> bool:
    """``plugin.GRPCController/Shutdown``; True when the plugin accepted it."""
    from .._protos.goplugin_pb2 import Empty  # protobuf on first use, not at import

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
