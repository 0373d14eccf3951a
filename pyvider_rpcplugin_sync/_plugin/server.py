"""The plugin side: ``PluginServer`` (embeddable) and ``serve`` (the process driver).

Start-up order follows go-plugin's server.go (docs/protocol.md, "Start-up checks in
the plugin"): cookie, version, listener, services, then one handshake line on the
real stdout.
"""

from __future__ import annotations

import inspect
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from typing import TYPE_CHECKING, Any, cast

import grpc

from .._broker.broker import Broker
from .._broker.mux_serve import MuxServing, multiplex_requested
from .._broker.net import BrokerNetwork
from .._constants import (
    DEFAULT_MAX_MESSAGE_SIZE,
    DEFAULT_MAX_WORKERS,
    DEFAULT_STOP_GRACE,
    ENV_CLIENT_CERT,
    ENV_MULTIPLEX_GRPC,
    ENV_PROTOCOL_VERSIONS,
    ENV_UNIX_SOCKET_DIR,
    INTERNAL_SERVICES,
    NETWORK_UNIX,
    NO_PORT_SHARING,
    RESERVED_STREAM_WORKERS,
    Transport,
    message_size_options,
    overrides_message_size,
)
from .._errors import HandshakeError, ProtocolVersionError, RPCPluginError
from .._protocol.handshake import (
    NOT_A_HOST_MESSAGE,
    HandshakeConfig,
    HandshakeLine,
    cookie_matches,
    negotiate_version,
    parse_protocol_versions,
)
from .._ratelimit.bucket import TokenBucket, bucket_from_env
from .._seconds import optional_seconds, seconds
from .._services.broker import broker_handler
from .._services.controller import controller_handler
from .._services.health import add_health_service
from .._services.stdio import StdioQueue, stdio_handler
from .._transport.dial import SessionSecurity
from .._transport.listener import Listener, bind, bind_bridged, choose_transport

if TYPE_CHECKING:
    from .._metrics.hook import CallMetrics

logger = logging.getLogger("pyvider_rpcplugin_sync.server")

WORKER_THREAD_PREFIX = "plugin-rpc"

# ``register(server)``, or ``register(server, broker)`` to reach the session's GRPCBroker.
Registrar = Callable[[grpc.Server], None] | Callable[[grpc.Server, Broker], None]
Registrars = Registrar | Mapping[int, Registrar]


class _RecordingServer:
    """Passes every call to the real server and records the services registered.

    Reflection must list exactly the app's services; grpcio has no public way
    to ask a server what it serves.
    """

    def __init__(self, server: grpc.Server) -> None:
        self._server = server
        self.service_names: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        for handler in handlers:
            name = getattr(handler, "service_name", lambda: None)()
            if name and name not in self.service_names:
                self.service_names.append(name)
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, handlers: Any) -> None:
        if service_name not in self.service_names:
            self.service_names.append(service_name)
        self._server.add_registered_method_handlers(service_name, handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class PluginServer:
    """A go-plugin gRPC server: internal services, the app's servicers, one listener.

    ``start()`` binds and serves and returns the handshake line; it does not
    print it (``serve()`` does), so a PluginServer can run inside tests and
    other programs.

    Args:
        registrars: ``register(server)``, or ``{protocol_version: register}``.
        handshake: cookie and protocol versions; default: pyvider-rpcplugin's.
        transport: ``"unix"`` or ``"tcp"``; default ``PLUGIN_TRANSPORT``, else unix.
        environ: the environment to read (default ``os.environ``, read once, now).
        max_workers: threads for application RPCs (two more serve the broker and
            stdio streams).
        stop_grace: seconds in-flight RPCs get to finish when the server stops.
        tls: accept AutoMTLS when the host asks for it (``PLUGIN_CLIENT_CERT``).
        reflection: serve gRPC reflection for the registered services.
        rate_limit: a ``TokenBucket`` every application call takes a token from;
            calls without one fail with ``RESOURCE_EXHAUSTED``. Default: from
            ``PLUGIN_RATE_LIMIT_*``, else none.
        rate_limit_per_method: ``{"/pkg.Service/Method": TokenBucket}``: those methods
            use their own bucket instead of ``rate_limit``.
        interceptors: grpc server interceptors, after the rate limiter.
        metrics: a ``CallMetrics`` hook (``CallStats``, or one of your own) told of each
            application call and health check: method, final status, seconds; none by
            default (nothing on the call path). Outermost: it sees rate-limit denials.
        options: extra grpc server options; message size keys given here replace
            ``max_message_size``.
        max_message_size: the largest message, in bytes, received or sent; default
            ``DEFAULT_MAX_MESSAGE_SIZE`` (2**31 - 1), the same default as the host's.
    """

    def __init__(
        self,
        registrars: Registrars,
        *,
        handshake: HandshakeConfig | None = None,
        transport: Transport | None = None,
        environ: Mapping[str, str] | None = None,
        max_workers: int = DEFAULT_MAX_WORKERS,
        stop_grace: float = DEFAULT_STOP_GRACE,
        tls: bool = True,
        reflection: bool = True,
        rate_limit: TokenBucket | None = None,
        rate_limit_per_method: Mapping[str, TokenBucket] | None = None,
        interceptors: Sequence[grpc.ServerInterceptor] = (),
        metrics: CallMetrics | None = None,
        options: Sequence[tuple[str, Any]] = (),
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ) -> None:
        self.handshake = handshake or HandshakeConfig()
        # Environment is read once, when the object is built.
        self._environ = dict(os.environ if environ is None else environ)
        self._registrars = _versioned(registrars, self.handshake)
        self._transport = choose_transport(transport, self._environ)
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._max_workers = max_workers
        self._stop_grace = seconds("stop_grace", stop_grace)
        self._tls = tls
        self._reflection = reflection
        self._interceptors = (
            *_metrics_interceptors(metrics),
            *_rate_limit_interceptors(rate_limit, rate_limit_per_method, self._environ),
            *interceptors,
        )
        # grpc sets SO_REUSEPORT by default: two plugins binding the same free port at
        # once would both get it and the kernel would split the connections.
        self._options = (*NO_PORT_SHARING, *options)
        if not overrides_message_size(self._options):
            self._options = (*message_size_options(max_message_size), *self._options)
        self._server: grpc.Server | None = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._listener: Listener | None = None
        self._mux: MuxServing | None = None
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._stop_requested = False
        self._stdio = StdioQueue()  # what StreamStdio sends the host (serve() fills it)
        self.broker = Broker("plugin")
        self.handshake_line: HandshakeLine | None = None
        self.negotiated_version: int | None = None
        self.service_names: tuple[str, ...] = ()

    # --- start ----------------------------------------------------------------

    def check_cookie(self) -> None:
        if not cookie_matches(self._environ, self.handshake):
            raise HandshakeError(
                NOT_A_HOST_MESSAGE,
                hint=f"a host sets {self.handshake.magic_cookie_key} when it starts the plugin",
            )

    def negotiate(self) -> int:
        raw = self._environ.get(ENV_PROTOCOL_VERSIONS)
        host_versions, rejected = parse_protocol_versions(raw)
        for entry in rejected:
            logger.warning("server sent invalid plugin version %r", entry)
        mine = sorted(self._registrars)
        version = negotiate_version(host_versions, mine)
        if host_versions and version not in host_versions:
            raise ProtocolVersionError(
                f"no common protocol version: the host offers {sorted(set(host_versions))}, "
                f"this plugin supports {mine}",
                hint="upgrade the host or the plugin so that they share a protocol version",
            )
        return version

    def start(self) -> HandshakeLine:
        """Check the cookie, negotiate, bind, register, start; return the handshake line."""
        with self._lock:
            if self._server is not None:
                raise RuntimeError("PluginServer.start() may be called once")
            self.check_cookie()
            version = self.negotiate()
            client_cert = self._environ.get(ENV_CLIENT_CERT, "").strip()
            if client_cert and not self._tls:
                raise HandshakeError(
                    "the host asked for AutoMTLS (PLUGIN_CLIENT_CERT is set) but this "
                    "plugin runs with TLS disabled",
                    hint="enable TLS in the plugin (tls=True) or turn AutoMTLS off in the host",
                )
            self._executor = futures.ThreadPoolExecutor(
                max_workers=self._max_workers + RESERVED_STREAM_WORKERS,
                thread_name_prefix=WORKER_THREAD_PREFIX,
            )
            server = grpc.server(
                self._executor,
                interceptors=list(self._interceptors),
                options=self._options,
            )
            # Multiplexed (the host set PLUGIN_MULTIPLEX_GRPC true): gRPC listens privately
            # and the host's one connection to the public socket carries every stream.
            asked = self._environ.get(ENV_MULTIPLEX_GRPC)
            mux = MuxServing(self._transport, self._environ) if multiplex_requested(asked) else None
            transport = NETWORK_UNIX if mux else self._transport
            environ = mux.backend_environ(self._environ) if mux else self._environ
            cert_field, security = "", None
            try:
                if client_cert:
                    listener, cert_field, security = self._bind_tls(
                        server, client_cert, transport, environ
                    )
                else:
                    listener = bind(server, transport, environ)
            except BaseException:
                if mux is not None:
                    mux.close()
                raise
            session = mux.start(listener.address) if mux else None
            self.broker._attach(self._broker_network(listener, security), mux=session)
            try:
                self._register(server, version)
                server.start()
                if listener.bridge is not None:
                    listener.bridge.start()
            except BaseException:
                self.broker.close()
                server.stop(None)
                listener.remove()
                if mux is not None:
                    mux.close()
                raise
            self._server, self._listener, self._mux = server, listener, mux
            self.negotiated_version = version
            self.handshake_line = HandshakeLine(
                core_version=1,
                app_version=version,
                network=mux.network if mux else listener.network,
                address=mux.address if mux else listener.address,
                server_cert=cert_field,
                # Field 7 only for hosts that asked.
                multiplex=(mux is not None) if asked else None,
            )
            logger.debug(
                "plugin address", extra={"address": listener.address, "network": listener.network}
            )
            return self.handshake_line

    def _bind_tls(
        self, server: grpc.Server, client_cert: str, transport: str, environ: Mapping[str, str]
    ) -> tuple[Listener, str, SessionSecurity]:
        """AutoMTLS: bind with a fresh certificate; return the listener, field 6, the identities.

        grpcio's own TLS when it can verify the host's key, else (P-521: Go
        go-plugin hosts) the ``ssl``-module bridge; both require the host's cert.
        """
        from .._protocol.handshake import encode_cert_field
        from .._transport.tls.certs import (
            generate_identity,
            load_peer_certificate,
            needs_bridge,
            plugin_server_credentials,
            server_ssl_context,
        )

        host_cert = load_peer_certificate(client_cert, source=ENV_CLIENT_CERT)
        identity = generate_identity()
        if needs_bridge(host_cert):
            context = server_ssl_context(identity, host_cert)
            listener = bind_bridged(server, transport, environ, context)
        else:
            credentials = plugin_server_credentials(host_cert, identity)
            listener = bind(server, transport, environ, credentials)
        security = SessionSecurity(identity, host_cert)
        return listener, encode_cert_field(identity.cert_der), security

    def _broker_network(
        self, listener: Listener, security: SessionSecurity | None
    ) -> BrokerNetwork:
        """Brokered servers listen like the main one: same transport, same socket directory."""
        environ = dict(self._mux.backend_environ(self._environ) if self._mux else self._environ)
        if listener.network == NETWORK_UNIX:
            environ[ENV_UNIX_SOCKET_DIR] = os.path.dirname(listener.address)
        return BrokerNetwork(listener.network, environ, security)

    def _register(self, server: grpc.Server, version: int) -> None:
        add_health_service(server)
        server.add_generic_rpc_handlers(
            (
                controller_handler(self.request_stop),
                stdio_handler(self._stdio),
                broker_handler(self.broker),
            )
        )
        # A proxy of the real server: registrars get what they would get from grpc.
        recording = _RecordingServer(server)
        recorder = cast(grpc.Server, recording)
        registrar = self._registrars[version]
        if _takes_broker(registrar):
            cast("Callable[[grpc.Server, Broker], None]", registrar)(recorder, self.broker)
        else:
            cast("Callable[[grpc.Server], None]", registrar)(recorder)
        self.service_names = tuple(recording.service_names)
        if self._reflection:
            from grpc_reflection.v1alpha import reflection

            names = (
                *self.service_names,
                *sorted(
                    INTERNAL_SERVICES
                    - {
                        "grpc.reflection.v1alpha.ServerReflection",
                        "grpc.reflection.v1.ServerReflection",
                    }
                ),
                reflection.SERVICE_NAME,
            )
            reflection.enable_server_reflection(names, server)

    # --- stop -----------------------------------------------------------------

    @property
    def address(self) -> str | None:
        return self._listener.address if self._listener else None

    def request_stop(self) -> None:
        """Stop soon, from another thread; safe inside an RPC handler and signal handlers."""
        with self._lock:
            if self._stop_requested:
                return
            self._stop_requested = True
        # grpcio's stop lets in-flight RPCs finish within the grace period, so
        # the Shutdown reply still leaves; the stop itself must not run here.
        threading.Thread(target=self.stop, name="plugin-stop", daemon=True).start()

    def stop(self, grace: float | None = None) -> None:
        """Stop serving, wait for in-flight RPCs up to ``grace`` seconds, remove the socket."""
        grace = optional_seconds("grace", grace)
        with self._lock:
            self._stop_requested = True
            server, listener = self._server, self._listener
            self._listener = None
        if server is not None:
            self._stdio.close()
            self.broker.close()
            server.stop(self._stop_grace if grace is None else grace).wait()
        if self._executor is not None:
            # Idle workers end now; grpc never shuts its executor down.
            self._executor.shutdown(wait=False, cancel_futures=True)
        if listener is not None:
            listener.remove()
        if self._mux is not None:
            self._mux.close()
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stopped; False if ``timeout`` passed first."""
        return self._stopped.wait(optional_seconds("timeout", timeout))

    def __enter__(self) -> PluginServer:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _rate_limit_interceptors(
    bucket: TokenBucket | None,
    per_method: Mapping[str, TokenBucket] | None,
    environ: Mapping[str, str],
) -> tuple[grpc.ServerInterceptor, ...]:
    """The limiter, only when a limit is set: no interceptor on an unlimited server."""
    try:  # checked even when the code sets the limit: a bad variable is a mistake
        from_env = bucket_from_env(environ)
    except ValueError as exc:
        raise RPCPluginError(
            f"invalid rate limit configuration: {exc}",
            hint="PLUGIN_RATE_LIMIT_* must be positive numbers (and ENABLED true or false)",
        ) from None
    if bucket is None and not per_method:
        bucket = from_env
    if bucket is None and not per_method:
        return ()
    from .._ratelimit.interceptors import RateLimitServerInterceptor

    return (RateLimitServerInterceptor(bucket, per_method=per_method),)


def _versioned(registrars: Registrars, handshake: HandshakeConfig) -> dict[int, Registrar]:
    if callable(registrars):
        return dict.fromkeys(handshake.protocol_versions, registrars)
    versions = dict(registrars)
    if not versions or not all(isinstance(v, int) and v > 0 for v in versions):
        raise ValueError("versioned registrars need positive int protocol versions as keys")
    if not all(callable(r) for r in versions.values()):
        raise TypeError("every versioned registrar must be callable(server[, broker])")
    return versions


def _takes_broker(registrar: Registrar) -> bool:
    """True for ``register(server, broker)``: two or more positional parameters."""
    try:
        parameters = inspect.signature(registrar).parameters.values()
    except (TypeError, ValueError):
        return False  # no signature (some builtins): the plain form
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in parameters if p.kind in kinds]
    return len(positional) >= 2


def _metrics_interceptors(metrics: CallMetrics | None) -> tuple[grpc.ServerInterceptor, ...]:
    if metrics is None:
        return ()
    from .._metrics.hook import check_metrics
    from .._metrics.server import MetricsServerInterceptor

    check_metrics(metrics)
    return (MetricsServerInterceptor(metrics),)
