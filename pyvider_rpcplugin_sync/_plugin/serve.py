"""serve(): run a PluginServer as the plugin process, the way a go-plugin host expects.

Process concerns live here, apart from the server itself: hclog logging on the
real stderr, the handshake line on the real stdout, SIGINT ignored, SIGTERM
and parent death stop the server, stdout/stderr forwarded over GRPCStdio.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Generator, Sequence
from types import FrameType
from typing import TYPE_CHECKING, Any

from .._constants import ENV_LOG_LEVEL, PARENT_WATCH_INTERVAL, WORKER_EXIT_WAIT
from .._errors import RPCPluginError
from .._protocol.handshake import HandshakeConfig, format_handshake
from .._protocol.hclog import HclogHandler, level_from_name

# The server (grpc's server, protobuf, the broker) is imported by the first serve():
# importing the plugin API stays near ``import grpc``.
if TYPE_CHECKING:
    from .server import PluginServer, Registrars

logger = logging.getLogger("pyvider_rpcplugin_sync.server")

# Loggers whose records reach the host as hclog lines (the plugin script's own
# ``logging.getLogger(__name__)`` is "__main__"). The root logger is left alone.
DEFAULT_HOST_LOGGERS = ("pyvider_rpcplugin_sync", "grpc", "__main__")


def serve(
    registrars: Registrars,
    *,
    handshake: HandshakeConfig | None = None,
    log_level: str | int | None = None,
    host_loggers: Sequence[str] = DEFAULT_HOST_LOGGERS,
    redirect_stdio: bool = True,
    debug: bool = False,
    debug_name: str | None = None,
    **server_options: Any,
) -> None:
    """Serve ``registrars`` as a go-plugin plugin until the host shuts it down.

    ``registrars`` is ``register(server)`` or ``{version: register}``.
    ``server_options`` go to ``PluginServer`` (``max_workers``, ``tls``,
    ``rate_limit``, ``rate_limit_per_method``, ``interceptors``, ``options``,
    ``max_message_size``, ...). Log records of ``host_loggers`` reach the host as
    hclog lines at ``log_level`` (default ``PLUGIN_LOG_LEVEL``, else info); an
    exception escaping an RPC handler or any thread is logged there at ERROR with
    its traceback, so the host shows it at ERROR. Raises an
    ``RPCPluginError`` when the plugin cannot start (wrong cookie, no
    common version, socket problems); ``run_plugin`` turns those into
    exit codes.

    ``debug=True`` starts without a host (no TLS) and prints the
    ``TF_REATTACH_PROVIDERS`` JSON to attach to, keyed by ``debug_name``
    (default: the program's name), then serves until Ctrl-C or SIGTERM.
    """
    _serve(
        registrars,
        handshake=handshake,
        log_level=log_level,
        host_loggers=host_loggers,
        redirect_stdio=redirect_stdio,
        exiting_after=False,
        server_options=server_options,
        debug=debug,
        debug_name=debug_name,
    )


def _serve(
    registrars: Registrars,
    *,
    handshake: HandshakeConfig | None,
    log_level: str | int | None,
    host_loggers: Sequence[str],
    redirect_stdio: bool,
    exiting_after: bool,
    server_options: dict[str, Any],
    debug: bool = False,
    debug_name: str | None = None,
) -> None:
    if debug:
        from .debug import serve_debug

        with _host_logging(host_loggers, log_level), _uncaught_thread_errors_logged():
            serve_debug(
                registrars,
                handshake=handshake or HandshakeConfig(),
                name=debug_name,
                server_options=server_options,
            )
        return
    from .._services.stdio import StdioCapture
    from .server import PluginServer

    server = PluginServer(registrars, handshake=handshake, **server_options)
    with _host_logging(host_loggers, log_level), _uncaught_thread_errors_logged():
        # A stray print() in a registrar must not land before the handshake.
        with contextlib.redirect_stdout(sys.stderr):
            line = server.start()
        try:
            with _signals(server, exiting_after), _parent_watch(server):
                _write_handshake(format_handshake(line))
                # serve() drives its PluginServer: the stdio queue is theirs to share.
                queue = server._stdio  # pyright: ignore[reportPrivateUsage]
                capture = StdioCapture(queue) if redirect_stdio else None
                if capture is not None:
                    capture.start()
                try:
                    server.wait()
                finally:
                    if capture is not None:
                        capture.restore()
        finally:
            server.stop()
        logger.debug("plugin stopped")


def run_plugin(
    registrars: Registrars,
    *,
    handshake: HandshakeConfig | None = None,
    log_level: str | int | None = None,
    host_loggers: Sequence[str] = DEFAULT_HOST_LOGGERS,
    redirect_stdio: bool = True,
    debug: bool = False,
    debug_name: str | None = None,
    **server_options: Any,
) -> int:
    """``serve`` as a program: the exit code, errors as one clear message on stderr."""
    try:
        _serve(
            registrars,
            handshake=handshake,
            log_level=log_level,
            host_loggers=host_loggers,
            redirect_stdio=redirect_stdio,
            exiting_after=True,
            server_options=server_options,
            debug=debug,
            debug_name=debug_name,
        )
    except RPCPluginError as exc:
        print(exc, file=sys.stderr, flush=True)
        return 1
    _exit_past_stuck_handlers()
    return 0


def _exit_past_stuck_handlers() -> None:
    """Exit now if app handlers outlived the stop grace period.

    concurrent.futures joins its worker threads at interpreter exit, so a
    handler stuck in a long call would keep the process alive; the host
    expects the plugin gone promptly after Shutdown.
    """
    from .server import WORKER_THREAD_PREFIX

    deadline = time.monotonic() + WORKER_EXIT_WAIT
    lingering: list[threading.Thread] = []
    for thread in threading.enumerate():
        if thread.name.startswith(WORKER_THREAD_PREFIX):
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                lingering.append(thread)
    if lingering:
        logger.debug("exiting past %d handler thread(s) still running", len(lingering))
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(0)


def _write_handshake(text: str) -> None:
    # Straight to fd 1, unbuffered: the host reads exactly this one line.
    sys.stdout.flush()
    data = (text + "\n").encode("utf-8")
    while data:
        written = os.write(1, data)
        data = data[written:]


@contextlib.contextmanager
def _host_logging(names: Sequence[str], level: str | int | None) -> Generator[None, None, None]:
    if level is None:
        level = os.environ.get(ENV_LOG_LEVEL, "info")
    try:
        levelno = level if isinstance(level, int) else level_from_name(level)
    except ValueError as exc:
        raise RPCPluginError(str(exc), hint=f"set {ENV_LOG_LEVEL} to a valid level") from None
    handler = HclogHandler(fd=2, level=levelno)
    saved: list[tuple[logging.Logger, int]] = []
    for name in names:
        target = logging.getLogger(name)
        saved.append((target, target.level))
        target.addHandler(handler)
        if target.level == logging.NOTSET or target.level > levelno:
            target.setLevel(levelno)
    try:
        yield
    finally:
        for target, old_level in saved:
            target.removeHandler(handler)
            target.setLevel(old_level)
        handler.close()


@contextlib.contextmanager
def _uncaught_thread_errors_logged() -> Generator[None, None, None]:
    """Uncaught exceptions in threads become hclog ERROR records with the traceback.

    Python's default hook prints them as plain stderr text, which a host logs as
    untagged lines (go-plugin: DEBUG). Exceptions in RPC handlers are already logged
    at ERROR by grpc's own logger ("grpc" is one of the host loggers).
    """
    previous = threading.excepthook

    def log_it(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit or args.exc_value is None:
            return
        name = args.thread.name if args.thread is not None else "unknown"
        logger.error(
            "uncaught exception in thread %s",
            name,
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
        )

    threading.excepthook = log_it
    try:
        yield
    finally:
        threading.excepthook = previous


@contextlib.contextmanager
def _signals(server: PluginServer, exiting_after: bool) -> Generator[None, None, None]:
    """Ignore SIGINT (Ctrl-C belongs to the host), stop on SIGTERM.

    When the process exits right after serving, SIGTERM stays ignored: a host
    that follows its Shutdown call with SIGTERM (pyvider-rpcplugin does, after
    50 ms) must not turn a clean exit into death by signal.
    """
    if threading.current_thread() is not threading.main_thread():
        logger.debug("serve() not on the main thread: signal handling left to the caller")
        yield
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        server.request_stop()

    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    old_term = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old_int)
        signal.signal(signal.SIGTERM, signal.SIG_IGN if exiting_after else old_term)


@contextlib.contextmanager
def _parent_watch(server: PluginServer) -> Generator[None, None, None]:
    """Stop when the host dies, so a plugin never outlives it.

    A polling watch rather than PR_SET_PDEATHSIG: that signal fires when the
    *thread* that spawned us exits, which a host's worker thread may well do.
    """
    parent = os.getppid()
    done = threading.Event()

    def watch() -> None:
        while not done.wait(PARENT_WATCH_INTERVAL):
            if os.getppid() != parent:
                logger.warning("host process %d is gone; stopping", parent)
                server.request_stop()
                return

    watcher = threading.Thread(target=watch, name="plugin-parent-watch", daemon=True)
    if parent > 1:
        watcher.start()
    try:
        yield
    finally:
        done.set()
        if watcher.is_alive():
            watcher.join()
