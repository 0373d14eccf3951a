"""Unary echo calls/s over TLS: native grpcio mTLS vs the ``ssl`` bridge vs plaintext, one run.

The servers run in a child process (as a plugin would), the clients here (as a host):

  plain       grpcio -> grpcio, no TLS
  native      grpcio mTLS -> grpcio mTLS, P-256 both sides (Python <-> Python)
  bridged     grpcio -> BridgeClient -> TLS, P-521 both sides -> BridgeServer -> grpcio
              (two bridges; a real deployment has one, see the next two)
  srv-bridge  grpcio native TLS (P-384) -> BridgeServer -> grpcio       (Go host -> our plugin)
  cli-bridge  grpcio -> BridgeClient -> TLS (P-384) -> grpcio native TLS (our host -> Go plugin)

Each round runs one short block per variant, in rotating order, so drift hits all alike.
Printed: each variant's median calls/s (min-max), its ratio of medians to ``native``,
and the median (min-max) over rounds of its calls/s divided by ``native``'s in the same
round, which is the score (as in ``benchmarks/_common.py``).
Budget (docs/performance.md): bridged >= 0.9x native for 64-byte calls, >= 0.8x for 1 MiB.

    python -m benchmarks.bench_tls [--blocks N] [--calls N] [--big-calls N] [--transport unix|tcp]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Generator
from concurrent import futures
from contextlib import ExitStack, contextmanager

import grpc
from cryptography import x509

from pyvider_rpcplugin_sync._constants import UNLIMITED_MESSAGE_OPTIONS
from pyvider_rpcplugin_sync._transport.tls.bridge import BridgeClient, BridgeServer, listen
from pyvider_rpcplugin_sync._transport.tls.bridge_certs import go_style_identity
from pyvider_rpcplugin_sync._transport.tls.certs import (
    Identity,
    client_ssl_context,
    generate_identity,
    server_ssl_context,
)
from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc, echo_plugin

VARIANTS = ("plain", "native", "bridged", "srv-bridge", "cli-bridge")
NAME_OVERRIDE = (("grpc.ssl_target_name_override", "localhost"),)
ROLES = ("host256", "plugin256", "host521", "plugin521", "host384", "plugin384")


def make_identities() -> dict[str, Identity]:
    return {
        "host256": generate_identity(),
        "plugin256": generate_identity(),
        "host521": go_style_identity("secp521r1"),
        "plugin521": go_style_identity("secp521r1"),
        "host384": go_style_identity("secp384r1"),
        "plugin384": go_style_identity("secp384r1"),
    }


def cert(identity: Identity) -> x509.Certificate:
    return x509.load_pem_x509_certificate(identity.cert_pem)


# --- server process --------------------------------------------------------------------


def address_for(transport: str, directory: str, name: str) -> str:
    return os.path.join(directory, name) if transport == "unix" else "127.0.0.1:0"


def grpc_target(network: str, address: str) -> str:
    return f"unix:{address}" if network == "unix" else address


def serve(
    transport: str, ids: dict[str, Identity], directory: str, stops: list[Callable[[], object]]
) -> dict[str, str]:
    """Start every server variant (``stops`` stop them); return their addresses."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8), options=UNLIMITED_MESSAGE_OPTIONS
    )
    echo_plugin.register(server)
    backend = os.path.join(directory, "backend")
    server.add_insecure_port(f"unix:{backend}")
    addresses: dict[str, str] = {}

    def add(variant: str, credentials: grpc.ServerCredentials | None) -> None:
        target = grpc_target(transport, address_for(transport, directory, variant))
        port = (
            server.add_secure_port(target, credentials)
            if credentials
            else server.add_insecure_port(target)
        )
        addresses[variant] = target if transport == "unix" else f"127.0.0.1:{port}"

    def native(plugin: Identity, host: Identity) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(plugin.key_pem, plugin.cert_pem)],
            root_certificates=host.cert_pem,
            require_client_auth=True,
        )

    add("plain", None)
    add("native", native(ids["plugin256"], ids["host256"]))
    add("cli-bridge", native(ids["plugin384"], ids["host384"]))
    server.start()
    stops.append(lambda: server.stop(None).wait())
    for variant, plugin, host in (
        ("bridged", "plugin521", "host521"),
        ("srv-bridge", "plugin384", "host384"),
    ):
        context = server_ssl_context(ids[plugin], cert(ids[host]))
        sock = listen(transport, address_for(transport, directory, variant))
        bridge = BridgeServer(sock, backend, context)
        bridge.start()
        stops.append(bridge.close)
        addresses[variant] = grpc_target(bridge.network, bridge.address)
    return addresses


def child_main(transport: str) -> int:
    config = json.loads(sys.stdin.readline())
    ids = {k: Identity(v[0].encode(), v[1].encode()) for k, v in config.items()}
    directory = tempfile.mkdtemp(prefix="bench-tls-")
    stops: list[Callable[[], object]] = []
    try:
        print(json.dumps(serve(transport, ids, directory, stops)), flush=True)
        sys.stdin.read()  # until the parent closes our stdin
    finally:
        for stop in reversed(stops):
            stop()
        shutil.rmtree(directory, ignore_errors=True)
    return 0


# --- client side --------------------------------------------------------------------------


@contextmanager
def server_process(
    transport: str, ids: dict[str, Identity]
) -> Generator[dict[str, str], None, None]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_tls", "--serve", "--transport", transport],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        config = {k: [v.cert_pem.decode(), v.key_pem.decode()] for k, v in ids.items()}
        proc.stdin.write(json.dumps(config) + "\n")
        proc.stdin.flush()
        yield json.loads(proc.stdout.readline())
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def open_channels(
    stack: ExitStack, addresses: dict[str, str], ids: dict[str, Identity], directory: str
) -> dict[str, grpc.Channel]:
    def secure(target: str, host: str, plugin: str) -> grpc.Channel:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=ids[plugin].cert_pem,
            private_key=ids[host].key_pem,
            certificate_chain=ids[host].cert_pem,
        )
        options = UNLIMITED_MESSAGE_OPTIONS + NAME_OVERRIDE
        return grpc.secure_channel(target, credentials, options)

    def bridged(target: str, host: str, plugin: str) -> grpc.Channel:
        network, address = ("unix", target[5:]) if target.startswith("unix:") else ("tcp", target)
        context = client_ssl_context(ids[host], cert(ids[plugin]))
        bridge = stack.enter_context(BridgeClient(network, address, context, directory))
        return grpc.insecure_channel(bridge.target, options=UNLIMITED_MESSAGE_OPTIONS)

    channels = {
        "plain": grpc.insecure_channel(addresses["plain"], options=UNLIMITED_MESSAGE_OPTIONS),
        "native": secure(addresses["native"], "host256", "plugin256"),
        "bridged": bridged(addresses["bridged"], "host521", "plugin521"),
        "srv-bridge": secure(addresses["srv-bridge"], "host384", "plugin384"),
        "cli-bridge": bridged(addresses["cli-bridge"], "host384", "plugin384"),
    }
    for channel in channels.values():
        stack.callback(channel.close)
    return channels


def calls_per_second(call: Callable[[], object], calls: int) -> float:
    begin = time.perf_counter()
    for _ in range(calls):
        call()
    return calls / (time.perf_counter() - begin)


def measure(
    channels: dict[str, grpc.Channel], payload: int, calls: int, blocks: int
) -> dict[str, list[float]]:
    request = echo_pb2.EchoRequest(payload=os.urandom(payload))
    stubs = {name: echo_pb2_grpc.EchoStub(ch) for name, ch in channels.items()}

    def call_for(name: str) -> Callable[[], object]:
        stub = stubs[name]
        return lambda: stub.Echo(request, timeout=30)

    for name in VARIANTS:  # warm-up: connections, TLS sessions, caches
        calls_per_second(call_for(name), max(calls // 4, 2))
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for block in range(blocks):
        order = VARIANTS[block % len(VARIANTS) :] + VARIANTS[: block % len(VARIANTS)]
        for name in order:
            rates[name].append(calls_per_second(call_for(name), calls))
    return rates


def report(title: str, rates: dict[str, list[float]]) -> dict[str, tuple[float, float]]:
    """Print the table; return each variant's (ratio of medians, median per-block ratio).

    The line format is parsed by ``benchmarks/_external.py``: keep it.
    """
    native = rates["native"]
    print(title)
    print(
        f"  {'variant':<11} {'calls/s':>9} {'min-max':>15}  {'x native':>8}"
        "  per-block ratio: median (min-max)"
    )
    summary: dict[str, tuple[float, float]] = {}
    for name in VARIANTS:
        values = rates[name]
        ratios = [a / b for a, b in zip(values, native, strict=True)]
        median = statistics.median(values)
        ratio = median / statistics.median(native)
        summary[name] = (ratio, statistics.median(ratios))
        print(
            f"  {name:<11} {median:>9,.0f} {min(values):>7,.0f}-{max(values):<7,.0f}"
            f"  {ratio:>7.3f}x  {statistics.median(ratios):.3f} "
            f"({min(ratios):.3f}-{max(ratios):.3f})"
        )
    return summary


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=30, help="rounds (one block per variant)")
    parser.add_argument("--calls", type=int, default=300, help="64 B calls per block")
    parser.add_argument("--big-calls", type=int, default=8, help="1 MiB calls per block")
    parser.add_argument("--transport", choices=("unix", "tcp"), default="unix")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return child_main(args.transport)
    ids = make_identities()
    directory = tempfile.mkdtemp(prefix="bench-tls-")
    try:
        with server_process(args.transport, ids) as addresses, ExitStack() as stack:
            channels = open_channels(stack, addresses, ids, directory)
            print(f"unary echo over {args.transport}, {args.blocks} blocks per variant, servers")
            print("in a child process; x native = median calls/s / native's median calls/s;")
            print("per-block ratio = calls/s / native's in the same round\n")
            small = measure(channels, 64, args.calls, args.blocks)
            s = report(f"64 B payload, {args.calls} calls per block", small)
            big = measure(channels, 1 << 20, args.big_calls, args.blocks)
            report(f"\n1 MiB payload, {args.big_calls} calls per block", big)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    of_medians, per_block = s["bridged"]
    verdict = "OK" if per_block >= 0.9 else "BELOW BUDGET"
    print(
        f"\nbudget: bridged >= 0.90x native at 64 B: {of_medians:.3f}x ratio of medians, "
        f"{per_block:.3f}x median of per-block ratios: {verdict}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
