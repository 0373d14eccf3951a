"""A protocol-level fake of the newest go-plugin host (v1.8, ``hashicorp/go-plugin:client.go``).

For what the real go-plugin 1.8.0 and 1.6.0 hosts of ``tests/interop/go18`` cannot be
made to do (see the package docstring), this class does, step by step, what
``Client.Start``, ``Client.Client``, ``GRPCClient.Ping`` and ``Client.Kill`` do
(docs/protocol.md, sections 2-13):

- environment: ``cmd.Env``, then the host's environment, then the plugin variables
  (Go keeps the *last* duplicate): cookie, ``PLUGIN_MIN_PORT``/``MAX_PORT``
  (10000/25000), ``PLUGIN_PROTOCOL_VERSIONS``, ``PLUGIN_MULTIPLEX_GRPC=true`` when
  broker multiplexing is enabled, ``PLUGIN_CLIENT_CERT`` with AutoMTLS,
  ``PLUGIN_UNIX_SOCKET_GROUP``, and ``PLUGIN_UNIX_SOCKET_DIR``: a fresh 0700
  ``plugin-dir*`` directory (what a host with a ``RunnerFunc`` does), removed in Kill;
- spawn with stdin inherited, stdout/stderr piped, no process group; read the first
  stdout line (start timeout), then drain stdout forever; stderr is read line by line
  and hclog JSON lines are checked the way go-plugin's ``parseJSON`` reads them;
- handshake: ``fakehost.handshake.parse_line`` (TrimSpace, all fields, field 7 only
  with multiplexing: ``ErrGRPCBrokerMuxNotSupported``); any error kills the child;
- ``client()``: a non-blocking dial (authority ``unused``, 2^31-1 message sizes, TLS
  with the plugin's certificate as the only root and the name ``localhost``), then
  ``StartStream`` and ``StreamStdio`` at once (``first_stream`` picks which is issued
  first); the stdio loop hands each chunk to the writer before it receives the next;
- ``kill()``: close the broker, ``Shutdown`` without a deadline (it ends when the
  plugin answers or exits), close the connection, wait at most 2 s for the process
  to exit and both pipes to reach EOF, else "plugin failed to exit gracefully" and
  SIGKILL; then remove the socket directory.

Every wait that Go makes unbounded is bounded here by ``guard`` seconds, only so that
a broken plugin fails a test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2

from .handshake import HostError, ParsedLine, parse_line
from .sinks import Discard
from .wire import (
    EMPTY,
    HEALTH_CHECK,
    SHUTDOWN,
    START_STREAM,
    STDIO_STDERR,
    STDIO_STDOUT,
    STREAM_STDIO,
    ConnInfo,
    decode_conn_info,
    decode_stdio_data,
    identity,
)

KILL_GRACE = 2.0  # client.go Kill: wait this long after a graceful Close, then SIGKILL
DEFAULT_MIN_PORT, DEFAULT_MAX_PORT = 10000, 25000  # client.go NewClient
MAX_MESSAGE = 2**31 - 1  # grpc_client.go: math.MaxInt32 both ways
# go-plugin's log_entry.go parses @timestamp with "2006-01-02T15:04:05.000000Z07:00".
_HCLOG_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)")
# Quiet ends of the stdio loop (grpc_stdio.go Run).
_STDIO_QUIET = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNIMPLEMENTED}
)

if TYPE_CHECKING:
    from pyvider_rpcplugin_sync._transport.tls.certs import Identity

StdioWriter = Callable[[int, bytes], None]


@dataclass
class KillReport:
    """What ``kill()`` did and saw."""

    shutdown_status: str | None = None  # grpc status name of Shutdown, None if not called
    graceful: bool = False  # Close() succeeded, so Kill waited for a voluntary exit
    forced_kill: bool = False  # "plugin failed to exit gracefully": SIGKILL was sent
    seconds: float = 0.0  # the whole Kill, as a Go host's caller would wait
    returncode: int | None = None
    socket_left_by_plugin: bool | None = None  # unix socket still there when we cleaned up


@dataclass
class HclogCheck:
    entries: list[dict[str, object]] = field(default_factory=list)
    raw_lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def feed(self, line: str) -> None:
        try:
            entry = json.loads(line)
        except ValueError:
            self.raw_lines.append(line)
            return
        if not isinstance(entry, dict):
            self.raw_lines.append(line)
            return
        for key in ("@message", "@level", "@timestamp"):
            if key in entry and not isinstance(entry[key], str):
                # go-plugin does entry[key].(string): an interface conversion panic.
                self.problems.append(f"{key} is not a string (a Go host panics): {line}")
                return
        stamp = entry.get("@timestamp")
        if isinstance(stamp, str) and not _HCLOG_TIME.fullmatch(stamp):
            self.problems.append(f"@timestamp {stamp!r} is not hclog's (logged raw): {line}")
        self.entries.append(entry)


class FakeNewestHost:
    """One go-plugin v1.8 ``Client`` for one plugin process. Use as a context manager."""

    def __init__(
        self,
        cmd: Sequence[str],
        *,
        cookie: tuple[str, str],
        versions: Sequence[int] = (1,),
        auto_mtls: bool = False,
        host_identity: Identity | None = None,
        multiplex: bool = False,
        env: Mapping[str, str] | None = None,
        host_environ: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        start_timeout: float = 60.0,
        min_port: int = 0,
        max_port: int = 0,
        unix_socket_group: str | None = None,
        stdio_writer: StdioWriter | None = None,
        first_stream: str = "broker",
        guard: float = 30.0,
    ) -> None:
        if first_stream not in ("broker", "stdio"):
            raise ValueError("first_stream must be 'broker' or 'stdio'")
        self.cmd = list(cmd)
        self.cookie = cookie
        self.versions = tuple(versions)
        self.auto_mtls = auto_mtls
        self._identity = host_identity
        self.multiplex = multiplex
        self._app_env = dict(env or {})
        self._host_environ = host_environ
        self.cwd = cwd
        self.start_timeout = start_timeout
        if min_port == 0 and max_port == 0:
            min_port, max_port = DEFAULT_MIN_PORT, DEFAULT_MAX_PORT
        self.min_port, self.max_port = min_port, max_port
        self.unix_socket_group = unix_socket_group
        self.stdio_writer: StdioWriter = stdio_writer or Discard()
        self.first_stream = first_stream
        self.guard = guard

        self.env_sent: dict[str, str] = {}
        self.socket_dir: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.parsed: ParsedLine | None = None
        self.channel: grpc.Channel | None = None
        self.first_line: str | None = None  # the raw handshake line, as read
        self.stdout_discarded = 0
        self.stderr_lines: list[str] = []
        self.hclog = HclogCheck()
        self.broker_received: list[ConnInfo] = []
        self.broker_end: str | None = None
        self.stdio_end: str | None = None
        self.stdio_unknown_channels: list[int] = []
        self.kill_report: KillReport | None = None

        self._lines: queue.Queue[str | None] = queue.Queue()
        self._done = threading.Event()  # process reaped and both pipes at EOF (doneCtx)
        self._threads: list[threading.Thread] = []
        self._stream_threads: list[threading.Thread] = []
        self._broker_outgoing: queue.Queue[bytes | None] = queue.Queue()
        self._broker_call: Any = None
        self._lock = threading.Lock()

    # --- Start ------------------------------------------------------------------------

    def _environment(self) -> dict[str, str]:
        env = dict(self._app_env)  # cmd.Env
        env.update(os.environ if self._host_environ is None else self._host_environ)
        env[self.cookie[0]] = self.cookie[1]
        env["PLUGIN_MIN_PORT"] = str(self.min_port)
        env["PLUGIN_MAX_PORT"] = str(self.max_port)
        env["PLUGIN_PROTOCOL_VERSIONS"] = ",".join(str(v) for v in self.versions)
        if self.multiplex:
            env["PLUGIN_MULTIPLEX_GRPC"] = "true"
        if self.auto_mtls:
            env["PLUGIN_CLIENT_CERT"] = self._host_identity().cert_pem.decode("ascii")
        if self.unix_socket_group:
            env["PLUGIN_UNIX_SOCKET_GROUP"] = self.unix_socket_group
        assert self.socket_dir is not None
        env["PLUGIN_UNIX_SOCKET_DIR"] = self.socket_dir
        return env

    def _host_identity(self) -> Identity:
        if self._identity is None:
            from pyvider_rpcplugin_sync._transport.tls.certs import generate_identity

            self._identity = generate_identity()  # P-256: grpcio's BoringSSL can sign with it
        return self._identity

    def _make_socket_dir(self) -> str:
        directory = tempfile.mkdtemp(prefix="plugin-dir")  # os.MkdirTemp: 0700
        if self.unix_socket_group:
            gid = int(self.unix_socket_group)
            os.chown(directory, -1, gid)
            os.chmod(directory, 0o770)
        return directory

    def start(self) -> ParsedLine:
        """``Client.Start``: spawn, read and check the handshake line. Raises HostError."""
        if self.proc is not None:
            raise RuntimeError("a Client starts once")
        self.socket_dir = self._make_socket_dir()
        self.env_sent = self._environment()
        self.proc = subprocess.Popen(
            self.cmd,
            env=self.env_sent,
            cwd=self.cwd,
            stdin=None,  # cmd.Stdin = os.Stdin
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._spawn_thread(self._read_stdout, "fakehost-stdout")
        self._spawn_thread(self._read_stderr, "fakehost-stderr")
        self._spawn_thread(self._wait_exit, "fakehost-wait")
        try:
            try:
                line = self._lines.get(timeout=self.start_timeout)
            except queue.Empty:
                raise HostError("timeout while waiting for plugin to start") from None
            self.parsed = parse_line(
                line or "", versions=self.versions, multiplex=self.multiplex, eof=line is None
            )
        except HostError:
            self.proc.kill()  # Start's deferred runner.Kill on any error
            raise
        return self.parsed

    def _spawn_thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        first = True
        for raw in iter(self.proc.stdout.readline, b""):
            if first:
                # bufio.Scanner's ScanLines drops "\n" and one "\r" before it.
                self.first_line = raw.decode("utf-8", "replace").removesuffix("\n")
                self.first_line = self.first_line.removesuffix("\r")
                self._lines.put(self.first_line)
                first = False
            else:
                self.stdout_discarded += 1  # "read the lines from stdout forever"
        if first:
            self._lines.put(None)
        self.proc.stdout.close()

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_lines.append(line)
            self.hclog.feed(line)
        self.proc.stderr.close()

    def _wait_exit(self) -> None:
        assert self.proc is not None
        for thread in self._threads[:2]:  # pipesWaitGroup, then runner.Wait
            thread.join()
        self.proc.wait()
        self._done.set()

    # --- Client -----------------------------------------------------------------------

    @property
    def target(self) -> str:
        assert self.parsed is not None
        if self.parsed.network == "unix":
            return f"unix:{self.parsed.address}"
        return self.parsed.address

    def client(self) -> grpc.Channel:
        """``Client.Client``: dial (lazily), then StartStream and StreamStdio at once."""
        if self.channel is not None:
            return self.channel
        if self.parsed is None:
            raise RuntimeError("start() first")
        options: list[tuple[str, object]] = [
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.default_authority", "unused"),
        ]
        if self.auto_mtls:
            ident = self._host_identity()
            root = None
            if self.parsed.server_cert_der is not None:
                import ssl

                root = ssl.DER_cert_to_PEM_cert(self.parsed.server_cert_der).encode("ascii")
            credentials = grpc.ssl_channel_credentials(
                root_certificates=root,
                private_key=ident.key_pem,
                certificate_chain=ident.cert_pem,
            )
            options.append(("grpc.ssl_target_name_override", "localhost"))
            channel = grpc.secure_channel(self.target, credentials, options=options)
        else:
            channel = grpc.insecure_channel(self.target, options=options)
        self.channel = channel
        starters = [self._start_broker, self._start_stdio]
        if self.first_stream == "stdio":
            starters.reverse()
        for starter in starters:
            starter(channel)
        return channel

    def broker_send(self, conn_info: bytes) -> None:
        """``GRPCBroker.Accept``'s Send: a serialized ConnInfo to the plugin."""
        self._broker_outgoing.put(conn_info)

    def _start_broker(self, channel: grpc.Channel) -> None:
        outgoing = self._broker_outgoing

        def requests() -> Iterator[bytes]:
            # The host sends only what it brokers (broker_send), until Close.
            while (message := outgoing.get()) is not None:
                yield message

        call = channel.stream_stream(
            START_STREAM, request_serializer=identity, response_deserializer=identity
        )(requests())
        self._broker_call = call

        def run() -> None:
            try:
                for message in call:
                    self.broker_received.append(decode_conn_info(message))
                self.broker_end = "EOF"
            except grpc.RpcError as exc:
                self.broker_end = exc.code().name

        self._stream_thread(run, "fakehost-broker")

    def _start_stdio(self, channel: grpc.Channel) -> None:
        call = channel.unary_stream(
            STREAM_STDIO, request_serializer=identity, response_deserializer=identity
        )(EMPTY)

        def run() -> None:
            try:
                for message in call:  # one Recv, then the (possibly blocking) write
                    channel_id, data = decode_stdio_data(message)
                    if channel_id in (STDIO_STDOUT, STDIO_STDERR):
                        self.stdio_writer(channel_id, data)
                    else:
                        self.stdio_unknown_channels.append(channel_id)
                self.stdio_end = "EOF"
            except grpc.RpcError as exc:
                code = exc.code()
                self.stdio_end = code.name if code in _STDIO_QUIET else f"error {code.name}"

        self._stream_thread(run, "fakehost-stdio")

    def _stream_thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        self._stream_threads.append(thread)
        thread.start()

    def ping(self) -> int:
        """``GRPCClient.Ping``: Health/Check of service "plugin"; returns the status number."""
        channel = self.client()
        check = channel.unary_unary(
            HEALTH_CHECK,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        reply = check(health_pb2.HealthCheckRequest(service="plugin"), timeout=self.guard)
        return int(reply.status)

    # --- Kill -------------------------------------------------------------------------

    def kill(self) -> KillReport:
        """``Client.Kill``; idempotent. Returns (and keeps) what happened."""
        with self._lock:
            if self.kill_report is not None:
                return self.kill_report
            report = self.kill_report = KillReport()
        if self.proc is None:
            return report
        started = time.monotonic()
        if self.parsed is not None:
            report.graceful = self._close_client(report)
        exited = report.graceful and self._done.wait(KILL_GRACE)
        if not exited:
            report.forced_kill = True  # "plugin failed to exit gracefully"
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)
            self._done.wait(self.guard)
        report.seconds = time.monotonic() - started
        report.returncode = self.proc.returncode
        self._release(report)
        return report

    def _close_client(self, report: KillReport) -> bool:
        """``GRPCClient.Close``: broker, Shutdown (no deadline), connection. True = no error."""
        try:
            channel = self.client()  # Kill connects first if it never did
        except Exception:
            return False
        self._broker_outgoing.put(None)
        if self._broker_call is not None:
            self._broker_call.cancel()
        shutdown = channel.unary_unary(
            SHUTDOWN, request_serializer=identity, response_deserializer=identity
        )
        try:
            shutdown(EMPTY, timeout=self.guard)  # Go: doneCtx, no deadline
            report.shutdown_status = "OK"
        except grpc.RpcError as exc:  # ignored by Go, like every Shutdown error
            report.shutdown_status = exc.code().name
        channel.close()
        return True

    def _release(self, report: KillReport) -> None:
        for thread in self._threads:  # clientWaitGroup
            thread.join(self.guard)
        closer = getattr(self.stdio_writer, "close", None)
        if callable(closer):
            closer()  # a writer blocked in the stdio loop is released for good
        for thread in self._stream_threads:
            thread.join(self.guard)
        if self.parsed is not None and self.parsed.network == "unix":
            report.socket_left_by_plugin = os.path.exists(self.parsed.address)
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    # --- context manager --------------------------------------------------------------

    def __enter__(self) -> FakeNewestHost:
        try:
            self.start()
            self.client()
        except BaseException:
            self.kill()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

    @property
    def alive_threads(self) -> list[str]:
        return [t.name for t in (*self._threads, *self._stream_threads) if t.is_alive()]
