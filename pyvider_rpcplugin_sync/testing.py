"""Helpers for testing plugins and hosts; also offered as pytest fixtures.

With the library installed, pytest loads its plugin (``pytest11`` entry point)
and two fixtures are there without any import:

- ``rpcplugin_server``: ``rpcplugin_server(register, stub=KVStub)`` serves a
  registrar in this process, as ``serve_in_process`` does, and closes it
  after the test;
- ``rpcplugin_process``: ``rpcplugin_process(cmd, **options)`` starts a
  ``PluginProcess``, closes it after the test, and fails the test when the
  plugin, or any process of its process group, outlives the close.

The same helpers work without pytest::

    with serve_in_process(register, stub=KVStub) as plugin:
        plugin.stub.Put(PutRequest(key="a", value=b"1"))
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc

from ._constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_PING_TIMEOUT,
    LEAK_GRACE,
)
from ._host.channel import channel_options, check_interceptors, intercepted
from ._host.env import make_socket_dir, plugin_environment
from ._host.platform import group_processes
from ._host.process import PluginProcess
from ._host.start import session_security
from ._plugin.server import PluginServer, Registrars
from ._protocol.handshake import HandshakeConfig, HandshakeLine, validate_handshake
from ._services.health import check_serving, health_check
from ._transport.dial import Connection, dial

if TYPE_CHECKING:
    from ._host.config import HostConfig
    from ._transport.tls.certs import Identity

__all__ = ["InProcessPlugin", "PluginProcessFactory", "serve_in_process"]

_LEAK_POLL = 0.05


class InProcessPlugin:
    """A plugin's registrars served by a ``PluginServer`` in this process, and a
    host-side channel to it: the real handshake, socket, internal services and (with
    ``tls``) AutoMTLS, without a subprocess. Made by ``serve_in_process``."""

    def __init__(
        self,
        server: PluginServer,
        raw_channel: grpc.Channel,
        channel: grpc.Channel,
        stub: Any,
        cleanup: Callable[[], None],
    ) -> None:
        #: The ``PluginServer``, started.
        self.server = server
        #: The grpc channel to the server (thread-safe; interceptors applied).
        self.channel = channel
        self._raw_channel = raw_channel
        self._stub = stub
        self._cleanup: Callable[[], None] | None = cleanup
        assert server.handshake_line is not None
        #: The handshake line the server would print.
        self.handshake_line: HandshakeLine = server.handshake_line
        self.negotiated_version: int | None = server.negotiated_version

    @property
    def stub(self) -> Any:
        """The stub made from ``stub=`` on ``channel``."""
        if self._stub is None:
            raise AttributeError("no stub class was given: pass stub=, or use make_stub()")
        return self._stub

    def make_stub(self, stub_class: Callable[[grpc.Channel], Any]) -> Any:
        """Another service's stub on the same channel."""
        return stub_class(self.channel)

    def ping(self, timeout: float = DEFAULT_PING_TIMEOUT) -> bool:
        """Health check of service "plugin", as ``PluginProcess.ping``."""
        return check_serving(health_check(self._raw_channel, timeout))

    def close(self) -> None:
        """Close the channel, stop the server, remove its socket directory. Idempotent."""
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            cleanup()

    def __enter__(self) -> InProcessPlugin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve_in_process(
    registrars: Registrars,
    *,
    stub: Callable[[grpc.Channel], Any] | None = None,
    handshake: HandshakeConfig | None = None,
    tls: bool = False,
    transport: str | None = None,
    interceptors: Sequence[Any] = (),
    server_interceptors: Sequence[grpc.ServerInterceptor] = (),
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    **server_options: Any,
) -> InProcessPlugin:
    """Serve ``registrars`` in this process and connect to them as a host would.

    A real ``PluginServer`` (internal services included) on a real socket in a
    private directory, given the environment a host would give it; with ``tls`` the
    whole AutoMTLS exchange runs (both sides verify). ``stub``, ``interceptors`` and
    ``max_message_size`` are as in ``PluginProcess`` (``max_message_size`` applies
    to the server too); ``server_interceptors`` and ``server_options`` (``max_workers``,
    ``rate_limit``, ``rate_limit_per_method``, ``reflection``, ...) go to
    ``PluginServer``. ``tls`` is off by default, as in go-plugin's
    ``TestPluginGRPCConn``. Close the result, or use it as a context manager.
    """
    handshake = handshake or HandshakeConfig()
    host_interceptors = check_interceptors(interceptors)
    identity = None
    if tls:
        from ._transport.tls.certs import generate_identity

        identity = generate_identity()
    held = _Held(make_socket_dir(transport))
    environ = plugin_environment(
        os.environ,
        handshake,
        client_cert_pem=identity.cert_pem.decode("ascii") if identity else None,
        socket_dir=held.socket_dir,
        transport=transport,
    )
    try:
        server = held.server = PluginServer(
            registrars,
            handshake=handshake,
            environ=environ,
            tls=tls,
            max_message_size=max_message_size,
            interceptors=server_interceptors,
            **server_options,
        )
        line = server.start()
        validate_handshake(line, handshake.protocol_versions)
        channel = held.connect(line, identity, max_message_size, connect_timeout)
    except BaseException:
        held.close()
        raise
    shared = intercepted(channel, host_interceptors) if host_interceptors else channel
    return InProcessPlugin(
        server, channel, shared, stub(shared) if stub is not None else None, held.close
    )


class _Held:
    """What an in-process plugin holds, released by ``close`` in reverse order."""

    def __init__(self, socket_dir: str | None) -> None:
        self.socket_dir = socket_dir
        self.server: PluginServer | None = None
        self.connection: Connection | None = None

    def connect(
        self, line: HandshakeLine, identity: Identity | None, max_size: int, timeout: float
    ) -> grpc.Channel:
        """The host's channel to the server, dialed as ``PluginProcess`` dials."""
        connection = self.connection = dial(
            line.network,
            line.address,
            security=session_security(line, identity),
            bridge_dir=lambda: self.socket_dir,
            options=channel_options(max_size, ()),
        )
        connection.wait_ready(timeout)
        return connection.channel

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
        if self.server is not None:
            self.server.stop()
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)


class PluginProcessFactory:
    """Makes ``PluginProcess`` es, and closes them all in ``close_all``,
    which reports the processes that outlived their close (the ``rpcplugin_process``
    fixture fails the test with that report)."""

    def __init__(self) -> None:
        self.made: list[PluginProcess] = []

    def __call__(
        self,
        cmd: str | Sequence[str],
        config: HostConfig | None = None,
        *,
        start: bool = True,
        **options: Any,
    ) -> PluginProcess:
        """A PluginProcess for ``cmd`` with ``config`` and ``options`` (``HostConfig``
        fields); started unless ``start=False``."""
        plugin = PluginProcess(cmd, config, **options)
        self.made.append(plugin)
        return plugin.start() if start else plugin

    def close_all(self) -> list[str]:
        """Close every plugin made; descriptions of the processes left over (killed now)."""
        leaks: list[str] = []
        for plugin in reversed(self.made):
            plugin.close()
            pid = plugin.pid
            if pid is not None:
                left = _outliving_group(pid)
                if left:
                    leaks.append(f"plugin {plugin!r}: processes still running {left}")
                    _kill_group(pid)
        self.made.clear()
        return leaks


def _outliving_group(pgid: int) -> list[str]:
    """The processes of group ``pgid`` (a plugin's) still there after a short grace."""
    deadline = time.monotonic() + LEAK_GRACE
    while True:
        members = group_processes(pgid)
        if not members or time.monotonic() >= deadline:
            return members
        time.sleep(_LEAK_POLL)  # not our children: nothing to wait on


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
