"""``pyvider-rpcplugin-sync conformance plugin|host``: arguments, output, exit codes.

Exit codes: 0 every required check passed; 1 a required check failed; 2 the
command line is wrong; 3 the kit could not run (the command cannot be started).
Errors are one ``error:`` line and a ``hint:`` line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .model import EXIT_NOT_RUN, EXIT_USAGE, Report
from .spawn import KitError


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],  # pyright: ignore[reportPrivateUsage]
) -> None:
    conformance = commands.add_parser(
        "conformance",
        help="check any go-plugin plugin or host against the protocol",
        description="Run a battery of protocol checks. Exit 0: every required check passed; "
        "1: a required check failed; 2: bad arguments; 3: the kit could not run.",
    )
    kinds = conformance.add_subparsers(title="what to check")
    plugin = kinds.add_parser("plugin", help="start a plugin several times and check what it does")
    plugin.add_argument(
        "--cookie",
        default="PLUGIN_MAGIC_COOKIE=test_cookie_value",
        help="KEY=VALUE the plugin expects (default pyvider-rpcplugin's)",
    )
    plugin.add_argument(
        "--versions", default="1", help="app protocol versions the host offers, e.g. 5,6"
    )
    plugin.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="extra environment for every start (repeatable)",
    )
    plugin.add_argument(
        "--tcp-env",
        action="append",
        default=None,
        metavar="K=V",
        help="environment that makes the plugin listen on TCP: adds the TCP checks",
    )
    plugin.add_argument(
        "--start-timeout", type=float, default=10.0, help="seconds for the handshake line"
    )
    plugin.add_argument("--json", action="store_true", help="print the report as JSON")
    plugin.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the plugin command")
    plugin.set_defaults(conformance=_run_plugin)

    host = kinds.add_parser("host", help="point a host at a probe plugin and record what it does")
    host.add_argument(
        "--cookie",
        default="PLUGIN_MAGIC_COOKIE=test_cookie_value",
        help="KEY=VALUE the host sends (the probe checks it)",
    )
    host.add_argument("--versions", default="1", help="app versions the probe implements, e.g. 5,6")
    host.add_argument(
        "--probe-env",
        default="CONFORMANCE_PROBE",
        help="variable that gives the host command the probe's path (default CONFORMANCE_PROBE); "
        "'{probe}' in the command is replaced too",
    )
    host.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="extra environment for the host command ('{probe}' is replaced) (repeatable)",
    )
    host.add_argument(
        "--probe-name",
        default="conformance-probe",
        help="file name of the probe executable (e.g. terraform-provider-NAME)",
    )
    host.add_argument(
        "--timeout", type=float, default=20.0, help="seconds the host command may run"
    )
    host.add_argument("--json", action="store_true", help="print the report as JSON")
    host.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the host command")
    host.set_defaults(conformance=_run_host)
    conformance.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Entry point from the main command line."""
    if not hasattr(args, "conformance"):
        print(
            "error: say what to check: conformance plugin -- CMD, or conformance host -- CMD",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        report: Report = args.conformance(args)
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KitError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return EXIT_NOT_RUN
    except OSError as exc:  # the kit's own files and sockets
        print(f"error: the kit could not run: {exc}", file=sys.stderr)
        print("hint: check that TMPDIR is a short, writable directory", file=sys.stderr)
        return EXIT_NOT_RUN
    print(report.to_json() if args.json else report.to_table())
    return report.exit_code


class _UsageError(ValueError):
    pass


def _cmd(words: Sequence[str]) -> list[str]:
    cmd = list(words)
    if cmd[:1] == ["--"]:
        cmd = cmd[1:]
    if not cmd:
        raise _UsageError("give the command after --, e.g. conformance plugin -- ./my-plugin")
    return cmd


def _pair(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise _UsageError(f"{flag} wants KEY=VALUE, got {text!r}")
    return key, value


def _versions(text: str) -> list[int]:
    try:
        versions = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise _UsageError(f"--versions wants comma-separated integers, got {text!r}") from None
    if not versions:
        raise _UsageError("--versions is empty")
    return versions


def _run_plugin(args: argparse.Namespace) -> Report:
    from .plugin import PluginOptions, check_plugin

    options = PluginOptions(
        cmd=_cmd(args.cmd),
        cookie=_pair(args.cookie, "--cookie"),
        versions=_versions(args.versions),
        env=dict(_pair(item, "--env") for item in args.env),
        tcp_env=None
        if args.tcp_env is None
        else dict(_pair(item, "--tcp-env") for item in args.tcp_env),
        start_timeout=args.start_timeout,
    )
    return check_plugin(options)


def _run_host(args: argparse.Namespace) -> Report:
    from .host import HostOptions, check_host

    options = HostOptions(
        cmd=_cmd(args.cmd),
        cookie=_pair(args.cookie, "--cookie"),
        versions=_versions(args.versions),
        env=dict(_pair(item, "--env") for item in args.env),
        probe_env=args.probe_env,
        probe_name=args.probe_name,
        timeout=args.timeout,
    )
    return check_host(options)
