"""Verdicts of the plugin battery that need no process: cookie refusal, the line,
the listener address, stderr as hclog, the controller's frames."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import stat
from collections.abc import Sequence
from typing import cast

from . import h2
from .line import HandshakeLine, LineError, parse_line
from .model import Result, judged, passed, skipped

COOKIE_MESSAGE = "This binary is a plugin"
LOOPBACK_NAMES = ("localhost",)
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)")
HCLOG_LEVELS = ("trace", "debug", "info", "warn", "error")


def cookie_refusal(line: str | None, code: int | None, stderr: str) -> list[Result]:
    expect = "no cookie: exit non-zero, no handshake line"
    if code is None:
        refuses = judged(
            "cookie.refuses",
            expect,
            False,
            "still running without the cookie",
            "compare the magic cookie variable with the expected value before listening; "
            "exit 1 on mismatch",
        )
    elif line and _is_handshake(line):
        refuses = judged(
            "cookie.refuses",
            expect,
            False,
            f"printed {line.strip()[:60]!r} (exit {code})",
            "refuse to start when the cookie is missing or wrong",
        )
    else:
        refuses = judged(
            "cookie.refuses",
            expect,
            code != 0,
            f"exit {code}",
            "exit with a non-zero code when the cookie does not match",
        )
    message = judged(
        "cookie.message",
        f"stderr says {COOKIE_MESSAGE!r}...",
        COOKIE_MESSAGE.lower() in stderr.lower(),
        _tail(stderr) or "stderr empty",
        "print go-plugin's message: 'This binary is a plugin. These are not meant to be executed "
        "directly. Please execute the program that consumes these plugins, which will load any "
        "plugins automatically'",
    )
    return [refuses, message]


def _is_handshake(line: str) -> bool:
    try:
        parse_line(line)
    except LineError:
        return False  # stdout noise: check handshake.line reports it
    return True


def first_line(
    raw: str | None, code: int | None, stderr: str, timeout: float
) -> tuple[Result, HandshakeLine | None]:
    expect = "first stdout line is the handshake"
    hint_noise = "print nothing to stdout before the handshake line (log to stderr)"
    if raw is None:
        observed = (
            f"exited ({code}) before printing a line" if code is not None else "stdout closed"
        )
        return judged(
            "handshake.line",
            expect,
            False,
            f"{observed}; stderr: {_tail(stderr)}",
            "check the plugin starts with the cookie given (--cookie KEY=VALUE)",
        ), None
    try:
        parsed = parse_line(raw)
    except LineError as exc:
        return judged("handshake.line", expect, False, str(exc), hint_noise), None
    return passed(
        "handshake.line", expect, raw.strip()[:70] + ("..." if len(raw.strip()) > 70 else "")
    ), parsed


def line_shape(parsed: HandshakeLine) -> list[Result]:
    six = judged(
        "handshake.fields",
        "six fields (a 7th only with PLUGIN_MULTIPLEX_GRPC)",
        parsed.field_count == 6,
        f"{parsed.field_count} fields",
        "print CORE|APP|NETWORK|ADDRESS|grpc|CERT, the last field empty without TLS: "
        "go-plugin < 1.6 hosts glue a 7th field onto the certificate, "
        "pyvider-rpcplugin hosts need six",
        required=False,
    )
    no_cert = judged(
        "handshake.no_cert",
        "no certificate unless PLUGIN_CLIENT_CERT is set",
        parsed.cert == "",
        "empty" if parsed.cert == "" else f"{len(parsed.cert)} characters",
        "send a certificate only when the host asked for AutoMTLS: a go-plugin host without "
        "TLS crashes on one",
    )
    return [six, no_cert]


def negotiated(parsed: HandshakeLine, offered: Sequence[int]) -> Result:
    return judged(
        "versions.negotiated",
        "app version is one the host offered",
        parsed.app_version in offered,
        f"version {parsed.app_version}, offered {','.join(map(str, offered))}",
        "choose the highest of your versions that PLUGIN_PROTOCOL_VERSIONS lists",
    )


def listener(parsed: HandshakeLine, socket_dir: str, port_range: tuple[int, int]) -> list[Result]:
    results: list[Result] = []
    if parsed.network == "unix":
        try:
            mode = os.stat(parsed.address).st_mode
            ok, observed = (
                stat.S_ISSOCK(mode),
                "a Unix socket" if stat.S_ISSOCK(mode) else "not a socket",
            )
        except OSError as exc:
            ok, observed = False, f"cannot stat: {exc.strerror}"
        results.append(
            judged(
                "listener.address",
                "the address is a listening socket",
                ok,
                observed,
                "print the path of the socket the server listens on",
            )
        )
        inside = os.path.dirname(parsed.address) == socket_dir
        results.append(
            judged(
                "listener.socket_dir",
                "socket inside PLUGIN_UNIX_SOCKET_DIR",
                inside,
                "inside" if inside else f"in {os.path.dirname(parsed.address)}",
                "create the socket in PLUGIN_UNIX_SOCKET_DIR when it is set",
                required=False,
            )
        )
        results.append(
            skipped(
                "listener.port_range",
                "TCP port within PLUGIN_MIN_PORT..PLUGIN_MAX_PORT",
                "listens on a Unix socket",
            )
        )
        return results
    host, _, port_text = parsed.address.rpartition(":")
    host = host.strip("[]")
    try:
        loopback = host in LOOPBACK_NAMES or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    results.append(
        judged(
            "listener.address",
            "TCP on a loopback address",
            loopback,
            parsed.address,
            "listen on 127.0.0.1 only: every local user could reach another address",
        )
    )
    results.append(
        skipped(
            "listener.socket_dir",
            "socket inside PLUGIN_UNIX_SOCKET_DIR",
            "listens on TCP",
            required=False,
        )
    )
    port = int(port_text) if port_text.isdigit() else -1
    low, high = port_range
    results.append(
        judged(
            "listener.port_range",
            "TCP port within PLUGIN_MIN_PORT..PLUGIN_MAX_PORT",
            low <= port <= high,
            f"port {port}, range {low}-{high}",
            "try ports from PLUGIN_MIN_PORT to PLUGIN_MAX_PORT",
        )
    )
    return results


def hclog_lines(stderr: str) -> Result:
    """JSON lines on stderr must carry string @message/@level/@timestamp (a Go host crashes
    on another type) and a timestamp with six fractional digits."""
    expect = "JSON stderr lines are valid hclog"
    bad: list[str] = []
    count = 0
    for line in stderr.splitlines():
        text = line.strip()
        if not text.startswith("{"):
            continue
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        if not isinstance(entry, dict):
            continue
        entry = cast("dict[str, object]", entry)  # JSON object keys are strings
        count += 1
        for key in ("@message", "@level", "@timestamp"):
            if key in entry and not isinstance(entry[key], str):
                bad.append(f"{key} is {type(entry[key]).__name__}")
        stamp = entry.get("@timestamp")
        if isinstance(stamp, str) and not _TIMESTAMP.fullmatch(stamp):
            bad.append(f"@timestamp {stamp!r} lacks six fractional digits")
        level = entry.get("@level")
        if isinstance(level, str) and level.lower() not in HCLOG_LEVELS:
            bad.append(f"@level {level!r}")
    if count == 0:
        return skipped("stderr.hclog", expect, "no JSON lines on stderr", required=False)
    return judged(
        "stderr.hclog",
        expect,
        not bad,
        f"{count} JSON lines" + (f": {bad[0]}" if bad else ""),
        "write @message, @level, @timestamp as strings, the timestamp as "
        "YYYY-MM-DDTHH:MM:SS.ffffff+00:00",
        required=False,
    )


def shutdown(exchange: h2.Exchange, code: int | None, seconds: float) -> list[Result]:
    if exchange.trailers_only:
        served, observed = False, "the call failed without a reply (Unimplemented?)"
    elif code is None:
        served, observed = False, "still running 2 s after Shutdown"
    else:
        served, observed = True, f"exited {code} after {seconds * 1000:.0f} ms"
    results = [
        judged(
            "controller.shutdown",
            "Shutdown served, exit within 2 s",
            served,
            observed,
            "serve plugin.GRPCController/Shutdown: reply, then stop the server and exit "
            "(go-plugin hosts SIGKILL after 2 s)",
        )
    ]
    reply, goaway = exchange.reply_index, exchange.goaway_index
    if reply is None:
        ok, seen = False, "no reply message" + (" (connection dropped)" if exchange.closed else "")
    else:
        ok = goaway is None or reply < goaway
        seen = (
            "reply, then GOAWAY"
            if ok and goaway is not None
            else ("reply, no GOAWAY" if ok else "GOAWAY, then reply")
        )
    results.append(
        judged(
            "controller.reply_first",
            "Shutdown reply before GOAWAY",
            ok,
            seen,
            "stop the server only after the reply has left (h2-based hosts drop "
            "frames after a GOAWAY)",
            required=False,
        )
    )
    results.append(
        judged(
            "exit.code",
            "exit code 0 after Shutdown",
            code == 0,
            f"exit {code}",
            "exit 0 after a Shutdown",
            required=False,
        )
    )
    return results


def _tail(text: str, lines: int = 2) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[:160]
