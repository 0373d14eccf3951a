"""PluginProcess: the host driver (protocol.md §2, §3.5, §4.1, §5).

The start sequence is in ``start`` (spawn, handshake line, AutoMTLS,
channel, broker and stdio streams); this class keeps the state, hands out
stubs behind ``_transport.guard``'s closed-plugin translation, and closes with
``Shutdown`` -> grace -> SIGTERM -> SIGKILL -> reap -> remove the socket dir.
Between ``plugin.stub`` and the channel sits that one call frame, and grpc
interceptors only when ``rate_limit`` or ``interceptors`` ask for them.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

import grpc

from .._constants import (
    DEATH_NOTICE,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_PING_TIMEOUT,
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_START_TIMEOUT,
    NETWORK_TCP,
    NETWORK_UNIX,
    PROTOCOL_GRPC,
    READER_JOIN_TIMEOUT,
)
from .._errors import (
    PluginClosed,
    RPCPluginError,
)
from .._protocol.handshake import HandshakeConfig, HandshakeLine
from .._protocol.reattach import ReattachConfig, reattach_version
from .._services.health import check_serving, health_check
from .._transport.guard import GuardedChannel, Translate
from .channel import HostResources, intercepted
from .env import (
    command_argv,
)
from .lifecycle import Event, Lifecycle, Stage
from .options import (
    ABANDONED,
    ClientInterceptor,
    HostOptions,
    call_interceptors,
    channel_options_of,
    notify_exit,
)
from .runner import Stdin
from .start import LaunchSpec, launch, open_session, watch_reattached
from .stdio import StderrLog, StdioSink, plugin_logger_name

if TYPE_CHECKING:
    from .._broker.broker import Broker
    from .._ratelimit.bucket import TokenBucket
    from .._transport.dial import SessionSecurity

logger = logging.getLogger("pyvider_rpcplugin_sync.host")

# How long a failed call waits for the death watch to confirm an exit (the tests stretch it).
_DEATH_NOTICE = DEATH_NOTICE


class PluginProcess:
    """A go-plugin gRPC plugin run as a subprocess; a context manager.

    ``with PluginProcess(["./plugin"], stub=KVStub) as plugin: plugin.stub.Get(...)``.
    Thread-safe: share one instance (and its ``stub``/``channel``) between threads.

    Args:
        cmd: the plugin command, an argv list or one string split like a shell would.
        handshake: cookie and protocol versions; default: pyvider-rpcplugin's.
        stub: a stub class (``KVStub``); ``plugin.stub`` is made from it on the channel.
        tls: AutoMTLS (both sides verify); False for plaintext.
        env: added to the host's own environment for the plugin.
        cwd: the plugin's working directory.
        start_timeout: seconds to wait for the handshake line.
        shutdown_grace: seconds a plugin gets to exit after ``Shutdown`` on close.
        connect_timeout: seconds to wait for the first connection to the plugin.
        transport: ``"unix"`` or ``"tcp"``, asked of the plugin via ``PLUGIN_TRANSPORT``.
        checksum: the SHA-256 digest (64 hex digits) the program file must have; checked
            before it runs.
        checksum_file: the file to checksum, when ``cmd[0]`` is an interpreter.
        logger: where the plugin's stderr log lines go; default
            ``pyvider_rpcplugin_sync.plugin.<name>``.
        rate_limit: a ``TokenBucket`` every application call takes a token from.
        rate_limit_mode: ``"wait"`` for a token, or ``"fail"`` with ``RateLimited``.
        stdin: the plugin's stdin (default ``/dev/null``).
        stdio_stdout: receives the bytes the plugin writes to its stdout (``StreamStdio``).
        stdio_stderr: receives the bytes the plugin writes to ``sys.stderr`` (``StreamStdio``).
        interceptors: client interceptors on the application's calls, outermost
            first: grpc's (``grpc.UnaryUnaryClientInterceptor`` and the like) and
            opentelemetry-instrumentation-grpc's ``client_interceptor()``. The
            library's own calls (health, ``Shutdown``, stdio) do not pass through them.
        channel_options: extra grpc channel options, e.g.
            ``[("grpc.keepalive_time_ms", 10000), ("grpc.default_compression_algorithm", 2)]``;
            message size keys given here replace ``max_message_size``.
        max_message_size: the largest message, in bytes, sent or received; default
            ``DEFAULT_MAX_MESSAGE_SIZE`` (2**31 - 1, as go-plugin's host), the same default
            as ``PluginServer``.
        on_exit: ``on_exit(returncode)``, called once from a library thread when the
            plugin process exits for any reason (crash, kill, ``close``, failed start)
            with its exit code (negative: killed by that signal; -1 for a reattached
            plugin, whose code cannot be known). ``close`` returns after it ran.
            Exceptions it raises are logged.
    """

    def __init__(
        self,
        cmd: str | Sequence[str],
        *,
        handshake: HandshakeConfig | None = None,
        stub: Callable[[grpc.Channel], Any] | None = None,
        tls: bool = True,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        transport: str | None = None,
        checksum: str | None = None,
        checksum_file: str | os.PathLike[str] | None = None,
        logger: logging.Logger | None = None,
        rate_limit: TokenBucket | None = None,
        rate_limit_mode: str = "wait",
        stdin: Stdin = None,
        stdio_stdout: StdioSink | None = None,
        stdio_stderr: StdioSink | None = None,
        interceptors: Sequence[ClientInterceptor] = (),
        channel_options: Sequence[tuple[str, Any]] = (),
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self._argv = command_argv(cmd)
        if transport not in (None, NETWORK_UNIX, NETWORK_TCP):
            raise ValueError(f"transport must be 'unix', 'tcp' or None, not {transport!r}")
        options = HostOptions(
            handshake=handshake,
            stub=stub,
            shutdown_grace=shutdown_grace,
            connect_timeout=connect_timeout,
            logger=logger,
            rate_limit=rate_limit,
            rate_limit_mode=rate_limit_mode,
            stdio_stdout=stdio_stdout,
            stdio_stderr=stdio_stderr,
            interceptors=interceptors,
            channel_options=channel_options,
            max_message_size=max_message_size,
            on_exit=on_exit,
        )
        self._setup(options, plugin_logger_name(self._argv))
        self._spec: LaunchSpec | None = LaunchSpec(
            argv=self._argv,
            # The host's environment is read now (when the object is built), then inherited.
            environ={**os.environ, **(env or {})},
            cwd=os.fspath(cwd) if cwd is not None else None,
            stdin=stdin,
            tls=tls,
            transport=transport,
            checksum=checksum,
            checksum_file=os.fspath(checksum_file) if checksum_file is not None else None,
            start_timeout=start_timeout,
        )

    @classmethod
    def reattach(
        cls,
        config: ReattachConfig,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        **options: Unpack[HostOptions],
    ) -> PluginProcess:
        """A host for a plugin that already runs (no spawn, no handshake); start it with ``with``.

        ``options`` are PluginProcess's (handshake, stub, logger, rate_limit, ...).
        As in go-plugin, AutoMTLS is impossible here (no certificates were
        exchanged); ``credentials`` are the application's own TLS, if any.
        ``close()`` calls ``Shutdown`` unless ``config.test``, and never signals
        the process: this host did not start it.
        """
        self = cls.__new__(cls)
        self._argv, self._spec = [], None  # nothing to spawn
        self._setup(options, f"pyvider_rpcplugin_sync.plugin.reattached_{config.pid or 0}")
        self._reattach, self._credentials_given = config, credentials
        return self

    def _setup(self, options: HostOptions, logger_name: str) -> None:
        self._handshake = options.get("handshake") or HandshakeConfig()
        self._stub_cls = options.get("stub")
        self.logger = options.get("logger") or logging.getLogger(logger_name)
        self._shutdown_grace = options.get("shutdown_grace", DEFAULT_SHUTDOWN_GRACE)
        self._connect_timeout = options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
        self._interceptors = call_interceptors(options)
        self._channel_options = channel_options_of(options)
        self._on_exit = options.get("on_exit")
        # One for the stderr pipe and StreamStdio's stderr: it logs each line once.
        self._stderr_log = StderrLog(self.logger)
        self._on_exit_thread: threading.Thread | None = None
        self._stdio = (options.get("stdio_stdout"), options.get("stdio_stderr"))
        self._reattach: ReattachConfig | None = None
        self._credentials_given: grpc.ChannelCredentials | None = None
        self._lock = threading.RLock()
        self._life = Lifecycle()
        self._stub: Any = None
        self._channel: grpc.Channel | None = None
        self._res = HostResources()
        self._security: SessionSecurity | None = None
        self._finalizer = weakref.finalize(self, self._res.release)
        self.negotiated_version: int | None = None
        self.handshake_line: HandshakeLine | None = None
        self.network: str | None = None
        self.address: str | None = None

    # --- the hot path: no lock, one attribute and a flag -----------------------------

    @property
    def stub(self) -> Any:
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

    def make_stub(self, stub_class: Callable[[grpc.Channel], Any]) -> Any:
        """Another service's stub on the same channel."""
        return stub_class(self.channel)

    # --- start -------------------------------------------------------------------------

    def start(self) -> PluginProcess:
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
                if self._reattach is not None:
                    self._attach(self._reattach)
                elif self._spec is not None:
                    self._spawn(self._spec)
            except BaseException:
                self._life.advance(Event.START_FAILED)
                self._stub = self._channel = None
                self._finalizer()
                raise
            self._life.advance(Event.STARTED)
        logger.debug(
            "plugin %s running, pid %s, %s %s",
            self.logger.name,
            self.pid,
            self.network,
            self.address,
        )
        return self

    def _spawn(self, spec: LaunchSpec) -> None:
        launched = launch(
            spec,
            self._handshake,
            self._res,
            stderr_log=self._stderr_log,
            on_exit=self._exit_callback(),
            name=self._short_name,
        )
        self.negotiated_version, self.handshake_line = launched.version, launched.line
        self._security = launched.security
        self._life.watch = self._res.child
        self._connect(launched.line.network, launched.line.address)

    def _attach(self, config: ReattachConfig) -> None:
        self.negotiated_version = reattach_version(config, self._handshake.protocol_versions)
        watch_reattached(config, self._res, self._exit_callback())
        self._life.watch = self._res.watch
        self._connect(config.network, config.address)

    def _exit_callback(self) -> Callable[[int], None]:
        ref = weakref.ref(self)  # the watcher threads must not keep the host alive
        user, name = self._on_exit, self.logger.name

        def on_exit(code: int) -> None:
            plugin = ref()
            if plugin is not None and plugin._life.advance(Event.EXIT) is Stage.RUNNING:
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

    def _connect(self, network: str, address: str) -> None:
        self.network, self.address = network, address
        channel = open_session(
            self._res,
            network,
            address,
            security=self._security,
            credentials=self._credentials_given,
            channel_options=self._channel_options,
            connect_timeout=self._connect_timeout,
            environ=self._spec.environ if self._spec is not None else {},
            logger=self.logger,
            stdio=self._stdio,
            stderr_log=self._stderr_log,
            name=self._short_name,
        )
        shared = channel
        if self._interceptors:
            shared = intercepted(channel, self._interceptors)
        shared = GuardedChannel(shared, self._closed_translator())
        self._channel = shared
        self._stub = self._stub_cls(shared) if self._stub_cls is not None else None

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
        broker = self._res.broker
        if broker is None or not self._life.usable:
            raise self._life.refusal("broker")
        return broker

    @property
    def _short_name(self) -> str:
        return self.logger.name.rsplit(".", 1)[-1]

    # --- use -----------------------------------------------------------------------------

    def ping(self, timeout: float = DEFAULT_PING_TIMEOUT) -> bool:
        """Health-check service "plugin"; True, or a typed error (PluginClosed, TransportError)."""
        connection = self._res.connection
        if connection is None or not self._life.usable:
            raise self._life.refusal("ping")
        try:
            response = health_check(connection.channel, timeout)
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
        return ReattachConfig(
            network=self.network,
            address=self.address,
            protocol=PROTOCOL_GRPC,
            protocol_version=self.negotiated_version,
            pid=self.pid,
        )

    # --- close -------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Shut the plugin down: Shutdown, ``timeout`` (default ``shutdown_grace``) to exit,
        SIGTERM, SIGKILL; then reap, close the channel, join threads, remove the temp dir.

        Idempotent and thread-safe; never raises for a plugin that misbehaves on the way out.
        """
        grace = self._shutdown_grace if timeout is None else timeout
        with self._lock:
            if self._life.stage in (Stage.CLOSED, Stage.ABANDONED):
                return
            running = self._life.advance(Event.CLOSE) is Stage.RUNNING
            self._stub, self._channel = None, None
            try:
                if running:
                    self._res.shutdown(grace, self._reattach, self.logger.name)
            except Exception:
                logger.warning("error while closing plugin %s", self.logger.name, exc_info=True)
            finally:
                self._finalizer()
        notifier = self._on_exit_thread
        if notifier is not None and notifier is not threading.current_thread():
            notifier.join(READER_JOIN_TIMEOUT)

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

    def __enter__(self) -> PluginProcess:
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
