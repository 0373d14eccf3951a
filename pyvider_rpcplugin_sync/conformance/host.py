"""``conformance host``: runs a host command pointed at the probe plugin and judges
what the probe saw (environment, calls, Shutdown, the wait before the kill).

Two runs: an honest probe, then (when the host asked for AutoMTLS) a probe
that advertises a foreign certificate, which a host must refuse to talk to.
The host command finds the probe through ``$CONFORMANCE_PROBE`` (its
directory: ``$CONFORMANCE_PROBE_DIR``) or ``{probe}`` in its arguments.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import Report, Result, judged, passed, skipped
from .spawn import KitError, private_dir, short_tmp

INTERNAL = (
    "/plugin.GRPCBroker/StartStream",
    "/plugin.GRPCStdio/StreamStdio",
    "/grpc.health.v1.Health/Check",
)


FOREIGN_TIMEOUT = 6.0  # a host that refuses the plugin fails fast; one that hangs is killed


@dataclass
class HostOptions:
    cmd: Sequence[str]
    cookie: tuple[str, str] = ("PLUGIN_MAGIC_COOKIE", "test_cookie_value")
    versions: Sequence[int] = (1,)
    env: Mapping[str, str] = field(default_factory=dict[str, str])
    probe_env: str = "CONFORMANCE_PROBE"
    probe_name: str = "conformance-probe"
    timeout: float = 20.0


@dataclass
class Launch:
    """One probe process as the report socket saw it (times: kit clock)."""

    events: list[tuple[float, dict[str, Any]]] = field(
        default_factory=list[tuple[float, dict[str, Any]]]
    )
    ended: float | None = None

    def first(self, name: str) -> tuple[float, dict[str, Any]] | None:
        for at, event in self.events:
            if event.get("event") == name:
                return at, event
        return None

    @property
    def env(self) -> dict[str, Any]:
        found = self.first("start")
        return found[1].get("env", {}) if found else {}

    @property
    def methods(self) -> list[str]:
        return [e["method"] for _, e in self.events if e.get("event") == "rpc"]


class _Collector:
    def __init__(self, path: Path) -> None:
        self.launches: list[Launch] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(str(path))
        self._sock.listen(64)
        self._threads: list[threading.Thread] = []
        self._accept = threading.Thread(target=self._serve, daemon=True)
        self._accept.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            launch = Launch()
            with self._lock:
                self.launches.append(launch)
            thread = threading.Thread(target=self._read, args=(conn, launch), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read(self, conn: socket.socket, launch: Launch) -> None:
        with conn, conn.makefile("rb") as stream:
            for raw in stream:
                with contextlib.suppress(ValueError):
                    launch.events.append((time.monotonic(), json.loads(raw)))
        launch.ended = time.monotonic()

    def close(self, timeout: float) -> list[Launch]:
        self._sock.close()
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))
        return list(self.launches)


def write_probe(directory: Path, name: str, config: Mapping[str, Any]) -> Path:
    path = directory / name
    path.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "from pyvider_rpcplugin_sync.conformance.probe import main\n"
        f"sys.exit(main(json.loads({json.dumps(dict(config))!r})))\n",
        encoding="utf-8",
    )
    path.chmod(0o700)
    return path


def _run_host(
    options: HostOptions, workdir: Path, mode: str, token: str, timeout: float
) -> tuple[list[Launch], int | None, str]:
    run_dir = workdir / mode
    run_dir.mkdir(mode=0o700)
    collector = _Collector(run_dir / "report.sock")
    probe = write_probe(
        run_dir,
        options.probe_name,
        {
            "report": str(run_dir / "report.sock"),
            "cookie_key": options.cookie[0],
            "cookie_value": options.cookie[1],
            "versions": list(options.versions),
            "mode": mode,
            "log_token": token,
        },
    )
    cmd = [word.replace("{probe}", str(probe)) for word in options.cmd]
    env = dict(os.environ)
    env.update({k: v.replace("{probe}", str(probe)) for k, v in options.env.items()})
    env[options.probe_env] = str(probe)
    # The host's and the probe's temporary files (sockets of a killed probe) go with run_dir.
    env["TMPDIR"] = str(private_dir(run_dir, "tmp"))
    env[f"{options.probe_env}_DIR"] = str(run_dir)
    try:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        collector.close(0)
        raise KitError(
            f"cannot start {cmd[0]!r}: {exc.strerror or exc}",
            "give the host's command after --; point it at the probe with {probe} or "
            f"${options.probe_env}",
        ) from None
    try:
        output, _ = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        code = None
    launches = collector.close(2.0)
    for launch in launches:  # a probe the host left running
        started = launch.first("start")
        if started and launch.ended is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(started[1]["pid"]), signal.SIGKILL)
    launches = [launch for launch in launches if launch.first("start")]
    return launches, code, output.decode("utf-8", "replace")


def hclog_seen(output: str, token: str, raw_lines: Sequence[str]) -> str:
    """How the probe's hclog line (message ``token``, as written: ``raw_lines``) shows in
    the host's output: copied as it was, or read and logged again in the host's format."""
    lines = [line for line in output.splitlines() if token in line]
    if not lines:
        return "not in the host's output"
    if all(any(raw in line for raw in raw_lines) for line in lines):
        return "shown raw: not read as hclog"
    return "read as hclog: its message shown, not its JSON"


def judge_honest(
    report: Report,
    *,
    launches: Sequence[Launch],
    code: int | None,
    output: str,
    token: str,
    options: HostOptions,
) -> None:
    expect = "the host starts the plugin"
    if not launches:
        report.add(
            judged(
                "host.launched",
                expect,
                False,
                f"no probe started; host exit {code}: {output.strip()[-160:]}",
                "point the host at the probe: {probe} in its arguments or $" + options.probe_env,
            )
        )
        return
    report.add(passed("host.launched", expect, f"{len(launches)} launch(es), host exit {code}"))
    report.facts["launches"] = len(launches)
    report.facts["host_exit"] = code
    env = launches[0].env
    report.facts["environment"] = {k: v for k, v in env.items() if k != "argv"}
    report.add(
        judged(
            "host.cookie",
            "the magic cookie is set to the expected value",
            env.get("cookie") == "match",
            str(env.get("cookie")),
            "set the cookie variable in the plugin's environment",
        )
    )
    raw = env.get("PLUGIN_PROTOCOL_VERSIONS")
    ok = bool(raw) and all(part.isdigit() for part in str(raw).split(","))
    report.add(
        judged(
            "host.versions",
            "PLUGIN_PROTOCOL_VERSIONS: comma-separated integers",
            ok,
            repr(raw),
            "send the versions the host implements, e.g. PLUGIN_PROTOCOL_VERSIONS=5,6",
        )
    )
    low, high = env.get("PLUGIN_MIN_PORT"), env.get("PLUGIN_MAX_PORT")
    ok = bool(low and high and low.isdigit() and high.isdigit() and int(low) <= int(high))
    report.add(
        judged(
            "host.ports",
            "PLUGIN_MIN_PORT <= PLUGIN_MAX_PORT",
            ok,
            f"{low}..{high}",
            "send the TCP port range (go-plugin: 10000..25000)",
            required=False,
        )
    )
    cert = env.get("client_cert")
    if cert is None:
        report.add(
            skipped(
                "host.client_cert",
                "PLUGIN_CLIENT_CERT: a PEM certificate for localhost",
                "no AutoMTLS (PLUGIN_CLIENT_CERT not set)",
                required=False,
            )
        )
    else:
        ok = bool(cert.get("ok")) and not cert.get("problems")
        report.add(
            judged(
                "host.client_cert",
                "PLUGIN_CLIENT_CERT: a PEM certificate for localhost",
                ok,
                cert.get("describe") or cert.get("error", "") + "; ".join(cert.get("problems", [])),
                "pass a self-signed PEM certificate with DNS:localhost and clientAuth",
                required=False,
            )
        )
    report.add(
        Result(
            "host.multiplex",
            "PLUGIN_MULTIPLEX_GRPC only for multiplexing plugins",
            "info",
            repr(env.get("PLUGIN_MULTIPLEX_GRPC")),
            required=False,
        )
    )
    methods = [m for launch in launches for m in launch.methods]
    report.add(
        judged(
            "host.connected",
            "the host calls the plugin",
            bool(methods),
            f"{len(methods)} calls",
            "dial the handshake's address (with the plugin's certificate)",
        )
    )
    internal = sorted({m.rsplit("/", 1)[-1] for m in methods if m in INTERNAL})
    report.add(
        Result(
            "host.internal_calls",
            "StartStream, StreamStdio (go-plugin >= 1.1), Health/Check on ping",
            "info",
            ", ".join(internal) or "none",
            required=False,
        )
    )
    shutdowns = [launch for launch in launches if launch.first("shutdown")]
    report.add(
        judged(
            "host.shutdown",
            "GRPCController/Shutdown before the kill",
            bool(shutdowns),
            f"{len(shutdowns)} of {len(launches)} launches",
            "call plugin.GRPCController/Shutdown to stop a plugin gracefully",
        )
    )
    waits: list[float] = []
    signals: list[str] = []
    for launch in shutdowns:
        at = launch.first("shutdown")
        term = launch.first("sigterm")
        if at and term:
            waits.append(term[0] - at[0])
            signals.append("SIGTERM")
        elif at and launch.ended is not None and not launch.first("gave_up"):
            waits.append(launch.ended - at[0])
            signals.append("SIGKILL")
    expect = "after Shutdown, about 2 s before a signal"
    if waits:
        report.facts["signal_after_shutdown_ms"] = [round(w * 1000) for w in waits]
        report.add(
            judged(
                "host.kill_wait",
                expect,
                all(w >= 1.0 for w in waits),
                f"{signals[0]} after {waits[0] * 1000:.0f} ms",
                "give the plugin time to exit (go-plugin: 2 s) before signalling it",
                required=False,
            )
        )
    elif shutdowns:
        report.add(
            Result(
                "host.kill_wait",
                expect,
                "fail",
                "never signalled the probe that ignored Shutdown",
                "kill a plugin that does not exit",
                required=False,
            )
        )
    starts = [found[1] for launch in launches if (found := launch.first("start"))]
    report.add(
        Result(
            "host.hclog",
            "plugin's hclog lines reach the host's log",
            "info",
            hclog_seen(
                output, token, [str(e.get("log_line", "")) for e in starts if e.get("log_line")]
            ),
            required=False,
        )
    )


def check_host(options: HostOptions) -> Report:
    begin = time.monotonic()
    report = Report("host", list(options.cmd))
    workdir = Path(tempfile.mkdtemp(prefix="pyv-conf-", dir=short_tmp()))
    try:
        token = f"conformance-probe-{secrets.token_hex(4)}"
        launches, code, output = _run_host(options, workdir, "honest", token, options.timeout)
        report.facts["honest_run_s"] = round(time.monotonic() - begin, 2)
        judge_honest(
            report, launches=launches, code=code, output=output, token=token, options=options
        )
        tls = bool(launches) and launches[0].env.get("client_cert") is not None
        expect = "refuses a plugin whose certificate is not the advertised one"
        if tls:
            second = time.monotonic()
            foreign, foreign_code, _ = _run_host(
                options, workdir, "foreign_cert", token, min(options.timeout, FOREIGN_TIMEOUT)
            )
            report.facts["foreign_cert_run_s"] = round(time.monotonic() - second, 2)
            methods = [m for launch in foreign for m in launch.methods]
            report.add(
                judged(
                    "host.verifies_plugin_cert",
                    expect,
                    bool(foreign) and not methods,
                    (f"{len(methods)} calls got through" if methods else "no call got through")
                    + (
                        ""
                        if foreign_code is not None
                        else f"; the host hung (killed after {FOREIGN_TIMEOUT:.0f} s)"
                    ),
                    "trust only the certificate of handshake field 6, name localhost",
                )
            )
        else:
            report.add(skipped("host.verifies_plugin_cert", expect, "no AutoMTLS"))
        report.seconds = time.monotonic() - begin
        return report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
