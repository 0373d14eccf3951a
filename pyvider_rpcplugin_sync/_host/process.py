"""PluginProcess: the host of one plugin session (docs/internals/session.md).

How the plugin is had is a ``Start`` (``start``: spawn, reattach, in process);
this class keeps the session's ``Lifecycle``, hands out stubs behind
``_transport.guard``'s closed-plugin translation, and closes with ``Shutdown`` ->
grace -> SIGTERM -> SIGKILL -> reap -> remove the socket dir. Between
``plugin.stub`` and the channel sits that one call frame, and grpc interceptors
only when ``rate_limit`` or ``interceptors`` ask for them.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Unpack, overload

import grpc

from .._constants import (
    DEATH_NOTICE,
    DEFAULT_PING_TIMEOUT,
    PROTOCOL_GRPC,
    READER_JOIN_TIMEOUT,
)
from .._errors import PluginClosed, RPCPluginError
from .._protocol.handshake import HandshakeLine
from .._seconds import seconds
from .._services.health import HEALTH_CHECK, check_serving, health_check
from .._transport.gate import CallGate
from .._transport.guard import GuardedChannel, Translate
from .at_exit import close_at_exit, forget
from .channel import HostResources, intercepted
from .config import HostConfig
from .env import command_argv
from .lifecycle import ABANDONED, Event, Lifecycle, Stage, notify_exit
from .options import HostOptions, StubFactory, StubT
from .start import Hooks, Reattach, Spawn, Start, open_session
from .stdio import StderrLog, plugin_logger_name

if TYPE_CHECKING:
    from .._broker.broker import Broker
    from .._protocol.reattach import ReattachConfig
    from .._transport.dial import SessionSecurity

logger = logging.getLogger("pyvider_rpcplugin_sync.host")

# How long a failed call waits for the death watch to confirm an exit (the tests stretch it).
_DEATH_NOTICE = DEATH_NOTICE

_T = TypeVar("_T")


class PluginProcess(Generic[StubT]):
    """A go-plugin gRPC plugin run as a subprocess; a context manager.

    ``with PluginProcess(["./plugin"], stub=KVStub) as plugin: plugin.stub.Get(...)``.
    Thread-safe: share one instance (and its ``stub``/``channel``) between threads.

    Args:
        cmd: the plugin command, an argv list or one string split like a shell would.
        config: a ``HostConfig``; keyword arguments (any ``HostConfig`` field:
            ``stub=``, ``tls=``, ``handshake=``, ``env=``, ``start_timeout=``,
            ``launcher=``, ...) replace its fields.

    ``stub=KVStub`` makes it a ``PluginProcess[KVStub]``: ``plugin.stub`` is a ``KVStub``
    for mypy, pyright and editors (a stub class given only in ``config`` is not seen).
    """

    @overload
    def __init__(
        self: PluginProcess[_T],
        cmd: str | Sequence[str],
        config: HostConfig | None = None,
        *,
        stub: StubFactory[_T],
        **options: Unpack[HostOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: PluginProcess[Any],
        cmd: str | Sequence[str],
        config: HostConfig | None = None,
        *,
        stub: None = None,
        **options: Unpack[HostOptions],
    ) -> None: ...
    def __init__(
        self, cmd: str | Sequence[str], config: HostConfig | None = None, **options: Any
    ) -> None:
        self._argv = command_argv(cmd)
        self._config = config = HostConfig.of(config, options)
        # The host's environment is read now (when the object is built), then inherited.
        spawn = Spawn(self._argv, config.plugin_base_environment())
        self._setup(config, plugin_logger_name(self._argv), spawn)

    @overload
    @classmethod
    def reattach(
        cls,
        config: ReattachConfig,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        host_config: HostConfig | None = None,
        stub: StubFactory[_T],
        **options: Unpack[HostOptions],
    ) -> PluginProcess[_T]: ...
    @overload
    @classmethod
    def reattach(
        cls,
        config: ReattachConfig,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        host_config: HostConfig | None = None,
        stub: None = None,
        **options: Unpack[HostOptions],
    ) -> PluginProcess[Any]: ...
    @classmethod
    def reattach(
        cls,
        config: ReattachConfig,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        host_config: HostConfig | None = None,
        **options: Any,
    ) -> PluginProcess[Any]:
        """A host for a plugin that already runs (no spawn, no handshake); start it with ``with``.

        ``host_config`` and ``options`` are PluginProcess's (handshake, stub, logger,
        rate_limit, ...); those about starting a process do not apply.
        As in go-plugin, AutoMTLS is impossible here (no certificates were
        exchanged); ``credentials`` are the application's own TLS, if any.
        ``close()`` calls ``Shutdown`` unless ``config.test``, and never signals
        the process: this host did not start it.
        """
        host = HostConfig.of(host_config, options)
        if host.multiplex:
            # As go-plugin: the multiplexed connection is set up at the handshake.
            raise ValueError("multiplex=True cannot be combined with reattach")
        name = f"pyvider_rpcplugin_sync.plugin.reattached_{config.pid or 0}"
        return cls._started_by(Reattach(config, credentials), host, name)

    @classmethod
    def _started_by(cls, start: Start, config: HostConfig, logger_name: str) -> PluginProcess[Any]:
        """A host whose plugin comes from ``start`` (reattached, or in this process)."""
        self = cls.__new__(cls)
        self._argv = []  # nothing to spawn
        self._config = config
        self._setup(config, logger_name, start)
        return self

    def _setup(self, config: HostConfig, logger_name: str, start: Start) -> None:
        self._start_with = start
        self._reattach: ReattachConfig | None = (
            start.config if isinstance(start, Reattach) else None
        )
        self._stub_cls = config.stub
        self.logger = config.logger or logging.getLogger(logger_name)
        self._interceptors = config.call_interceptors()
        # One for the stderr pipe and StreamStdio's stderr: it logs each line once.
        self._stderr_log = StderrLog(self.logger)
        self._on_exit_thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._life = Lifecycle()
        self._gate = CallGate(self._refusal())  # the application's calls, for the drain
        self._security: SessionSecurity | None = None  # the session's AutoMTLS, once started
        self._stub: StubT | None = None
        self._channel: grpc.Channel | None = None
        self._res = HostResources()
        self._finalizer = weakref.finalize(self, self._res.release)
        # At interpreter exit, at_exit closes open plugins gracefully and in parallel;
        # this last resort (SIGKILL) is for a PluginProcess collected while open.
        self._finalizer.atexit = False
        self.negotiated_version: int | None = None
        self.handshake_line: HandshakeLine | None = None
        self.network: str | None = None
        self.address: str | None = None

    # --- the hot path: no lock, one attribute and a flag -----------------------------

    @property
    def stub(self) -> StubT:
        """The application stub made from ``stub=`` on the shared channel."""
        stub = self._stub  # None unless running
        if stub is None:
            raise self._life.refusal("stub", has_stub=self._stub_cls is not None)
        return stub

    @property
    def channel(self) -> grpc.Channel:
        """The shared, thread-safe ``grpc.Channel`` (rate-limited if ``rate_limit`` was given)."""
        channel = self._channel  # None unless running
        if channel is None:
            raise self._life.refusal("channel")
        return channel

    def make_stub(self, stub_class: StubFactory[_T]) -> _T:
        """Another service's stub on the same channel (typed as what ``stub_class`` makes)."""
        return stub_class(self.channel)

    # --- start -------------------------------------------------------------------------

    def start(self) -> PluginProcess[StubT]:
        """Spawn (or reattach), handshake and connect; raise a typed error on failure."""
        with self._lock:
            stage = self._life.stage
            if stage is not Stage.NEW:
                raise RPCPluginError(
                    f"this PluginProcess is {stage.value}",
                    hint="a PluginProcess starts once; create a new one",
                )
            self._life.advance(Event.START)
            try:
                self._launch()
            except BaseException:
                self._life.advance(Event.START_FAILED)
                self._stub = self._channel = None
                self._finalizer()
                raise
            self._life.advance(Event.STARTED)
            close_at_exit(self, self._config.shutdown_grace + self._config.drain_timeout)
        logger.debug(
            "plugin %s running, pid %s, %s %s",
            self.logger.name,
            self.pid,
            self.network,
            self.address,
        )
        return self

    def _launch(self) -> None:
        deadline = time.monotonic() + self._config.start_timeout  # for the whole start
        hooks = Hooks(self._exit_callback(), self._stderr_log, self._short_name, deadline)
        launched = self._start_with.launch(self._res, self._config, hooks)
        self.negotiated_version, self.handshake_line = launched.version, launched.line
        self._security, self._life.watch = launched.security, launched.watch
        self.network, self.address = launched.network, launched.address
        channel = open_session(
            self._res,
            launched,
            self._config,
            logger=self.logger,
            stderr_log=self._stderr_log,
            name=self._short_name,
            deadline=deadline,
        )
        shared = channel
        if self._interceptors:
            shared = intercepted(channel, self._interceptors)
        shared = GuardedChannel(
            shared,
            self._closed_translator(),
            call_timeout=self._config.call_timeout,
            gate=self._gate,
        )
        self._channel = shared
        self._stub = self._stub_cls(shared) if self._stub_cls is not None else None

    def _exit_callback(self) -> Callable[[int], None]:
        ref = weakref.ref(self)  # the watcher threads must not keep the host alive
        user, name = self._config.on_exit, self.logger.name

        def on_exit(code: int) -> None:
            plugin = ref()
            serving = (Stage.RUNNING, Stage.DRAINING)
            if plugin is not None and plugin._life.advance(Event.EXIT) in serving:
                plugin._stub = plugin._channel = None
                logger.warning("plugin %s exited unexpectedly (code %s)", name, code)
            if user is None:
                return
            # Its own thread: a slow callback must not hold up the reaper (and close()).
            thread = threading.Thread(
                target=notify_exit, args=(user, code, name), name=f"{name}-on-exit", daemon=True
            )
            if plugin is not None:
                plugin._on_exit_thread = thread
            thread.start()

        return on_exit

    def _refusal(self) -> Callable[[], RPCPluginError]:
        ref = weakref.ref(self)  # the gate must not keep the host alive

        def refusal() -> RPCPluginError:
            plugin = ref()
            return plugin._life.refusal("call") if plugin else PluginClosed("the plugin is closed")

        return refusal

    def _closed_translator(self) -> Translate:
        ref = weakref.ref(self)  # stubs must not keep the host alive

        def translate(exc: BaseException) -> PluginClosed | None:
            plugin = ref()
            if plugin is None:
                return PluginClosed("the plugin is closed")
            plugin._gone(exc)
            return plugin._life.closed_error()

        return translate

    def _gone(self, exc: BaseException) -> bool:
        """Whether a failed library or application call means the plugin is gone."""
        if self._life.call_failed(exc, _DEATH_NOTICE):
            self._stub = self._channel = None
        return not self._life.usable

    @property
    def broker(self) -> Broker:
        """The session's GRPCBroker: serve callbacks to the plugin, dial its brokered servers."""
        broker = self._res.broker  # calls still draining may use it
        if broker is None or self._life.stage not in (Stage.RUNNING, Stage.DRAINING):
            raise self._life.refusal("broker")
        return broker

    @property
    def _short_name(self) -> str:
        return self.logger.name.rsplit(".", 1)[-1]

    # --- use -----------------------------------------------------------------------------

    def ping(self, timeout: float = DEFAULT_PING_TIMEOUT) -> bool:
        """Health-check service "plugin"; True, or a typed error (PluginClosed, TransportError)."""
        timeout = seconds("timeout", timeout, zero=False)
        connection = self._res.connection
        if connection is None or not self._life.usable:
            raise self._life.refusal("ping")
        try:
            if self._config.metrics is None:
                response = health_check(connection.channel, timeout)
            else:  # the library's own call, visible in the application's metrics
                response = _measured_ping(self._config, connection.channel, timeout)
        except grpc.RpcError as exc:
            if self._gone(exc):
                raise self._life.refusal("ping") from None
            raise connection.failure(exc) from None
        return check_serving(response)

    @property
    def pid(self) -> int | None:
        if self._res.child is not None:
            return self._res.child.pid
        return self._reattach.pid if self._reattach is not None else None

    @property
    def returncode(self) -> int | None:
        """The exit code once the plugin has exited (negative: killed by that signal)."""
        child = self._res.child
        return child.returncode if child is not None and child.exited.is_set() else None

    def wait_exit(self, timeout: float = 0) -> int | None:
        """Wait up to ``timeout`` seconds for the plugin process to exit; its exit code
        (negative: killed by that signal; -1 for a reattached plugin), or None while it
        runs. Ends nothing: ``close`` does that."""
        timeout = seconds("timeout", timeout)
        watch = self._life.watch
        return watch.wait_exit(timeout) if watch is not None else None

    @property
    def stderr_tail(self) -> str:
        """The last lines the plugin wrote to stderr."""
        return self._res.child.stderr_tail() if self._res.child is not None else ""

    def reattach_config(self) -> ReattachConfig:
        """How another host could reach this running plugin (go-plugin's ReattachConfig())."""
        if self._reattach is not None:
            return self._reattach
        if self.network is None or self.address is None:
            raise self._life.refusal("reattach_config")
        from .._protocol.reattach import ReattachConfig  # most hosts never reattach

        return ReattachConfig(
            network=self.network,
            address=self.address,
            protocol=PROTOCOL_GRPC,
            protocol_version=self.negotiated_version,
            pid=self.pid,
        )

    # --- close -------------------------------------------------------------------------

    def close(self, grace: float | None = None) -> None:
        """Shut the plugin down: refuse new calls, wait up to ``drain_timeout`` for the
        calls in flight, then Shutdown, ``grace`` seconds (default ``shutdown_grace``) to
        exit, SIGTERM, SIGKILL; then reap, close the channel, join threads, remove the
        temp dir. ``grace`` is the word for it on both sides (``PluginServer.stop(grace)``).

        Idempotent and thread-safe; never raises for a plugin that misbehaves on the way out.
        """
        grace = self._config.shutdown_grace if grace is None else seconds("grace", grace)
        with self._lock:
            if self._life.stage in (Stage.CLOSED, Stage.ABANDONED):
                return
            running = self._life.advance(Event.CLOSE) is Stage.RUNNING
            self._gate.close()  # new calls raise PluginClosed from now on
            self._stub, self._channel = None, None
            forget(self)
            try:
                if running:
                    self._drain()
                    self._res.shutdown(grace, self._reattach, self.logger.name)
            except Exception:
                logger.warning("error while closing plugin %s", self.logger.name, exc_info=True)
            finally:
                self._finalizer()
                self._life.advance(Event.CLOSED)
        notifier = self._on_exit_thread
        if notifier is not None and notifier is not threading.current_thread():
            notifier.join(READER_JOIN_TIMEOUT)

    def _drain(self) -> None:
        """Wait up to ``drain_timeout`` for the application's calls in flight, then for
        those on the brokered channels this host dialed (refused from then on), within
        the same period; then the stage moves on, and the calls still running are cut
        (``PluginClosing``; ``BrokerClosed`` on a brokered channel)."""
        name, period = self.logger.name, self._config.drain_timeout
        ends = time.monotonic() + period
        if running := self._gate.in_flight():
            logger.debug("plugin %s: draining %d call(s) for up to %g s", name, running, period)
            if left := self._gate.drain(period):
                logger.warning("plugin %s: cutting %d call(s) after the drain", name, left)
        broker = self._res.broker
        if broker is not None and (left := broker._drain(max(0.0, ends - time.monotonic()))):
            logger.warning("plugin %s: cutting %d brokered call(s) after the drain", name, left)
        self._life.advance(Event.SHUTDOWN)

    def abandon(self) -> None:
        """Forget this plugin without touching it, in a process forked from its host.

        A forked child inherits the parent's ``PluginProcess`` but not its threads; the
        plugin still belongs to the parent. ``abandon()`` (in the child) drops it: no
        ``Shutdown``, no signal, no channel close, no socket removal; the objects are
        kept referenced so that no finalizer runs in the child either. Later use raises
        ``PluginClosed``. Takes no lock (a lock may have been held across the fork).
        ``SharedPlugin`` does this by itself after ``os.fork()``.
        """
        self._life.advance(Event.ABANDON)
        self._stub = self._channel = None
        self._finalizer.detach()  # it would kill the parent's plugin
        ABANDONED.append(self)

    def _kill_at_exit(self) -> None:
        """At interpreter exit, past the exit's bound: SIGKILL, no wait, no lock."""
        child = self._res.child
        if child is not None:
            child.signal_group(signal.SIGKILL)

    def __enter__(self) -> PluginProcess[StubT]:
        if self._life.stage is Stage.NEW:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.close()
        except Exception:
            if exc_type is None:
                raise
            logger.warning("closing plugin %s failed", self.logger.name, exc_info=True)

    def __repr__(self) -> str:
        what = self._argv[0] if self._argv else f"reattach {self.address}"
        return f"<PluginProcess {what!r} pid={self.pid} {self._life.stage.value}>"


def _measured_ping(config: HostConfig, channel: grpc.Channel, timeout: float) -> Any:
    from .._metrics.client import measured

    assert config.metrics is not None
    return measured(config.metrics, HEALTH_CHECK, lambda: health_check(channel, timeout))
