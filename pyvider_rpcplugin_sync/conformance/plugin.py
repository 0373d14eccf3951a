"""``conformance plugin``: starts a plugin several times and runs the battery.

Runs, each a fresh process: without the cookie; plaintext (line, listener,
health, stdio, broker, controller); with the versions reversed and with none in
common; AutoMTLS; signals and a closed stdin; optionally TCP (``tcp_env``).
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import grpcprobe, h2, judge, tlsprobe
from .line import HandshakeLine
from .model import Report, judged, skipped
from .plugin_tls import SHUTDOWN_GRACE, signals_run, tls_run
from .spawn import Started, plugin_environ, private_dir, short_tmp, started

EXIT_WAIT = 0.5  # how long a plugin that printed something may take to exit
STREAM_HOLD = 0.5  # a streaming service that is there keeps the stream open this long
UNKNOWN_VERSION = 9999


@dataclass
class PluginOptions:
    cmd: Sequence[str]
    cookie: tuple[str, str] = ("PLUGIN_MAGIC_COOKIE", "test_cookie_value")
    versions: Sequence[int] = (1,)
    env: Mapping[str, str] = field(default_factory=dict[str, str])
    tcp_env: Mapping[str, str] | None = None
    start_timeout: float = 10.0
    call_timeout: float = 2.0
    base_environ: Mapping[str, str] | None = None


class _Run:
    def __init__(self, options: PluginOptions, workdir: Path) -> None:
        self.o = options
        self.workdir = workdir
        self.tmp = private_dir(workdir, "tmp")
        self.report = Report("plugin", list(options.cmd))
        base = os.environ if options.base_environ is None else options.base_environ
        self.base = plugin_environ(base, options.cookie[0], {"TMPDIR": str(self.tmp)})
        self.base.update(options.env)
        low = random.randrange(20000, 40000)
        self.port_range = (low, low + 50)

    def env(
        self,
        *,
        cookie: bool = True,
        versions: Sequence[int] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        env = dict(self.base)
        if cookie:
            env[self.o.cookie[0]] = self.o.cookie[1]
        env["PLUGIN_PROTOCOL_VERSIONS"] = ",".join(str(v) for v in (versions or self.o.versions))
        env["PLUGIN_MIN_PORT"], env["PLUGIN_MAX_PORT"] = map(str, self.port_range)
        env.update(extra or {})
        return env

    def line_of(self, plugin: Started) -> str | None:
        try:
            return plugin.first_line(self.o.start_timeout)
        except TimeoutError:
            return None

    # --- the runs -------------------------------------------------------------

    def cookie(self) -> None:
        with started(self.o.cmd, self.env(cookie=False)) as plugin:
            try:
                line = plugin.first_line(self.o.start_timeout)
            except TimeoutError:  # neither a line nor an exit: still running
                line, code = None, plugin.wait(0)
            else:
                # EOF: the plugin exits (or closed stdout); a line: it may still refuse and exit.
                code = plugin.wait(self.o.start_timeout if line is None else EXIT_WAIT)
            for result in judge.cookie_refusal(line, code, plugin.stderr_text()):
                self.report.add(result)

    def main(self) -> HandshakeLine | None:
        socket_dir = private_dir(self.workdir, "sockets")
        with started(
            self.o.cmd, self.env(extra={"PLUGIN_UNIX_SOCKET_DIR": str(socket_dir)})
        ) as plugin:
            try:
                raw = plugin.first_line(self.o.start_timeout)
            except TimeoutError:
                self.report.add(
                    judged(
                        "handshake.line",
                        "first stdout line is the handshake",
                        False,
                        f"no line within {self.o.start_timeout:.0f} s",
                        "print the handshake line and flush stdout",
                    )
                )
                return None
            result, parsed = judge.first_line(
                raw,
                plugin.wait(0.2) if raw is None else None,
                plugin.stderr_text(),
                self.o.start_timeout,
            )
            self.report.add(result)
            if parsed is None:
                return None
            self.report.facts.update(
                version=parsed.app_version,
                network=parsed.network,
                start_ms=round((time.monotonic() - plugin.started_at) * 1000),
            )
            for r in judge.line_shape(parsed):
                self.report.add(r)
            self.report.add(judge.negotiated(parsed, self.o.versions))
            for r in judge.listener(parsed, str(socket_dir), self.port_range):
                self.report.add(r)
            self.services(parsed)
            self.controller(plugin, parsed)
            if parsed.network == "unix":
                gone = not os.path.exists(parsed.address)
                self.report.add(
                    judged(
                        "listener.socket_removed",
                        "socket file removed on exit",
                        gone,
                        "removed" if gone else "left behind",
                        "remove the socket file when the server stops",
                        required=False,
                    )
                )
            self.report.add(judge.hclog_lines(plugin.stderr_text()))
            if plugin.stdout_after:
                self.report.facts["stdout_after_handshake"] = len(plugin.stdout_after)
            return parsed

    def services(self, parsed: HandshakeLine) -> None:
        ch = grpcprobe.channel(parsed.network, parsed.address)
        try:
            status, error = grpcprobe.health(ch, "plugin", self.o.call_timeout)
            self.report.add(
                judged(
                    "health.plugin",
                    "Health/Check('plugin') is SERVING",
                    status == "SERVING",
                    status or error,
                    "serve grpc.health.v1.Health with service 'plugin' SERVING",
                )
            )
            if error.startswith(grpcprobe.UNREACHABLE):
                for name, what in (
                    ("stdio.stream", "GRPCStdio/StreamStdio held open"),
                    ("broker.stream", "GRPCBroker/StartStream accepted"),
                ):
                    self.report.add(
                        skipped(name, what, "the plugin is not reachable", required=False)
                    )
                return
            open_, how = grpcprobe.stream_stays_open(ch, grpcprobe.STDIO, STREAM_HOLD, bidi=False)
            self.report.add(
                judged(
                    "stdio.stream",
                    "GRPCStdio/StreamStdio held open",
                    open_,
                    how,
                    "serve plugin.GRPCStdio (go-plugin >= 1.1 hosts call it at once)",
                    required=False,
                )
            )
            open_, how = grpcprobe.stream_stays_open(ch, grpcprobe.BROKER, STREAM_HOLD, bidi=True)
            self.report.add(
                judged(
                    "broker.stream",
                    "GRPCBroker/StartStream accepted",
                    open_,
                    how,
                    "serve plugin.GRPCBroker/StartStream, even if you broker nothing",
                    required=False,
                )
            )
        finally:
            ch.close()

    def controller(self, plugin: Started, parsed: HandshakeLine) -> None:
        sent = time.monotonic()
        try:
            sock = tlsprobe.connect(parsed.network, parsed.address, self.o.call_timeout)
        except OSError:
            exchange = h2.Exchange(closed=True)  # nothing listens there: no reply
        else:
            exchange = h2.unary_call(sock, grpcprobe.SHUTDOWN, SHUTDOWN_GRACE)
        code = plugin.wait(max(0.0, SHUTDOWN_GRACE - (time.monotonic() - sent)))
        seconds = time.monotonic() - sent
        self.report.facts["shutdown_ms"] = round(seconds * 1000) if code is not None else None
        for r in judge.shutdown(exchange, code, seconds):
            self.report.add(r)

    def versions(self, chosen: int) -> None:
        if len(self.o.versions) > 1:
            reversed_ = list(reversed(self.o.versions))
            with started(self.o.cmd, self.env(versions=reversed_)) as plugin:
                got = self._version(plugin)
            self.report.add(
                judged(
                    "versions.order",
                    "same choice whatever the order offered",
                    got == chosen,
                    f"{got} with {','.join(map(str, reversed_))}, {chosen} before",
                    "sort the offered versions: hosts send them in any order",
                )
            )
        else:
            self.report.add(
                skipped(
                    "versions.order",
                    "same choice whatever the order offered",
                    "one version offered (--versions 5,6 to test)",
                )
            )
        with started(self.o.cmd, self.env(versions=[UNKNOWN_VERSION])) as plugin:
            got = self._version(plugin)
        ok = got != UNKNOWN_VERSION
        observed = "refused to start" if got is None else f"answered version {got}"
        self.report.add(
            judged(
                "versions.none_common",
                "no common version: never claims the host's",
                ok,
                observed,
                "answer only versions you implement",
            )
        )

    def _version(self, plugin: Started) -> int | None:
        raw = self.line_of(plugin)
        if raw is None:
            return None
        try:
            return int(raw.strip().split("|")[1])
        except (IndexError, ValueError):
            return None

    def tcp(self) -> None:
        assert self.o.tcp_env is not None
        with started(self.o.cmd, self.env(extra=self.o.tcp_env)) as plugin:
            raw = self.line_of(plugin)
            result, parsed = judge.first_line(raw, None, plugin.stderr_text(), self.o.start_timeout)
            if parsed is None:
                self.report.add(dataclasses.replace(result, check="tcp.line"))
                return
            if parsed.network != "tcp":
                self.report.add(
                    judged(
                        "tcp.listener",
                        "TCP when asked through --tcp-env",
                        False,
                        f"network {parsed.network}",
                        "check the --tcp-env variables",
                    )
                )
                return
            for r in judge.listener(parsed, "", self.port_range):
                if r.check != "listener.socket_dir":
                    self.report.add(
                        dataclasses.replace(r, check=r.check.replace("listener", "tcp"))
                    )
            ch = grpcprobe.channel(parsed.network, parsed.address)
            try:
                status, error = grpcprobe.health(ch, "plugin", self.o.call_timeout)
            finally:
                ch.close()
            self.report.add(
                judged(
                    "tcp.health",
                    "Health/Check('plugin') over TCP",
                    status == "SERVING",
                    status or error,
                    "serve health on the TCP listener too",
                )
            )


def check_plugin(options: PluginOptions) -> Report:
    """Run the whole battery; every process started is gone when this returns."""
    begin = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="pyv-conf-", dir=short_tmp()))
    try:
        run = _Run(options, workdir)
        run.cookie()
        parsed = run.main()
        if parsed is not None:
            run.versions(parsed.app_version)
            if options.tcp_env is not None:
                run.tcp()
            tls_run(run)
            signals_run(run)
        else:
            run.report.add(
                skipped("battery", "the other checks", "no handshake: nothing else can be checked")
            )
        run.report.seconds = time.monotonic() - begin
        return run.report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


__all__ = ["PluginOptions", "check_plugin"]
