"""The one host configuration, and the launcher seam through which a host starts its plugin.

``HostConfig`` is what ``PluginProcess``, ``PluginProcess.reattach``,
``SharedPlugin`` and the ``rpcplugin_process`` fixture take (as a value or as
keyword arguments), frozen and validated once when it is built. A
``Launcher`` turns the plugin's command into the command that is run (a
sandbox, another user, a container) and translates the address the plugin
prints into the one the host dials, as go-plugin's ``RunnerFunc`` and
``AddrTranslator`` do.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import grpc

from .._constants import (
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_DRAIN_TIMEOUT,
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_SHUTDOWN_GRACE,
    DEFAULT_START_TIMEOUT,
    NETWORK_TCP,
    NETWORK_UNIX,
    RateLimitMode,
    Transport,
)
from .._protocol.handshake import HandshakeConfig
from .._seconds import seconds
from .._transport.guard import check_call_timeout
from .channel import channel_options, check_interceptors, rate_limit_interceptor
from .runner import Stdin
from .stdio import StdioSink

if TYPE_CHECKING:
    from .._metrics.hook import CallMetrics
    from .._ratelimit.bucket import TokenBucket
    from .breaker import CircuitBreaker
    from .retry import RetryPolicy

# Any grpc client interceptor (unary/stream, unary/stream), or OpenTelemetry's.
ClientInterceptor = Any


@dataclass(frozen=True)
class CommandLauncher:
    """Starts the plugin's command behind ``prefix``, a command of your own that runs it.

    ``CommandLauncher(["setpriv", "--reuid=nobody", "--clear-groups", "--"])`` runs the
    plugin as another user; ``["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--"]``
    in a sandbox. The prefix must run the plugin with the same stdin, stdout and
    stderr (``exec`` it), so that the host reads its handshake line and log, and
    stay in the host's process group so that closing the plugin ends it.
    ``translate_address(network, address)`` maps the address in the plugin's handshake
    line to the one the host dials (go-plugin's ``AddrTranslator.PluginToHost``),
    for plugins in another network namespace or container.
    """

    prefix: Sequence[str] = ()
    translate_address: Callable[[str, str], tuple[str, str]] | None = None

    def command(self, argv: Sequence[str]) -> list[str]:
        """The command that is run for the plugin's ``argv``."""
        return [*self.prefix, *argv]

    def host_address(self, network: str, address: str) -> tuple[str, str]:
        """Where the host dials the plugin that printed ``network`` and ``address``."""
        if self.translate_address is None:
            return network, address
        return self.translate_address(network, address)


DIRECT = CommandLauncher()


@dataclass(frozen=True, eq=False)
class HostConfig:
    """How a host starts, reaches and closes one plugin.

    Args:
        handshake: cookie and protocol versions; default: pyvider-rpcplugin's.
        stub: a stub class (``KVStub``); ``plugin.stub`` is made from it on the channel.
        tls: AutoMTLS (both sides verify); False for plaintext.
        env: variables added to the plugin's environment.
        skip_host_env: give the plugin only ``env`` and the protocol's variables, none
            of the host's environment (go-plugin's ``SkipHostEnv``).
        cwd: the plugin's working directory.
        start_timeout: seconds the whole start may take: spawn, handshake line,
            connect and first health check (``StartTimeout`` when it runs out).
        shutdown_grace: seconds a plugin gets to exit after ``Shutdown`` on close.
        call_timeout: the deadline, in seconds, of each unary and stream-unary
            application call made without ``timeout=`` (grpc's own per-call deadline;
            ``CallTimeout`` when it runs out); None for none. Response streams get no
            deadline but their own ``timeout=``.
        drain_timeout: seconds ``close()`` waits for the application's calls in flight
            before it sends ``Shutdown``; new calls are refused at once.
        connect_timeout: seconds the connect step (handshake line to the first health
            answer) may take, within ``start_timeout`` (``TransportError`` when it runs out).
        transport: ``"unix"`` or ``"tcp"``, asked of the plugin via ``PLUGIN_TRANSPORT``.
        unix_socket_dir: where the host makes the plugin's private socket directory
            (default: the temp dir), passed as ``PLUGIN_UNIX_SOCKET_DIR``.
        unix_socket_group: a group (name or id) that gets the socket directory (mode
            0770) and, through ``PLUGIN_UNIX_SOCKET_GROUP``, the plugin's socket: for a
            plugin run as another user.
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
        launcher: how the plugin's command is run and its address reached; default:
            the command as given (see ``CommandLauncher``).
        retry: a ``RetryPolicy``: grpc retries the calls of its (idempotent) methods
            that fail with UNAVAILABLE, with backoff and jitter, within the call's
            deadline; none by default.
        circuit_breaker: a ``CircuitBreaker``: after its threshold of consecutive
            failed or timed-out calls, calls fail fast with ``CircuitOpen`` for a
            cool-down, then a few trial calls decide; none by default.
        metrics: a ``CallMetrics`` hook (``CallStats``, or one of your own) told of each
            application call and each ``ping()``: method, final status, seconds; none
            by default (nothing on the call path).
        multiplex: go-plugin 1.6's multiplexed broker (``PLUGIN_MULTIPLEX_GRPC``): the
            host dials the plugin once and the main connection and every brokered one
            are yamux streams over it; ``MultiplexNotSupported`` when the plugin cannot.
            Not with ``PluginProcess.reattach``.
    """

    handshake: HandshakeConfig = field(default_factory=HandshakeConfig)
    stub: Callable[[grpc.Channel], Any] | None = None
    tls: bool = True
    env: Mapping[str, str] = field(default_factory=dict[str, str])
    skip_host_env: bool = False
    cwd: str | os.PathLike[str] | None = None
    start_timeout: float = DEFAULT_START_TIMEOUT
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    call_timeout: float | None = DEFAULT_CALL_TIMEOUT
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT
    transport: Transport | None = None
    unix_socket_dir: str | os.PathLike[str] | None = None
    unix_socket_group: str | None = None
    checksum: str | None = None
    checksum_file: str | os.PathLike[str] | None = None
    logger: logging.Logger | None = None
    rate_limit: TokenBucket | None = None
    rate_limit_mode: RateLimitMode = "wait"
    stdin: Stdin = None
    stdio_stdout: StdioSink | None = None
    stdio_stderr: StdioSink | None = None
    interceptors: Sequence[ClientInterceptor] = ()
    channel_options: Sequence[tuple[str, Any]] = ()
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    on_exit: Callable[[int], None] | None = None
    launcher: CommandLauncher = DIRECT
    retry: RetryPolicy | None = None
    circuit_breaker: CircuitBreaker | None = None
    metrics: CallMetrics | None = None
    multiplex: bool = False
    # Derived once from the fields above (never given).
    _limiter: ClientInterceptor | None = field(init=False, repr=False, default=None)
    _grpc_options: tuple[tuple[str, Any], ...] = field(init=False, repr=False, default=())

    def __post_init__(self) -> None:
        if self.transport not in (None, NETWORK_UNIX, NETWORK_TCP):
            raise ValueError(f"transport must be 'unix', 'tcp' or None, not {self.transport!r}")
        fix = object.__setattr__  # frozen: normalise once, here
        fix(self, "call_timeout", check_call_timeout(self.call_timeout))
        fix(self, "start_timeout", seconds("start_timeout", self.start_timeout, zero=False))
        fix(self, "connect_timeout", seconds("connect_timeout", self.connect_timeout, zero=False))
        fix(self, "shutdown_grace", seconds("shutdown_grace", self.shutdown_grace))
        fix(self, "drain_timeout", seconds("drain_timeout", self.drain_timeout))
        fix(self, "handshake", self.handshake or HandshakeConfig())
        fix(self, "env", dict(self.env or {}))
        for name in ("cwd", "checksum_file", "unix_socket_dir"):
            value = getattr(self, name)
            fix(self, name, os.fspath(value) if value is not None else None)
        fix(self, "interceptors", check_interceptors(self.interceptors))
        fix(self, "channel_options", tuple(self.channel_options))
        # A bad mode or size fails now, not at the start or the first call.
        fix(self, "_limiter", rate_limit_interceptor(self.rate_limit, self.rate_limit_mode))
        options = channel_options(self.max_message_size, self.channel_options)
        if self.retry is not None:
            from .retry import retry_options

            options = (*options, *retry_options(self.retry, self.channel_options))
        fix(self, "_grpc_options", options)
        if self.circuit_breaker is not None:
            from .breaker import CircuitBreaker

            if not isinstance(self.circuit_breaker, CircuitBreaker):
                raise TypeError(
                    f"circuit_breaker must be a CircuitBreaker, not {self.circuit_breaker!r}"
                )
        if self.metrics is not None:
            from .._metrics.hook import check_metrics

            check_metrics(self.metrics)

    @classmethod
    def of(cls, config: HostConfig | None, options: Mapping[str, Any]) -> HostConfig:
        """``config`` with ``options`` (``HostConfig`` fields) replaced; a TypeError for others."""
        base = config if config is not None else _DEFAULT
        return dataclasses.replace(base, **options) if options else base

    def call_interceptors(self) -> tuple[ClientInterceptor, ...]:
        """The application's interceptors, then the rate limiter's; empty when none is asked.

        Outermost first: the metrics see every call as its caller does (refusals
        included), a tracing span covers the time spent waiting for a token, an open
        circuit breaker refuses a call before it waits for one.
        """
        limiter, breaker = self._limiter, self.circuit_breaker
        return (
            *((_metrics_interceptor(self.metrics),) if self.metrics is not None else ()),
            *self.interceptors,
            *((breaker.interceptor(),) if breaker is not None else ()),
            *((limiter,) if limiter is not None else ()),
        )

    def resolved_channel_options(self) -> tuple[tuple[str, Any], ...]:
        """The channel's grpc options: message sizes (unless ``channel_options`` set them),
        then ``channel_options``."""
        return self._grpc_options

    def plugin_base_environment(self) -> dict[str, str]:
        """The plugin's environment before the protocol's variables: the host's (unless
        ``skip_host_env``), then ``env``. Read when a plugin is built, then inherited."""
        base = {} if self.skip_host_env else dict(os.environ)
        return {**base, **self.env}


_DEFAULT = HostConfig()


def _metrics_interceptor(metrics: CallMetrics) -> ClientInterceptor:
    from .._metrics.client import MetricsClientInterceptor

    return MetricsClientInterceptor(metrics)
