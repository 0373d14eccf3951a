"""SharedPlugin: one plugin per process, for web apps and other long-lived programs.

Around ``PluginProcess``: started lazily on first use (never at import, so the
master of ``gunicorn --preload`` starts nothing); shared by any number of threads;
replaced by a fresh plugin in a forked child, whose parent's plugin is abandoned
untouched (no grpc object crosses a fork); restarted on the next call when it died,
with bounded exponential backoff between attempts (with jitter); closed at
interpreter exit.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, Unpack, overload

import grpc

from .._constants import (
    DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_MAX_RESTART_BACKOFF,
    DEFAULT_PING_TIMEOUT,
    DEFAULT_RESTART_BACKOFF,
    RESTART_JITTER,
    START_WAIT_SLACK,
)
from .._errors import PluginClosed, RPCPluginError
from .at_exit import close_at_exit, forget
from .config import HostConfig
from .env import command_argv
from .options import HostOptions, StubFactory, StubT
from .process import PluginProcess
from .shared_live import Live, exit_code
from .stdio import plugin_logger_name

if TYPE_CHECKING:
    pass

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
    """

    @overload
    def __init__(
        self: SharedPlugin[_T],
        cmd: str | Sequence[str],
        config: HostConfig | None = None,
        *,
        restart_backoff: float = ...,
        max_restart_backoff: float = ...,
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
        **options: Any,
    ) -> None:
        if not 0 < restart_backoff <= max_restart_backoff:
            raise ValueError("need 0 < restart_backoff <= max_restart_backoff")
        # Checked now rather than at the first request; starts nothing.
        self._cmd, self._config = command_argv(cmd), HostConfig.of(config, options)
        logger_name = (
            self._config.logger.name if self._config.logger else plugin_logger_name(self._cmd)
        )
        self.name = logger_name.rsplit(".", 1)[-1]
        self._backoff = (restart_backoff, max_restart_backoff)
        self._start_wait = (
            START_WAIT_SLACK + self._config.start_timeout + self._config.connect_timeout
        )
        self._closed = False
        self._reset(os.getpid())
        _install_process_hooks()
        _INSTANCES.add(self)

    def _reset(self, owner: int) -> None:
        """Fresh per-process state (at construction, and in a forked child)."""
        self._owner = owner
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._live_plugin: Live | None = None
        self._starting = False
        self._started_at = self._next_attempt = 0.0
        self._starts = self._deaths = self._failed_starts = 0
        self._failures = 0  # consecutive failed starts and early deaths
        self._last_error: str | None = None

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
            wait = self._next_attempt - _now()
            if wait > 0:
                raise PluginClosed(
                    f"the plugin {self.name} is down; next start attempt in {wait:.1f} s",
                    hint=self._last_error,
                )
            self._starting = True
            return None
        raise PluginClosed(f"the shared plugin {self.name} is closed")

    def _start(self) -> PluginProcess[StubT]:
        began = _now()
        try:
            plugin = PluginProcess(self._cmd, self._config).start()
        except BaseException as exc:
            with self._lock:
                self._starting = False
                self._note_failure(exc, began)
                self._changed.notify_all()
            raise
        with self._lock:
            self._starting = False
            self._changed.notify_all()
            closed = self._closed
            if not closed:
                self._live_plugin = Live(plugin, self.name)
                self._started_at, self._last_error = _now(), None
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

    def _delay(self, failures: int) -> float:
        """The pause after ``failures``: exponential up to the maximum, then "equal
        jitter": a random point in its upper half, so hosts do not restart in lockstep."""
        if failures <= 0:
            return 0.0
        first, most = self._backoff
        full = float(min(most, first * 2 ** (failures - 1)))
        fixed = full * (1 - RESTART_JITTER)
        return fixed + (full - fixed) * _random()

    def _note_death(self, plugin: PluginProcess[Any]) -> None:
        uptime = _now() - self._started_at
        if uptime >= self._backoff[1]:
            self._failures = 0  # it ran long enough: this is no crash loop
        delay = self._delay(self._failures)
        self._failures += 1
        self._deaths += 1
        self._next_attempt = _now() + delay
        code = exit_code(plugin)
        self._last_error = f"plugin pid {plugin.pid} exited with code {code}"
        logger.warning(
            "plugin %s (pid %s) exited with code %s after %.1f s; %s",
            self.name,
            plugin.pid,
            code,
            uptime,
            f"restarting it in {delay:.1f} s" if delay else "restarting it now",
        )

    def _note_failure(self, exc: BaseException, began: float) -> None:
        self._failed_starts += 1
        self._failures += 1
        delay = self._delay(self._failures)
        self._next_attempt = _now() + delay
        self._last_error = _describe(exc)
        logger.error(
            "plugin %s could not be started after %.1f s (%s); next attempt in %.1f s",
            self.name,
            _now() - began,
            self._last_error,
            delay,
        )

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
            error = _describe(exc)
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
                "retry_in": round(max(0.0, self._next_attempt - now), 3),
                "error": error or (None if serving else self._last_error),
            }

    def _status(self, serving: bool, alive: bool) -> str:
        if self._closed:
            return "closed"
        if serving or self._starting:
            return "serving" if serving else "starting"
        if alive:
            return "not serving"
        return "not started" if self._starts == self._failures == 0 else "down"

    # --- close and fork ------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> None:
        """Shut this process's plugin down (see ``PluginProcess.close``); later use
        raises ``PluginClosed``. Idempotent, thread-safe; never touches a plugin
        that a parent process started."""
        with self._lock:
            if self._owner != os.getpid():
                self._forget_after_fork()
            self._closed = True
            live, self._live_plugin = self._live_plugin, None
            self._changed.notify_all()
        forget(self)
        if live is not None:
            logger.debug("closing plugin %s (pid %s)", self.name, live.plugin.pid)
            live.close(timeout)

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
            _ABANDONED.append(inherited)  # no destructor may run here either

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


def _describe(exc: BaseException) -> str:
    """One line about an error, for logs and health (no stderr tail: it may be long)."""
    if isinstance(exc, RPCPluginError):
        code = getattr(exc, "returncode", None)
        suffix = f" [exit code {code}]" if code is not None else ""
        return f"{type(exc).__name__}: {exc.message}{suffix}"
    return f"{type(exc).__name__}: {exc}"


# --- process-wide hooks ------------------------------------------------------------------

_INSTANCES: weakref.WeakSet[SharedPlugin[Any]] = weakref.WeakSet()
# A forked child keeps its parent's plugins and calls referenced, so that no destructor
# or finalizer (channel close, SIGKILL of the plugin, removal of its socket) runs there.
_ABANDONED: list[object] = []


def _after_fork_in_child() -> None:
    for shared in list(_INSTANCES):
        shared._forget_after_fork()  # pyright: ignore[reportPrivateUsage]  (the fork hook)


_hooks_lock = threading.Lock()
_hooks: list[bool] = []


def _install_process_hooks() -> None:
    """The fork hook, installed with the first SharedPlugin (not at import); interpreter
    exit closes a SharedPlugin through ``at_exit``, with every other open plugin."""
    with _hooks_lock:
        if _hooks:
            return
        _hooks.append(True)
        os.register_at_fork(after_in_child=_after_fork_in_child)
