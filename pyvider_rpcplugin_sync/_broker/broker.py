"""GRPCBroker: extra gRPC connections between host and plugin, by id.

The wire is in docs/protocol.md, "GRPCBroker".

One ``Broker`` per plugin session on each side (``plugin.broker`` on the
host, the second argument of ``register(server, broker)`` in a plugin), with
go-plugin's semantics: ``Broker.next_id`` hands out ids,
``Broker.accept_and_serve`` serves a fresh gRPC server and announces its
address over ``plugin.GRPCBroker/StartStream``, ``Broker.dial`` waits (5 s
by default) for the peer's announcement of an id and connects to it.
Announcements nobody dials are dropped after 5 s. Closing the session stops
every brokered server and closes every brokered channel. In a multiplexed session
nothing is announced: dialing knocks instead (``knock``), over yamux streams (``mux``).
"""

from __future__ import annotations

import collections
import itertools
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

import grpc

from .._constants import (
    BROKER_DIAL_TIMEOUT,
    BROKER_INFO_LIFETIME,
    BROKER_MAX_ID,
    BROKER_SERVER_WORKERS,
    DEFAULT_CALL_TIMEOUT,
    DEFAULT_STOP_GRACE,
    SOCKET_DIR_PREFIX,
)
from .._errors import BrokerClosed, BrokerError, BrokerTimeout
from .._protos.goplugin_pb2 import ConnInfo
from .._transport.guard import check_call_timeout
from .._transport.listener import Listener
from .knock import KnockingBroker
from .mux import MuxSession
from .net import BrokeredChannel, BrokerNetwork

logger = logging.getLogger("pyvider_rpcplugin_sync.broker")

ServerRegistrar = Callable[[grpc.Server], None]


class BrokeredServer:
    """A gRPC server started by ``Broker.accept_and_serve``; a context manager.

    It serves until ``stop`` or until the broker's session ends.
    """

    def __init__(
        self,
        service_id: int,
        server: grpc.Server,
        executor: futures.ThreadPoolExecutor,
        listener: Listener,
        on_stop: Callable[[BrokeredServer], None],
    ) -> None:
        self.service_id = service_id
        self.network = listener.network
        self.address = listener.address
        self._server = server
        self._executor = executor
        self._listener = listener
        self._on_stop: Callable[[BrokeredServer], None] | None = on_stop
        self._lock = threading.Lock()
        self._stopped = threading.Event()

    def stop(self, grace: float | None = DEFAULT_STOP_GRACE) -> None:
        """Stop serving (in-flight calls get ``grace`` seconds) and remove the listener."""
        with self._lock:
            on_stop, self._on_stop = self._on_stop, None
        if on_stop is None:
            self._stopped.wait()
            return
        try:
            self._server.stop(grace).wait()
            # Idle workers end now; grpc never shuts its executor down.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._listener.remove()
        finally:
            on_stop(self)
            self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until stopped; False if ``timeout`` passed first."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> BrokeredServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "serving"
        return f"<BrokeredServer id {self.service_id} {self.network}:{self.address} {state}>"


class Broker(KnockingBroker):
    """go-plugin's GRPCBroker for one plugin session; thread-safe.

    Ids are plain ints (uint32 on the wire). The application carries them in its
    own messages: one side calls ``next_id()`` and ``accept_and_serve(id, ...)``,
    sends the id to the other side, which calls ``dial(id)``.
    """

    def __init__(self, side: str) -> None:
        self._side = side
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._outgoing: collections.deque[ConnInfo] = collections.deque()
        self._parked: dict[int, tuple[ConnInfo, float]] = {}
        self._servers: dict[int, BrokeredServer | None] = {}
        self._channels: set[BrokeredChannel] = set()
        self._on_close: list[Callable[[], None]] = []
        self._network: BrokerNetwork | None = None
        self._bridge_dir: str | None = None
        self._closed = False
        self._clock: Callable[[], float] = time.monotonic
        self._mux: MuxSession | None = None
        self._knock_lock = threading.Lock()  # knocks are serialised, as in go-plugin

    # --- public API -----------------------------------------------------------

    def next_id(self) -> int:
        """A new id, unique on this side of the session (1, 2, 3, ...)."""
        with self._cond:
            return next(self._ids)

    @property
    def closed(self) -> bool:
        return self._closed

    def accept_and_serve(
        self,
        service_id: int,
        register: ServerRegistrar,
        *,
        max_workers: int = BROKER_SERVER_WORKERS,
        options: Sequence[tuple[str, Any]] = (),
    ) -> BrokeredServer:
        """Serve a new gRPC server for ``service_id`` and announce it to the peer.

        ``register(server)`` adds the servicers (as a plugin's registrar does).
        The server listens on a fresh socket in the session's private directory
        (or loopback TCP), with the session's mutual TLS, and runs in the
        background until ``BrokeredServer.stop`` or the end of the session.
        """
        service_id = _check_id(service_id)
        network = self._network_or_raise()
        self._reserve(service_id)
        try:
            brokered = self._start_server(service_id, register, network, max_workers, options)
        except BaseException:
            with self._cond:
                self._servers.pop(service_id, None)
            raise
        with self._cond:
            if not self._closed:
                self._servers[service_id] = brokered
                if self._mux is not None:
                    # Nothing is announced: the peer knocks, then opens a stream.
                    self._mux.route(service_id, brokered.address)
                else:
                    self._outgoing.append(
                        ConnInfo(
                            service_id=service_id,
                            network=brokered.network,
                            address=brokered.address,
                        )
                    )
                self._cond.notify_all()
                return brokered
        brokered.stop(0)
        raise self._closed_error()

    def dial(
        self,
        service_id: int,
        timeout: float = BROKER_DIAL_TIMEOUT,
        *,
        call_timeout: float | None = DEFAULT_CALL_TIMEOUT,
    ) -> grpc.Channel:
        """A channel to the peer's server for ``service_id``; close it when done.

        Waits up to ``timeout`` seconds for the peer's announcement (go-plugin:
        5 s). Raises ``BrokerTimeout`` if none comes, ``BrokerClosed``
        once the session is over. ``call_timeout``: the deadline of the channel's
        unary and stream-unary calls made without ``timeout=`` (None: none), as
        ``PluginProcess(call_timeout=)``.
        """
        service_id = _check_id(service_id)
        call_timeout = check_call_timeout(call_timeout)
        network = self._network_or_raise()
        if self._mux is not None:
            return self._mux_dial(service_id, network, timeout, call_timeout)
        info = self._claim(service_id, timeout)
        channel = network.dial(info, self._bridge_directory, self._forget_channel, call_timeout)
        with self._cond:
            if not self._closed:
                self._channels.add(channel)
                return channel
        channel.close()
        raise self._closed_error()

    def _drain(self, timeout: float) -> int:
        """Refuse new calls on the channels this side dialed, and wait up to ``timeout``
        seconds for their calls in flight (a session's ``close()`` does this before
        ``close``); how many still run."""
        with self._cond:
            channels = list(self._channels)
        for channel in channels:
            channel.gate.close()
        deadline = time.monotonic() + timeout
        return sum(
            channel.gate.drain(max(0.0, deadline - time.monotonic())) for channel in channels
        )

    def close(self) -> None:
        """End the session: stop brokered servers, close channels and the stream. Idempotent."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            servers = [s for s in self._servers.values() if s is not None]
            channels = list(self._channels)
            callbacks, self._on_close = self._on_close, []
            self._outgoing.clear()
            self._parked.clear()
            self._cond.notify_all()
        for callback in callbacks:
            callback()
        for server in servers:
            server.stop()
        for channel in channels:
            channel.close()
        with self._cond:
            bridge_dir, self._bridge_dir = self._bridge_dir, None
        if bridge_dir is not None:
            shutil.rmtree(bridge_dir, ignore_errors=True)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("ready" if self._network else "not connected")
        return f"<Broker {self._side} {state}, serving {sorted(self._servers)}>"

    # --- session plumbing (the library's own, not the public API) ----------------

    def _attach(
        self,
        network: BrokerNetwork,
        on_close: Callable[[], None] | None = None,
        mux: MuxSession | None = None,
    ) -> None:
        """Connect the broker to its session: where to listen, how to dial, and, for a
        multiplexed session, its yamux routing."""
        with self._cond:
            self._network = network
            self._mux = mux
            if on_close is not None:
                self._on_close.append(on_close)
            self._cond.notify_all()

    def _receive(self, info: ConnInfo) -> None:
        """The peer announced ``info``: park it (a buffer of one per id) for a dialer."""
        if self._answer_knock(info):
            return
        now = self._clock()
        with self._cond:
            self._expire(now)
            if info.service_id in self._parked:
                logger.debug("broker: dropped a second announcement of id %d", info.service_id)
            else:
                self._parked[info.service_id] = (info, now)
            self._cond.notify_all()

    def _next_announcement(self, finished: Callable[[], bool]) -> ConnInfo | None:
        """Block until something must go to the peer; None once closed or ``finished()``."""
        with self._cond:
            self._cond.wait_for(lambda: self._outgoing or self._closed or finished())
            if self._closed or finished():
                return None
            return self._outgoing.popleft()

    def _wake(self) -> None:
        """Let waiters re-check their ``finished()`` condition."""
        with self._cond:
            self._cond.notify_all()

    # --- internals ------------------------------------------------------------

    def _network_or_raise(self) -> BrokerNetwork:
        network = self._network
        if self._closed:
            raise self._closed_error()
        if network is None:
            raise BrokerError(
                "the broker is not connected to a session yet",
                hint="use the broker once the plugin is started (host) or serving (plugin)",
            )
        return network

    def _closed_error(self) -> BrokerClosed:
        return BrokerClosed(
            f"the {self._side}'s broker is closed: the plugin session has ended",
            hint="brokered connections live as long as their plugin session; start a new one",
        )

    def _reserve(self, service_id: int) -> None:
        with self._cond:
            if self._closed:
                raise self._closed_error()
            if service_id in self._servers:
                raise BrokerError(
                    f"broker id {service_id} is already being served on this side",
                    hint="use broker.next_id() for every accept_and_serve()",
                )
            self._servers[service_id] = None

    def _start_server(
        self,
        service_id: int,
        register: ServerRegistrar,
        network: BrokerNetwork,
        max_workers: int,
        options: Sequence[tuple[str, Any]],
    ) -> BrokeredServer:
        executor = futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix=f"broker-{service_id}-rpc"
        )
        server = grpc.server(executor, options=tuple(options))
        try:
            register(server)
            listener = network.bind(server)
            try:
                server.start()
                if listener.bridge is not None:
                    listener.bridge.start()
            except BaseException:
                listener.remove()
                raise
        except BaseException:
            server.stop(None)
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        logger.debug(
            "broker: serving id %d on %s %s", service_id, listener.network, listener.address
        )
        return BrokeredServer(service_id, server, executor, listener, self._forget_server)

    def _forget_server(self, server: BrokeredServer) -> None:
        with self._cond:
            if self._servers.get(server.service_id) is server:
                del self._servers[server.service_id]
                if self._mux is not None:
                    self._mux.unroute(server.service_id)

    def _forget_channel(self, channel: BrokeredChannel) -> None:
        with self._cond:
            self._channels.discard(channel)

    def _claim(self, service_id: int, timeout: float) -> ConnInfo:
        deadline = self._clock() + timeout
        with self._cond:
            while True:
                if self._closed:
                    raise self._closed_error()
                now = self._clock()
                self._expire(now)
                parked = self._parked.pop(service_id, None)
                if parked is not None:
                    return parked[0]
                if now >= deadline:
                    raise BrokerTimeout(
                        f"timeout waiting for connection info: the peer announced no "
                        f"server for broker id {service_id} within {timeout:g} s",
                        hint="the peer must call accept_and_serve() with this id "
                        "(unknown id?) before or while this side dials it",
                    )
                self._cond.wait(deadline - now)

    def _expire(self, now: float) -> None:
        stale = [k for k, (_, t) in self._parked.items() if now - t > BROKER_INFO_LIFETIME]
        for service_id in stale:
            logger.debug("broker: nobody dialed id %d; its connection info expired", service_id)
            del self._parked[service_id]

    def _bridge_directory(self) -> str:
        """A private (0700) directory for TLS bridge sockets, made on first use."""
        with self._cond:
            if self._closed:  # close() has removed it, or is about to
                raise self._closed_error()
            if self._bridge_dir is None:
                self._bridge_dir = tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX)
            return self._bridge_dir


def _check_id(service_id: object) -> int:
    if (
        isinstance(service_id, bool)
        or not isinstance(service_id, int)
        or not 0 <= service_id <= BROKER_MAX_ID
    ):
        raise BrokerError(
            f"invalid broker id {service_id!r}",
            hint=f"broker ids are ints from 0 to {BROKER_MAX_ID} (uint32); use broker.next_id()",
        )
    return service_id
