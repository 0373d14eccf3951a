"""A KV host written with pyvider-rpcplugin 0.5.5's client (asyncio), for interop tests.

Launches the plugin command given after ``--`` through ``pyvider.rpcplugin.plugin_client``,
stores values with ``proto.KV/Put``, reads them back with ``Get``, optionally
measures sequential calls, then shuts the plugin down exactly as pyvider's own
``async with`` does (``shutdown_plugin()`` then ``close()``), and prints one
JSON line on stdout. Exit status 0 when every check passed, 1 otherwise.

    python kv_host.py [options] -- python -m pyvider_rpcplugin_sync.examples.kv_plugin

Values (each is Put, then Get and compared byte for byte):

    --put KEY=TEXT          UTF-8 text
    --put-hex KEY=HEX       bytes given in hex (binary values)
    --put-random KEY=SIZE   SIZE random bytes (e.g. 1048576 for 1 MiB)

pyvider-rpcplugin is configured the way its documentation says: its
``configure()`` for the client settings (cookie, AutoMTLS, retries) and
``PYVIDER_CLIENT_CERT_CURVE`` in the environment for the curve of its generated
client certificate. Its client has no public accessor for the plugin process,
its handshake line or its exit status; the few private attributes read here
(``_process``, ``_server_cert``) are only observed, never changed.

The JSON line: ``ok``, ``stage`` (where it stopped: start, calls, shutdown, done),
``error``; ``network``/``address`` from the handshake, ``client_cert`` (pyvider
sent PLUGIN_CLIENT_CERT), ``server_cert`` (the plugin printed a certificate);
``values`` checked, ``missing_key_code``, ``health``; ``timings_ms`` (``start``:
client.start(); ``first_reply``: spawn to the first Put reply; ``shutdown``:
shutdown_plugin() + close()); ``bench`` (calls, calls_per_s); ``pid``,
``alive_after_shutdown_rpc`` (still running when shutdown_plugin() returned, so
close() had to send SIGTERM unless it exited while the channel closed),
``plugin_exit`` (its exit status; negative = killed by that signal).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import sys
import time
from typing import Any


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--cookie-key", help="magic cookie key (pyvider default PLUGIN_MAGIC_COOKIE)"
    )
    parser.add_argument("--cookie-value", help="magic cookie value (default test_cookie_value)")
    parser.add_argument(
        "--auto-mtls",
        choices=("on", "off", "default"),
        default="default",
        help="pyvider's AutoMTLS (its default is on)",
    )
    parser.add_argument("--client-curve", help="PYVIDER_CLIENT_CERT_CURVE (default secp384r1)")
    parser.add_argument("--no-retry", action="store_true", help="one start attempt, no retries")
    parser.add_argument("--handshake-timeout", type=float, help="PLUGIN_HANDSHAKE_TIMEOUT")
    parser.add_argument("--put", action="append", default=[], metavar="KEY=TEXT")
    parser.add_argument("--put-hex", action="append", default=[], metavar="KEY=HEX")
    parser.add_argument("--put-random", action="append", default=[], metavar="KEY=SIZE")
    parser.add_argument("--bench", type=int, default=0, metavar="N", help="N sequential Gets")
    parser.add_argument(
        "--shutdown-wait",
        type=float,
        default=0.0,
        metavar="S",
        help="after the Shutdown RPC wait up to S seconds for the plugin to exit "
        "before close() (shows whether Shutdown alone stops it)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the plugin (pyvider's config={'env': ...})",
    )
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- plugin command")
    args = parser.parse_args(argv)
    if args.cmd and args.cmd[0] == "--":
        args.cmd = args.cmd[1:]
    if not args.cmd:
        parser.error("no plugin command (give it after --)")
    return args


def values_from(args: argparse.Namespace) -> list[tuple[str, bytes]]:
    values: list[tuple[str, bytes]] = []
    for spec in args.put:
        key, _, text = spec.partition("=")
        values.append((key, text.encode("utf-8")))
    for spec in args.put_hex:
        key, _, hexdata = spec.partition("=")
        values.append((key, bytes.fromhex(hexdata)))
    for spec in args.put_random:
        key, _, size = spec.partition("=")
        values.append((key, os.urandom(int(size))))
    return values


def configure_pyvider(args: argparse.Namespace) -> None:
    """Client settings through pyvider's own configuration API."""
    if args.client_curve:
        # Read with os.getenv when the client certificate is generated.
        os.environ["PYVIDER_CLIENT_CERT_CURVE"] = args.client_curve
    from pyvider.rpcplugin import configure

    options: dict[str, Any] = {}
    if args.cookie_key:
        options["magic_cookie_key"] = args.cookie_key
    if args.auto_mtls != "default":
        options["auto_mtls"] = args.auto_mtls == "on"
    if args.no_retry:
        options["client_retry_enabled"] = False
    if args.handshake_timeout:
        options["handshake_timeout"] = args.handshake_timeout
    configure(magic_cookie=args.cookie_value, **options)


def describe_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    hint = getattr(exc, "hint", None)
    if hint and str(hint) not in text:
        text += f" (hint: {hint})"
    return text


async def run(args: argparse.Namespace, result: dict[str, Any]) -> None:
    from pyvider.rpcplugin import plugin_client

    env = dict(item.partition("=")[::2] for item in args.env)
    client = plugin_client(command=args.cmd, config={"env": env} if env else None)
    started = time.perf_counter()
    result["stage"] = "start"
    try:
        await client.start()
    except BaseException:
        await client.close()
        raise
    result.setdefault("timings_ms", {})["start"] = ms_since(started)
    popen = client._process.process if client._process is not None else None  # observe only
    result["pid"] = popen.pid if popen is not None else None
    endpoint = client.target_endpoint or ""
    result["network"] = "unix" if endpoint.startswith("unix:") else "tcp"
    result["address"] = endpoint.removeprefix("unix:")
    result["client_cert"] = client.client_cert is not None
    result["server_cert"] = bool(getattr(client, "_server_cert", None))
    result["stage"] = "calls"
    try:
        await exercise(client.grpc_channel, values_from(args), args.bench, started, result)
    finally:
        result["stage"] = "shutdown"
        await shut_down(client, popen, args.shutdown_wait, result)
    result["stage"] = "done"


async def exercise(
    channel: Any,
    values: list[tuple[str, bytes]],
    bench: int,
    started: float,
    result: dict[str, Any],
) -> None:
    """Put all values, Get and compare them, a missing key, a health check, the bench."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from pyvider_rpcplugin_sync._protos import kv_pb2, kv_pb2_grpc

    stub = kv_pb2_grpc.KVStub(channel)
    for index, (key, value) in enumerate(values):
        await stub.Put(kv_pb2.PutRequest(key=key, value=value), timeout=30)
        if index == 0:
            result["timings_ms"]["first_reply"] = ms_since(started)
    checked = []
    for key, value in values:
        got = (await stub.Get(kv_pb2.GetRequest(key=key), timeout=30)).value
        if got != value:
            raise AssertionError(
                f"Get({key!r}) returned {len(got)} bytes (sha256 "
                f"{hashlib.sha256(got).hexdigest()[:16]}), expected {len(value)} bytes"
            )
        checked.append({"key": key, "size": len(value)})
    result["values"] = checked
    try:
        await stub.Get(kv_pb2.GetRequest(key="\x00no such key"), timeout=10)
        result["missing_key_code"] = "OK"
    except grpc.RpcError as exc:
        result["missing_key_code"] = exc.code().name
    health = health_pb2_grpc.HealthStub(channel)
    reply = await health.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=10)
    result["health"] = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if bench > 0:
        key = values[0][0] if values else "bench"
        if not values:
            await stub.Put(kv_pb2.PutRequest(key=key, value=b"x" * 64), timeout=10)
        request = kv_pb2.GetRequest(key=key)
        await stub.Get(request, timeout=10)  # warm
        t0 = time.perf_counter()
        for _ in range(bench):
            await stub.Get(request, timeout=10)
        elapsed = time.perf_counter() - t0
        result["bench"] = {"calls": bench, "calls_per_s": round(bench / elapsed, 1)}


async def shut_down(client: Any, popen: Any, wait: float, result: dict[str, Any]) -> None:
    """Exactly RPCPluginClient.__aexit__ (shutdown_plugin(), then close()), observed."""
    t0 = time.perf_counter()
    await client.shutdown_plugin()
    if popen is not None:
        result["alive_after_shutdown_rpc"] = popen.poll() is None
        if wait > 0:
            if popen.poll() is None:
                loop = asyncio.get_running_loop()
                # subprocess.TimeoutExpired: still running, close() will SIGTERM it.
                with contextlib.suppress(Exception):
                    await loop.run_in_executor(None, popen.wait, wait)
            result["exited_within_shutdown_wait"] = popen.poll() is not None
    await client.close()
    result.setdefault("timings_ms", {})["shutdown"] = ms_since(t0)
    if popen is not None:
        result["plugin_exit"] = popen.poll()


def ms_since(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000, 1)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    result: dict[str, Any] = {"ok": False, "stage": "setup"}
    try:
        configure_pyvider(args)
        asyncio.run(run(args, result))
        result["ok"] = True
    except BaseException as exc:  # report everything as the JSON line
        if isinstance(exc, KeyboardInterrupt):
            raise
        result["error"] = describe_error(exc)
    print(json.dumps(result), flush=True)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
