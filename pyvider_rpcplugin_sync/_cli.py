"""``python -m pyvider_rpcplugin_sync`` / ``pyvider-rpcplugin-sync``.

Commands: demo, inspect, kv, protoc, counter, conformance.

Every failure ends in a message and a hint on stderr and exit code 1, never a
traceback.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import grpc

from ._constants import DEFAULT_CONNECT_TIMEOUT
from ._errors import RPCPluginError
from ._protocol.handshake import HandshakeConfig, printable

if TYPE_CHECKING:
    from ._host.process import PluginProcess
    from ._protos.echo_pb2_grpc import EchoStub

ECHO_PLUGIN = [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.echo_plugin"]
KV_PLUGIN = [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.kv_plugin"]
KV_PLUGIN_ENV = "KV_PLUGIN"
COUNTER_PLUGIN = [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.counter_plugin"]
COUNTER_PLUGIN_ENV = "COUNTER_PLUGIN"
_TAIL_LINE_LIMIT = 200  # characters of each stderr line shown


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.error("a command is required (see --help)")  # usage on stderr, exit 2
    try:
        code: int = args.run(args)
    except RPCPluginError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {cli_hint(exc.hint)}", file=sys.stderr)
        tail = getattr(exc, "stderr_tail", "")
        if "This binary is a plugin" in tail:
            print(
                "hint: the plugin expects another magic cookie: pass --cookie KEY=VALUE",
                file=sys.stderr,
            )
        if tail:
            # Escaped and cut: no control byte of the plugin's reaches the terminal.
            lines = (printable(line, _TAIL_LINE_LIMIT) for line in tail.splitlines())
            print("plugin stderr (last lines):\n" + "\n".join(lines), file=sys.stderr)
        return 1
    except grpc.RpcError as exc:
        print(f"error: the call failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


def _positive(kind: type[int] | type[float], what: str) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` above 0 (``what`` names it in errors)."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (value > 0 and math.isfinite(value)):  # NaN is not above 0 either
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} (it must be above 0)")
        return value

    return parse


# The library's hints name Python parameters; on the command line, the flags say it.
_FLAG_WORDS = (
    ("raise start_timeout", "raise --start-timeout"),
    ("raise connect_timeout", "raise --connect-timeout"),
    ("use tls=False", "use --no-tls"),
    ("use tls=True", "leave out --no-tls"),
    ("transport='tcp'", "--transport tcp"),
    ("argument transport=", "--transport"),
)


def cli_hint(hint: str) -> str:
    """``hint`` with Python parameter names replaced by the command line's flags."""
    for python_words, flag_words in _FLAG_WORDS:
        hint = hint.replace(python_words, flag_words)
    return hint


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyvider-rpcplugin-sync",
        description="Sync hosts and plugins for HashiCorp go-plugin's gRPC protocol.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands")

    demo = commands.add_parser("demo", help="run the bundled echo plugin and call it")
    count = _positive(int, "a whole number")
    demo.add_argument("--threads", type=count, default=4, help="calling threads (default 4)")
    demo.add_argument("--calls", type=count, default=500, help="calls per thread (default 500)")
    demo.add_argument("--no-tls", action="store_true", help="plaintext instead of AutoMTLS")
    demo.set_defaults(run=_run_demo)

    inspect = commands.add_parser("inspect", help="start any go-plugin plugin and describe it")
    _add_plugin_options(inspect, default_cookie=None)
    inspect.add_argument("cmd", nargs=argparse.REMAINDER, help="-- the plugin command")
    inspect.set_defaults(run=_run_inspect)

    kv = commands.add_parser(
        "kv",
        help="go-plugin's KV example host: kv -- CMD... put KEY VALUE | get KEY",
        description=f"CMD defaults to ${KV_PLUGIN_ENV}, else the bundled KV plugin, which keeps "
        "values in $KV_STORE_DIR, else in ~/.local/state/pyvider-rpcplugin-sync/kv "
        "(KV_STORE_DIR=:memory: keeps them in memory, for one run).",
    )
    _add_plugin_options(kv, default_cookie="BASIC_PLUGIN=hello")
    kv.add_argument("words", nargs=argparse.REMAINDER, help="[-- CMD...] put KEY VALUE | get KEY")
    kv.set_defaults(run=_run_kv)

    protoc = commands.add_parser(
        "protoc",
        help="generate Python stubs (_pb2, _pb2_grpc, .pyi) for .proto files",
        description="Needs the codegen extra: pip install 'pyvider-rpcplugin-sync[codegen]'.",
    )
    protoc.add_argument(
        "-I",
        "--proto-path",
        action="append",
        default=[],
        metavar="DIR",
        help="where imports and package paths start (repeatable; default: each file's dir)",
    )
    protoc.add_argument("--out", default=".", metavar="DIR", help="output directory (default .)")
    protoc.add_argument("protos", nargs="+", metavar="FILE.proto")
    protoc.set_defaults(run=_run_protoc)

    counter = commands.add_parser(
        "counter",
        help="go-plugin's bidirectional example host: counter -- CMD... put KEY N | get KEY ...",
        description=f"CMD defaults to ${COUNTER_PLUGIN_ENV}, else the bundled counter plugin. "
        "Every put serves a brokered AddHelper that the plugin calls back.",
    )
    _add_plugin_options(counter, default_cookie="BASIC_PLUGIN=hello")
    counter.add_argument("words", nargs=argparse.REMAINDER, help="[-- CMD...] OP...")
    counter.set_defaults(run=_run_counter)

    from .conformance.cli import add_commands

    add_commands(commands)
    return parser


def _add_plugin_options(parser: argparse.ArgumentParser, default_cookie: str | None) -> None:
    parser.add_argument(
        "--cookie",
        default=default_cookie,
        metavar="KEY=VALUE",
        help="magic cookie (default: pyvider-rpcplugin's)"
        if default_cookie is None
        else f"magic cookie (default: {default_cookie})",
    )
    parser.add_argument("--versions", default="1", help="app protocol versions, e.g. 5,6")
    parser.add_argument("--no-tls", action="store_true", help="do not ask for AutoMTLS")
    parser.add_argument("--transport", choices=("unix", "tcp"), default=None)
    parser.add_argument(
        "--start-timeout",
        type=_positive(float, "a number of seconds"),
        default=30.0,
        metavar="SECONDS",
        help="the whole start may take this long (default 30)",
    )
    parser.add_argument(
        "--connect-timeout",
        type=_positive(float, "a number of seconds"),
        default=DEFAULT_CONNECT_TIMEOUT,
        metavar="SECONDS",
        help=f"the connect step may take this long (default {DEFAULT_CONNECT_TIMEOUT:g})",
    )


def _handshake_from(args: argparse.Namespace) -> HandshakeConfig:
    try:
        versions = tuple(int(v) for v in args.versions.split(",") if v.strip())
    except ValueError:
        raise ValueError(
            f"--versions must be comma-separated integers, not {args.versions!r}"
        ) from None
    if args.cookie is None:
        return HandshakeConfig(protocol_versions=versions)
    key, sep, value = args.cookie.partition("=")
    if not sep:
        raise ValueError("--cookie must look like KEY=VALUE")
    return HandshakeConfig(key, value, versions)


def _strip_dashes(words: Sequence[str]) -> list[str]:
    return list(words[1:]) if words and words[0] == "--" else list(words)


# --- demo ----------------------------------------------------------------------


def _run_demo(args: argparse.Namespace) -> int:
    from ._host.process import PluginProcess
    from ._protos import echo_pb2, echo_pb2_grpc

    print(f"starting the echo plugin: {shlex.join(ECHO_PLUGIN)}")
    begin = time.perf_counter()
    with PluginProcess(ECHO_PLUGIN, tls=not args.no_tls, stub=echo_pb2_grpc.EchoStub) as plugin:
        started = time.perf_counter() - begin
        _print_handshake(plugin)
        print(f"started in {started * 1000:.1f} ms (spawn, handshake, connect)")
        print(f"health: {'SERVING' if plugin.ping() else 'NOT SERVING'}")
        reply = plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"hello, plugin"), timeout=5)
        print(f"echo: {reply.payload.decode()}")
        latencies = _call_from_threads(plugin.stub, args.threads, args.calls)
        total = sum(len(chunk) for chunk in latencies)
        elapsed = max(sum(chunk) for chunk in latencies)
        flat = sorted(x for chunk in latencies for x in chunk)
        print(
            f"{total} echo calls from {args.threads} threads: all replies verified, "
            f"~{total / elapsed:,.0f} calls/s, median {statistics.median(flat) * 1e6:.0f} us, "
            f"p99 {flat[int(len(flat) * 0.99) - 1] * 1e6:.0f} us"
        )
        stop_begin = time.perf_counter()
    print(
        f"shut down in {(time.perf_counter() - stop_begin) * 1000:.1f} ms, "
        f"exit code {plugin.returncode}"
    )
    return 0 if plugin.returncode == 0 else 1


def _call_from_threads(stub: EchoStub, threads: int, calls: int) -> list[list[float]]:
    from ._protos import echo_pb2

    results: list[list[float]] = [[] for _ in range(threads)]
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for n in range(calls):
                payload = f"{index}:{n}".encode()
                began = time.perf_counter()
                reply = stub.Echo(echo_pb2.EchoRequest(payload=payload), timeout=10)
                results[index].append(time.perf_counter() - began)
                if reply.payload != payload:
                    raise AssertionError(f"wrong reply {reply.payload!r} to {payload!r}")
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results


def _print_handshake(plugin: PluginProcess[Any]) -> None:
    line = plugin.handshake_line
    assert line is not None  # set by a successful start
    cert = "none"
    tls = "off (plaintext)"
    if line.server_cert:
        from ._transport.tls.certs import curve_name, peer_certificate_from_field

        cert = f"{len(line.server_cert)} base64 chars"
        curve = curve_name(peer_certificate_from_field(line.server_cert))
        tls = f"mutual TLS, plugin certificate ECDSA {curve}, pinned"
    print(
        f"handshake: core {line.core_version} | app {line.app_version} | {line.network} | "
        f"{line.address} | {line.protocol} | cert: {cert}"
    )
    print(f"tls: {tls}")
    print(f"plugin pid {plugin.pid}, negotiated version {plugin.negotiated_version}")


# --- inspect ---------------------------------------------------------------------


def _run_inspect(args: argparse.Namespace) -> int:
    from ._inspect import describe

    cmd = _strip_dashes(args.cmd)
    if not cmd:
        raise ValueError("give the plugin command after --, e.g. inspect -- ./my-plugin")
    for line in describe(
        cmd,
        handshake=_handshake_from(args),
        tls=not args.no_tls,
        transport=args.transport,
        start_timeout=args.start_timeout,
        connect_timeout=args.connect_timeout,
    ):
        print(line)
    return 0


# --- kv ----------------------------------------------------------------------------


def parse_kv_words(words: Sequence[str], default_cmd: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split ``[-- CMD...] put KEY VALUE | get KEY`` (or ``put K V -- CMD...``)."""
    words = list(words)
    if words and words[0] != "--" and "--" in words:
        split = words.index("--")
        words = ["--", *words[split + 1 :], *words[:split]]
    words = _strip_dashes(words)
    if len(words) >= 3 and words[-3] == "put":
        return words[:-3] or list(default_cmd), words[-3:]
    if len(words) >= 2 and words[-2] == "get":
        return words[:-2] or list(default_cmd), words[-2:]
    raise ValueError("usage: kv [-- CMD...] put KEY VALUE | get KEY")


def _run_kv(args: argparse.Namespace) -> int:
    from ._host.process import PluginProcess
    from ._protos import kv_pb2, kv_pb2_grpc

    env_cmd = os.environ.get(KV_PLUGIN_ENV)
    default = shlex.split(env_cmd) if env_cmd else KV_PLUGIN
    cmd, action = parse_kv_words(args.words, default)
    with PluginProcess(
        cmd,
        handshake=_handshake_from(args),
        tls=not args.no_tls,
        transport=args.transport,
        start_timeout=args.start_timeout,
        connect_timeout=args.connect_timeout,
        stub=kv_pb2_grpc.KVStub,
    ) as plugin:
        if action[0] == "put":
            plugin.stub.Put(kv_pb2.PutRequest(key=action[1], value=action[2].encode()), timeout=10)
        else:
            reply = plugin.stub.Get(kv_pb2.GetRequest(key=action[1]), timeout=10)
            sys.stdout.buffer.write(reply.value + b"\n")
            sys.stdout.flush()
    return 0


# --- protoc ------------------------------------------------------------------------------


def _run_protoc(args: argparse.Namespace) -> int:
    from ._codegen import generate_stubs

    for path in generate_stubs(args.protos, include=args.proto_path, out=args.out):
        print(path)
    return 0


# --- counter (brokered callbacks) ----------------------------------------------------


def _run_counter(args: argparse.Namespace) -> int:
    from ._host.process import PluginProcess
    from ._protos import counter_pb2_grpc
    from .examples import counter_host

    words = list(args.words)
    if words and words[0] == "--":
        first_op = next((i for i, w in enumerate(words) if w in ("put", "get")), len(words))
        cmd, words = words[1:first_op], words[first_op:]
    else:
        env_cmd = os.environ.get(COUNTER_PLUGIN_ENV)
        cmd = shlex.split(env_cmd) if env_cmd else COUNTER_PLUGIN
    ops = counter_host.parse_ops(words)
    if not cmd:
        raise ValueError("counter: the plugin command after -- is empty")
    with PluginProcess(
        cmd,
        handshake=_handshake_from(args),
        tls=not args.no_tls,
        transport=args.transport,
        start_timeout=args.start_timeout,
        stub=counter_pb2_grpc.CounterStub,
    ) as plugin:
        for count in counter_host.run(plugin, ops):
            print(count, flush=True)
    return 0
