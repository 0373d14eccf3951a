"""SharedPlugin: one plugin per process, for web apps and other long-lived programs.

Around ``PluginProcess``: started lazily on first use (never at import, so the
master of ``gunicorn --preload`` starts nothing); shared by any number of threads;
replaced by a fresh plugin in a forked child, whose parent's plugin is abandoned
untouched (no grpc object crosses a fork); restarted on the next call when it died (or
at once in the background, with ``restart_in_background``), with bounded exponential
backoff between attempts (with jitter), and kept down after ``max_start_failures``
failures in a row; closed at interpreter exit.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Unpack, overload

import grpc

from .._constants import (
    DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_MAX_RESTART_BACKOFF,
    DEFAULT_PING_TIMEOUT,
    DEFAULT_RESTART_BACKOFF,
    START_WAIT_SLACK,
)
from .._errors import PluginClosed, RPCPluginError
from . import shared_fork
from .at_exit import close_at_exit, forget
from .config import HostConfig
from .env import command_argv
from .options import HostOptions, StubFactory, StubT
from .process import PluginProcess
from .shared_live import Live, exit_code
from .shared_restart import START, STOP, BackgroundRestart, Failures, describe
from .stdio import plugin_logger_name

if TYPE_CHECKING:
    from .shared_restart import Step

logger = logging.getLogger("pyvider_rpcplugin_sync.shared")
_now = time.monotonic  # the backoff tests replace this clock
_random = random.random  # and this source of the jitter


_T = TypeVar("_T")


class SharedPlugin(Generic[StubT]):
    """A plugin shared by every thread of a process: started on first use, restarted
    when it dies, replaced by a fresh one in a forked child, closed at exit.

    ``KV = SharedPlugin(cmd, handshake=KV_HANDSHAKE, stub=KVStub)`` at module level,
    then ``KV.stub.Get(...)`` in any request handler; ``stub=KVStub`` makes it a
    ``SharedPlugin[KVStub]``, whose ``stub`` type checkers know.

    Args:
        cmd: the plugin command, as ``PluginProcess``'s.
        config: a ``HostConfig``; ``options`` (its fields) replace its fields.
        restart_backoff: the first pause, in seconds, after a failed start or an early
            death; it doubles after each one in a row.
        max_restart_backoff: the pause's ceiling; a plugin that ran this long before it
            died is restarted at once.
        max_start_failures: after this many failed starts (or early deaths) in a row,
            the plugin stays down: every use raises ``PluginDown`` until ``reset()``;
            None (default): it is tried again for ever, after each pause.
        restart_in_background: restart a plugin that died, and retry a failed start,
            in a library thread once the pause is over, so that the next request finds
            it running; by default the next request starts it.
    """

    @overload
    def __init__(
        self: SharedPlugin[_T],
        cmd: str | Sequence[str],
        config: HostConfig | None = None,
        *,
        restart_backoff: float = ...,
        max_restart_backoff: float = ...,
        max_start_failures: int | None = ...,
        restart_in_background: bool = ...,
        stub: StubFactory[_T],
        **options: Unpack[HostOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: SharedPlugin[Any],
        cmd: str | Sequence[str],
        config: HostConfig | None = None,
        *,
        restart_backoff: float = ...,
        max_restart_backoff: float = ...,
        max_start_failures: int | None = ...,
        restart_in_background: bool = ...,
        stub: None = None,
        **options: Unpack[HostOptions],
    ) -> None: ...
    def __init__(
        self,
        cmd: str | Sequence[str],
        config: HostConfig | None = None,
        *,
        restart_backoff: float = DEFAULT_RESTART_BACKOFF,
        max_restart_backoff: float = DEFAULT_MAX_RESTART_BACKOFF,
        max_start_failures: int | None = None,
        restart_in_background: bool = False,
        **options: Any,
    ) -> None:
        if not 0 < restart_backoff <= max_restart_backoff:
            raise ValueError("need 0 < restart_backoff <= max_restart_backoff")
        cap = max_start_failures
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError(f"max_start_failures must be an int of 1 or more, or None: {cap!r}")
        # Checked now rather than at the first request; starts nothing.
        self._cmd, self._config = command_argv(cmd), HostConfig.of(config, options)
        logger_name = (
            self._config.logger.name if self._config.logger else plugin_logger_name(self._cmd)
        )
        self.name = logger_name.rsplit(".", 1)[-1]
        self._backoff = (restart_backoff, max_restart_backoff, cap)
        self._background = bool(restart_in_background)
        # Each plugin tells of its exit, so that a background restart need not wait
        # for a request to notice it.
        self._process_config = (
            dataclasses.replace(self._config, on_exit=self._exit_hook(self._config.on_exit))
            if self._background
            else self._config
        )
        self._start_wait = (
            START_WAIT_SLACK + self._config.start_timeout + self._config.connect_timeout
        )
        self._closed = False
        self._reset(os.getpid())
        shared_fork.watch(self)

    def _reset(self, owner: int) -> None:
        """Fresh per-process state (at construction, and in a forked child)."""
        self._owner = owner
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._live_plugin: Live | None = None
        self._starting = False
        self._started_at = 0.0
        self._starts = self._deaths = self._failed_starts = 0
        self._failures = Failures(*self._backoff)  # consecutive failed starts, early deaths
        step: Step = self._restart_step
        self._restarter = BackgroundRestart(self.name, self._lock, step, self._live)

    # --- use: no lock on the way to a live plugin ------------------------------------

    @property
    def stub(self) -> StubT:
        """The ``stub=`` stub of a live plugin (started or restarted now if needed)."""
        return self._get().stub

    @property
    def channel(self) -> grpc.Channel:
        """The ``grpc.Channel`` of a live plugin (started or restarted now if needed)."""
        return self._get().channel

    def make_stub(self, stub_class: StubFactory[_T]) -> _T:
        """Another service's stub on the live plugin's channel."""
        return stub_class(self._get().channel)

    def ping(self, timeout: float = DEFAULT_PING_TIMEOUT) -> bool:
        """Health-check the plugin (starting it if needed); True or a typed error."""
        return self._get().ping(timeout)

    @property
    def pid(self) -> int | None:
        """The pid of this process's running plugin, or None (starts nothing)."""
        live = self._current()
        return live.plugin.pid if live is not None and not live.exited() else None

    @property
    def closed(self) -> bool:
        return self._closed

    def _get(self) -> PluginProcess[StubT]:
        live = self._live_plugin
        if live is None or live.suspect or self._owner != os.getpid() or not live.running():
            return self._live()
        return live.plugin

    def _current(self) -> Live | None:
        live = self._live_plugin
        return live if live is not None and self._owner == os.getpid() else None

    # --- getting a live plugin ---------------------------------------------------------

    def _live(self) -> PluginProcess[StubT]:
        """The live plugin, started by this thread or by another one it waits for."""
        live = self._current()
        if live is not None:
            live.await_exit()  # it is dying, usually: let it finish
        retired: list[Live] = []
        try:
            with self._lock:
                plugin = self._claim(retired)
        finally:
            for dead in retired:  # reap it outside the lock
                dead.close(0)
        return plugin if plugin is not None else self._start()

    def _claim(self, retired: list[Live]) -> PluginProcess[StubT] | None:
        """Under the lock: the live plugin, or None when the caller must start one."""
        if self._owner != os.getpid():  # forked without os.fork: no at-fork hook ran
            self._forget_after_fork()
        deadline = _now() + self._start_wait
        while not self._closed:
            live = self._live_plugin
            if live is not None:
                if not live.exited():
                    if live.suspect or not live.running():
                        live.trust_only_exit()  # alive after all: go on without the signs
                    return live.plugin
                self._live_plugin = None
                retired.append(live)
                self._note_death(live.plugin)
            if self._starting:  # another thread starts it: wait for the outcome
                if not self._changed.wait(deadline - _now()):
                    raise PluginClosed(f"the plugin {self.name} is still starting; gave up")
                continue
            if self._failures.gave_up:
                raise self._failures.down_error(self.name)
            wait = self._failures.next_attempt - _now()
            if wait > 0:
                raise PluginClosed(
                    f"the plugin {self.name} is down; next start attempt in {wait:.1f} s",
                    hint=self._failures.last_error,
                )
            self._starting = True
            return None
        raise PluginClosed(f"the shared plugin {self.name} is closed")

    def _start(self) -> PluginProcess[StubT]:
        began = _now()
        try:
            plugin = PluginProcess(self._cmd, self._process_config).start()
        except BaseException as exc:
            with self._lock:
                self._starting = False
                self._note_failure(exc, began)
                self._changed.notify_all()
                if self._background and not self._closed:
                    self._restarter.kick()
            raise
        with self._lock:
            self._starting = False
            self._changed.notify_all()
            closed = self._closed
            if not closed:
                self._live_plugin = Live(plugin, self.name)
                self._started_at = _now()
                self._failures.started()
                self._starts += 1
                # Closed first at exit, so that nothing restarts its plugin meanwhile.
                config = self._config
                close_at_exit(self, config.shutdown_grace + config.drain_timeout)
        if closed:
            plugin.close()
            raise PluginClosed(f"the shared plugin {self.name} was closed while it started")
        logger.info(
            "plugin %s started: pid %s, start %d of process %d, %.0f ms",
            self.name,
            plugin.pid,
            self._starts,
            os.getpid(),
            (_now() - began) * 1000,
        )
        return plugin

    # --- failures and backoff (under the lock) -----------------------------------------

    def _note_death(self, plugin: PluginProcess[Any]) -> None:
        uptime = _now() - self._started_at
        self._deaths += 1
        code = exit_code(plugin)
        error = f"plugin pid {plugin.pid} exited with code {code}"
        delay = self._failures.died(error, uptime, _now(), _random())
        logger.warning(
            "plugin %s (pid %s) exited with code %s after %.1f s; %s",
            self.name,
            plugin.pid,
            code,
            uptime,
            self._next_step(delay),
        )

    def _note_failure(self, exc: BaseException, began: float) -> None:
        self._failed_starts += 1
        delay = self._failures.start_failed(describe(exc), _now(), _random())
        logger.error(
            "plugin %s could not be started after %.1f s (%s); %s",
            self.name,
            _now() - began,
            self._failures.last_error,
            self._next_step(delay),
        )

    def _next_step(self, delay: float) -> str:
        if self._failures.gave_up:
            return f"it stays down after {self._failures.count} failures in a row (reset())"
        if not delay:
            return "restarting it now"
        return f"next attempt in {delay:.1f} s"

    def reset(self) -> None:
        """Forget the failures in a row: a plugin that stays down (``PluginDown``) is
        started again by the next use (or at once, with ``restart_in_background``)."""
        with self._lock:
            self._failures.reset()
            if self._background and not self._closed:
                self._restarter.kick()

    # --- background restarts -------------------------------------------------------------

    def _exit_hook(self, user: Callable[[int], None] | None) -> Callable[[int], None]:
        ref = weakref.ref(self)  # the plugins must not keep their SharedPlugin alive

        def on_exit(code: int) -> None:
            shared = ref()
            try:
                if shared is not None and shared._owner == os.getpid():
                    with shared._lock:
                        shared._restarter.kick()
            finally:
                if user is not None:
                    user(code)

        return on_exit

    def _restart_step(self) -> tuple[str, float]:
        """Under the lock: what the restart thread does next."""
        live = self._live_plugin
        if self._closed or self._owner != os.getpid() or self._starting:
            return STOP, 0.0  # a request that starts it kicks the thread if it fails
        if live is not None and not live.exited():
            return STOP, 0.0  # running
        if self._failures.gave_up:
            return STOP, 0.0
        wait = 0.0 if live is not None else self._failures.next_attempt - _now()
        return (START, 0.0) if wait <= 0 else ("wait", wait)

    # --- health --------------------------------------------------------------------------

    def health(
        self, *, start: bool = True, timeout: float = DEFAULT_HEALTH_TIMEOUT
    ) -> dict[str, Any]:
        """A JSON-ready summary for an app's health endpoint; never raises for plugin trouble.

        ``ok`` is True when the plugin answered its health check within ``timeout``.
        With ``start`` a plugin that is not running is started first (unless backing off).
        """
        error: str | None = None
        serving = False
        try:
            live = self._current()
            plugin = self._get() if start else live.plugin if live is not None else None
            if plugin is not None:
                serving = plugin.ping(timeout)
        except RPCPluginError as exc:
            error = describe(exc)
        with self._lock:
            live = self._current()
            plugin = live.plugin if live is not None and not live.exited() else None
            alive = plugin is not None
            now = _now()
            return {
                "ok": serving,
                "status": self._status(serving, alive),
                "plugin": self.name,
                "pid": plugin.pid if plugin is not None else None,
                "host_pid": os.getpid(),
                "uptime": round(now - self._started_at, 3) if alive else None,
                "starts": self._starts,
                "deaths": self._deaths,
                "failed_starts": self._failed_starts,
                "retry_in": round(max(0.0, self._failures.next_attempt - now), 3),
                "stays_down": self._failures.gave_up,
                "error": error or (None if serving else self._failures.last_error),
            }

    def _status(self, serving: bool, alive: bool) -> str:
        if self._closed:
            return "closed"
        if serving or self._starting:
            return "serving" if serving else "starting"
        if alive:
            return "not serving"
        return "not started" if self._starts == self._failures.count == 0 else "down"

    # --- close and fork ------------------------------------------------------------------

    def close(self, grace: float | None = None) -> None:
        """Shut this process's plugin down (see ``PluginProcess.close``); later use
        raises ``PluginClosed``. Idempotent, thread-safe; never touches a plugin
        that a parent process started."""
        with self._lock:
            if self._owner != os.getpid():
                self._forget_after_fork()
            self._closed = True
            live, self._live_plugin = self._live_plugin, None
            self._changed.notify_all()
        self._restarter.stop(self._start_wait)  # a start under way closes what it started
        forget(self)
        if live is not None:
            logger.debug("closing plugin %s (pid %s)", self.name, live.plugin.pid)
            live.close(grace)

    def _kill_at_exit(self) -> None:
        """At interpreter exit, past the exit's bound: SIGKILL its plugin (no lock)."""
        live = self._live_plugin
        if live is not None:
            live.plugin._kill_at_exit()  # pyright: ignore[reportPrivateUsage]  (its exit hook)

    def _forget_after_fork(self) -> None:
        """In a forked child: drop the parent's plugin without touching it."""
        inherited = self._live_plugin
        self._reset(os.getpid())
        if inherited is not None:
            inherited.plugin.abandon()  # closing it would kill the parent's plugin
            shared_fork.ABANDONED.append(inherited)  # no destructor may run here either

    def __enter__(self) -> SharedPlugin[StubT]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"pid={self.pid}"
        return f"<SharedPlugin {self.name!r} {state}>"
