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
import signal
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Unpack, overload

import grpc

from ._constants import (
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_PING_TIMEOUT,
    LEAK_GRACE,
    Transport,
)
from ._host.config import HostConfig
from ._host.env import make_socket_dir, plugin_environment
from ._host.options import HostOptions, StubFactory, StubT
from ._host.platform import group_processes
from ._host.process import PluginProcess
from ._host.start import Hooks, Launched, session_security
from ._plugin.server import PluginServer, Registrars
from ._protocol.handshake import HandshakeConfig, HandshakeLine, validate_handshake

if TYPE_CHECKING:
    from ._host.channel import HostResources

__all__ = [
    "InProcessPlugin",
    "InProcessPluginFactory",
    "PluginProcessFactory",
    "serve_in_process",
]

_T = TypeVar("_T")

_LEAK_POLL = 0.05


class InProcessPlugin(Generic[StubT]):
    """A plugin's registrars served by a ``PluginServer`` in this process, and a
    host connected to it: the real handshake, socket, internal services and (with
    ``tls``) AutoMTLS, without a subprocess. Made by ``serve_in_process``.

    The host is a ``PluginProcess`` whose plugin starts in this process, so its
    channel, stub, broker and errors are a ``PluginProcess``'s; ``stub=KVStub`` makes
    it an ``InProcessPlugin[KVStub]``."""

    def __init__(self, host: PluginProcess[StubT], start: InProcess) -> None:
        assert start.server is not None and host.handshake_line is not None
        #: The host side: a started ``PluginProcess``.
        self.host = host
        #: The ``PluginServer``, started.
        self.server: PluginServer = start.server
        self._start: InProcess | None = start
        #: The handshake line the server would print.
        self.handshake_line: HandshakeLine = host.handshake_line
        self.negotiated_version: int | None = host.negotiated_version

    @property
    def channel(self) -> grpc.Channel:
        """The grpc channel to the server (thread-safe; interceptors applied)."""
        return self.host.channel

    @property
    def stub(self) -> StubT:
        """The stub made from ``stub=`` on ``channel``."""
        if self.host._stub_cls is None:  # pyright: ignore[reportPrivateUsage]  (its host's)
            raise AttributeError("no stub class was given: pass stub=, or use make_stub()")
        return self.host.stub

    def make_stub(self, stub_class: StubFactory[_T]) -> _T:
        """Another service's stub on the same channel."""
        return self.host.make_stub(stub_class)

    def ping(self, timeout: float = DEFAULT_PING_TIMEOUT) -> bool:
        """Health check of service "plugin", as ``PluginProcess.ping``."""
        return self.host.ping(timeout)

    def close(self) -> None:
        """Close the host, stop the server, remove its socket directory. Idempotent."""
        start, self._start = self._start, None
        if start is not None:
            self.host.close()
            start.close()

    def __enter__(self) -> InProcessPlugin[StubT]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@overload
def serve_in_process(
    registrars: Registrars,
    *,
    stub: StubFactory[StubT],
    handshake: HandshakeConfig | None = ...,
    tls: bool = ...,
    transport: Transport | None = ...,
    interceptors: Sequence[Any] = ...,
    server_interceptors: Sequence[grpc.ServerInterceptor] = ...,
    max_message_size: int = ...,
    connect_timeout: float = ...,
    **server_options: Any,
) -> InProcessPlugin[StubT]: ...
@overload
def serve_in_process(
    registrars: Registrars,
    *,
    stub: None = None,
    handshake: HandshakeConfig | None = ...,
    tls: bool = ...,
    transport: Transport | None = ...,
    interceptors: Sequence[Any] = ...,
    server_interceptors: Sequence[grpc.ServerInterceptor] = ...,
    max_message_size: int = ...,
    connect_timeout: float = ...,
    **server_options: Any,
) -> InProcessPlugin[Any]: ...
def serve_in_process(
    registrars: Registrars,
    *,
    stub: StubFactory[Any] | None = None,
    handshake: HandshakeConfig | None = None,
    tls: bool = False,
    transport: Transport | None = None,
    interceptors: Sequence[Any] = (),
    server_interceptors: Sequence[grpc.ServerInterceptor] = (),
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    **server_options: Any,
) -> InProcessPlugin[Any]:
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
    config = HostConfig(
        handshake=handshake or HandshakeConfig(),
        stub=stub,
        tls=tls,
        transport=transport,
        interceptors=interceptors,
        max_message_size=max_message_size,
        connect_timeout=connect_timeout,
    )
    start = InProcess(registrars, tuple(server_interceptors), server_options)
    name = "pyvider_rpcplugin_sync.plugin.in_process"
    host = PluginProcess._started_by(start, config, name)  # pyright: ignore[reportPrivateUsage]
    try:
        host.start()
    except BaseException:
        start.close()
        raise
    return InProcessPlugin(host, start)


class InProcess:
    """A ``PluginServer`` in this process as the plugin of a ``PluginProcess``.

    The host's start for ``serve_in_process``: the server is given the environment a
    host gives its plugin, and its handshake line is validated as a spawned one's.
    """

    def __init__(
        self,
        registrars: Registrars,
        server_interceptors: tuple[grpc.ServerInterceptor, ...],
        server_options: dict[str, Any],
    ) -> None:
        self._registrars = registrars
        self._interceptors = server_interceptors
        self._options = server_options
        self.server: PluginServer | None = None

    def launch(self, res: HostResources, config: HostConfig, hooks: Hooks) -> Launched:
        identity = None
        if config.tls:
            from ._transport.tls.certs import generate_identity

            identity = generate_identity()
        socket_dir = res.socket_dir = make_socket_dir(config.transport)  # removed by the host
        environ = plugin_environment(
            os.environ,
            config.handshake,
            client_cert_pem=identity.cert_pem.decode("ascii") if identity else None,
            socket_dir=socket_dir,
            transport=config.transport,
            multiplex=config.multiplex,
        )
        server = self.server = PluginServer(
            self._registrars,
            handshake=config.handshake,
            environ=environ,
            tls=config.tls,
            max_message_size=config.max_message_size,
            interceptors=self._interceptors,
            **self._options,
        )
        line = server.start()
        version = validate_handshake(line, config.handshake.protocol_versions)
        security = session_security(line, identity)
        return Launched(line.network, line.address, version, line, security, environ=os.environ)

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


class InProcessPluginFactory:
    """The ``rpcplugin_server`` fixture: ``serve_in_process`` with the same arguments,
    every plugin it made closed by ``close_all`` (after the test)."""

    def __init__(self) -> None:
        self.made: list[InProcessPlugin[Any]] = []

    @overload
    def __call__(
        self, registrars: Registrars, *, stub: StubFactory[_T], **options: Any
    ) -> InProcessPlugin[_T]: ...
    @overload
    def __call__(
        self, registrars: Registrars, *, stub: None = None, **options: Any
    ) -> InProcessPlugin[Any]: ...
    def __call__(self, registrars: Registrars, **options: Any) -> InProcessPlugin[Any]:
        """``serve_in_process(registrars, **options)``, closed by ``close_all``."""
        plugin = serve_in_process(registrars, **options)
        self.made.append(plugin)
        return plugin

    def close_all(self) -> None:
        """Close every plugin made, the newest first."""
        while self.made:
            self.made.pop().close()


class PluginProcessFactory:
    """Makes ``PluginProcess`` es, and closes them all in ``close_all``,
    which reports the processes that outlived their close (the ``rpcplugin_process``
    fixture fails the test with that report)."""

    def __init__(self) -> None:
        self.made: list[PluginProcess[Any]] = []

    @overload
    def __call__(
        self,
        cmd: str | Sequence[str],
        config: HostConfig | None = None,
        *,
        start: bool = True,
        stub: StubFactory[_T],
        **options: Unpack[HostOptions],
    ) -> PluginProcess[_T]: ...
    @overload
    def __call__(
        self,
        cmd: str | Sequence[str],
        config: HostConfig | None = None,
        *,
        start: bool = True,
        stub: None = None,
        **options: Unpack[HostOptions],
    ) -> PluginProcess[Any]: ...
    def __call__(
        self,
        cmd: str | Sequence[str],
        config: HostConfig | None = None,
        *,
        start: bool = True,
        **options: Any,
    ) -> PluginProcess[Any]:
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
