"""Our host (``PluginProcess``) loading a real Go go-plugin 1.0.1 plugin (``go/cmd/kvplugin``).

Cells of the interop matrix (docs/compatibility.md) for "our host -> Go plugin":

- unix, plaintext: Put/Get of text, binary and 1 MiB values, health ping, graceful
  close (exit 0 in well under go-plugin's 2 s kill fallback, so no signal was needed),
  version negotiation with two versions on both sides, a wrong cookie refused with
  the plugin's own message, 8 threads x 1,250 calls through one channel.
- tcp: not applicable. go-plugin 1.0.1's ``serverListener`` (server.go) uses TCP only
  on Windows; on Linux a Go plugin always listens on a unix socket in ``$TMPDIR``
  (it ignores ``PLUGIN_UNIX_SOCKET_DIR``, which 1.5 introduced). The test below shows
  that asking for TCP still yields unix, and checks the source says so.
- AutoMTLS: the Go plugin serves a P-521 certificate, which PyPI grpcio cannot
  handshake with; the host reaches it through the ``ssl``-module TLS bridge
  (docs/tls.md), fully mutual.

Also here, because test_go_host.py has no AutoMTLS cell: the Go 1.0.1 *host* with
AutoMTLS (a P-521 host certificate) loading our plugin, which serves it through the
bridge on the plugin side.

Every process carries a marker; none, and no zombie child, may survive a test.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from fakehost import MARKER_VAR
from test_go_host import PYTHON_KV_PLUGIN, KVHost, assert_clean_check

from pyvider_rpcplugin_sync import (
    HandshakeConfig,
    MultiplexNotSupported,
    PluginProcess,
    PluginStartError,
    ProtocolVersionError,
)
from pyvider_rpcplugin_sync._protos import kv_pb2, kv_pb2_grpc

pytestmark = pytest.mark.interop

KV_HANDSHAKE = HandshakeConfig("BASIC_PLUGIN", "hello", (1,))
ONE_MIB = 1 << 20
KILL_FALLBACK = 2.0  # go-plugin: 2 s after Shutdown, then SIGKILL; a clean close is far faster
GO_PLUGIN_SOURCE = Path("/usr/share/gocode/src/github.com/hashicorp/go-plugin/server.go")


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """PluginProcess passes the host's environment on: none of the KV/plugin variables of
    the developer's shell may reach the Go plugin (it reads KV_PLUGIN_* and KV_*)."""
    for name in list(os.environ):
        if name.startswith(("KV_", "PLUGIN_", "BASIC_PLUGIN")):
            monkeypatch.delenv(name)


def go_plugin(
    go_bins: dict[str, Path],
    marker: str,
    tmpdir: Path,
    *,
    handshake: HandshakeConfig = KV_HANDSHAKE,
    tls: bool = False,
    transport: str | None = None,
    plugin_env: dict[str, str] | None = None,
) -> PluginProcess:
    return PluginProcess(
        [str(go_bins["kvplugin"])],
        handshake=handshake,
        stub=kv_pb2_grpc.KVStub,
        tls=tls,
        transport=transport,
        env={"TMPDIR": str(tmpdir), MARKER_VAR: marker, **(plugin_env or {})},
        start_timeout=30,
    )


def exercise_kv(stub: Any) -> None:
    """Text, unicode, every byte value, empty, 1 MiB random, an overwrite; NOT_FOUND."""
    values = {
        "hello": b"world",
        "unicode-ключ-🔑": "värde ✓".encode(),
        "binary": bytes(range(256)) * 4,
        "empty": b"",
        "big": random.Random(42).randbytes(ONE_MIB),
    }
    for key, value in values.items():
        plugin_put(stub, key, value)
    values["hello"] = b"world, overwritten"
    plugin_put(stub, "hello", values["hello"])
    for key, value in values.items():
        assert stub.Get(kv_pb2.GetRequest(key=key), timeout=30).value == value, key
    with pytest.raises(grpc.RpcError) as missing:
        stub.Get(kv_pb2.GetRequest(key="no-such-key"), timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


def plugin_put(stub: Any, key: str, value: bytes) -> None:
    stub.Put(kv_pb2.PutRequest(key=key, value=value), timeout=30)


def timed_close(plugin: PluginProcess) -> float:
    started = time.monotonic()
    plugin.close()
    return time.monotonic() - started


def assert_graceful(plugin: PluginProcess, close_seconds: float) -> None:
    """Exit 0 after Shutdown: no SIGTERM/SIGKILL (those give a negative code), and fast."""
    assert plugin.returncode == 0, (plugin.returncode, plugin.stderr_tail)
    assert close_seconds < KILL_FALLBACK, f"close took {close_seconds:.2f} s"


# --- unix, plaintext ------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_our_host_go_plugin_unix_plaintext(
    go_bins: dict[str, Path], marker: str, tmpdir_short: Path
) -> None:
    plugin = go_plugin(go_bins, marker, tmpdir_short)
    with plugin:
        line = plugin.handshake_line
        assert line is not None
        assert (line.core_version, line.app_version, line.protocol) == (1, 1, "grpc")
        assert line.server_cert == "" and line.multiplex is None
        assert plugin.network == "unix" and plugin.negotiated_version == 1
        socket_path = Path(plugin.address or "")
        # go-plugin 1.0.1 ignores PLUGIN_UNIX_SOCKET_DIR and uses $TMPDIR/pluginNNN.
        assert socket_path.parent == tmpdir_short and socket_path.name.startswith("plugin")
        exercise_kv(plugin.stub)
        assert plugin.ping() is True
        assert plugin.pid is not None
        seconds = timed_close(plugin)
    assert_graceful(plugin, seconds)
    assert not socket_path.exists(), "the Go plugin's socket was left behind"


@pytest.mark.timeout(60)
def test_our_host_go_plugin_tcp_not_applicable(
    go_bins: dict[str, Path], marker: str, tmpdir_short: Path
) -> None:
    """The "n/a" TCP cell: a 1.0.1 Go plugin on Linux cannot listen on TCP.

    Asked for TCP (``PLUGIN_TRANSPORT=tcp`` and a port range), it still answers unix,
    and our host accepts the network the plugin chose.
    """
    source = GO_PLUGIN_SOURCE.read_text()
    listener = source[source.index("func serverListener() ") :]
    listener = listener[: listener.index("\n}\n")]
    assert 'if runtime.GOOS == "windows" {\n\t\treturn serverListener_tcp()' in listener
    assert listener.rstrip().endswith("return serverListener_unix()")

    plugin = go_plugin(go_bins, marker, tmpdir_short, transport="tcp")
    with plugin:
        assert plugin.network == "unix"
        plugin_put(plugin.stub, "k", b"v")
        assert plugin.stub.Get(kv_pb2.GetRequest(key="k"), timeout=10).value == b"v"
        seconds = timed_close(plugin)
    assert_graceful(plugin, seconds)


# --- versions and cookie --------------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "case",
    [((1, 2), "1,2", 2), ((2, 1), "2,1", 2), ((1, 2), "1,2,3", 2), ((1, 3), "1,2", 1)],
    ids=["both-1,2", "both-2,1", "plugin-1,2,3", "host-1,3"],
)
def test_our_host_go_plugin_negotiates_highest_common_version(
    go_bins: dict[str, Path],
    marker: str,
    tmpdir_short: Path,
    case: tuple[tuple[int, ...], str, int],
) -> None:
    """Host versions (ours) and KV_PLUGIN_VERSIONS (the Go plugin's): the highest common one."""
    host_versions, plugin_versions, expected = case
    handshake = HandshakeConfig("BASIC_PLUGIN", "hello", host_versions)
    plugin = go_plugin(
        go_bins,
        marker,
        tmpdir_short,
        handshake=handshake,
        plugin_env={"KV_PLUGIN_VERSIONS": plugin_versions},
    )
    with plugin:
        assert plugin.negotiated_version == expected
        plugin_put(plugin.stub, "v", str(expected).encode())
        assert plugin.stub.Get(kv_pb2.GetRequest(key="v"), timeout=10).value == b"%d" % expected
        seconds = timed_close(plugin)
    assert_graceful(plugin, seconds)


@pytest.mark.timeout(60)
def test_our_host_go_plugin_no_common_version(
    go_bins: dict[str, Path], marker: str, tmpdir_short: Path
) -> None:
    """go-plugin answers its lowest version when nothing matches; our host refuses it."""
    handshake = HandshakeConfig("BASIC_PLUGIN", "hello", (3, 4))
    plugin = go_plugin(
        go_bins, marker, tmpdir_short, handshake=handshake, plugin_env={"KV_PLUGIN_VERSIONS": "1,2"}
    )
    with pytest.raises(ProtocolVersionError, match=r"Plugin version: 1, Client versions: \[3, 4\]"):
        plugin.start()
    assert plugin.returncode is not None  # killed and reaped


@pytest.mark.timeout(60)
def test_our_host_go_plugin_wrong_cookie(
    go_bins: dict[str, Path], marker: str, tmpdir_short: Path
) -> None:
    wrong = HandshakeConfig("BASIC_PLUGIN", "not-hello", (1,))
    plugin = go_plugin(go_bins, marker, tmpdir_short, handshake=wrong)
    with pytest.raises(PluginStartError) as caught:
        plugin.start()
    error = caught.value
    assert error.returncode == 1, str(error)
    # go-plugin's refusal, quoted from the plugin's stderr in the error itself.
    assert "This binary is a plugin" in error.stderr_tail, str(error)
    assert "This binary is a plugin" in str(error)
    assert plugin.returncode == 1


# --- threads ------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_our_host_go_plugin_8_threads_10000_calls(
    go_bins: dict[str, Path], marker: str, tmpdir_short: Path
) -> None:
    """8 threads share one PluginProcess (one channel): 8 x 1,250 calls, every Get verified."""
    threads, calls_per_thread = 8, 1250
    pairs = calls_per_thread // 2  # each pair: Put, then Get and compare
    start = threading.Barrier(threads)
    calls = [0] * threads
    errors: list[str] = []

    def value_for(worker: int, i: int) -> bytes:
        return random.Random(worker * 100_003 + i).randbytes(i % 4096) + b"|%d|%d" % (worker, i)

    def work(worker: int, stub: Any) -> None:
        try:
            start.wait(timeout=30)
            for i in range(pairs):
                key, value = f"t{worker}-{i}", value_for(worker, i)
                stub.Put(kv_pb2.PutRequest(key=key, value=value), timeout=30)
                calls[worker] += 1
                got = stub.Get(kv_pb2.GetRequest(key=key), timeout=30).value
                calls[worker] += 1
                if got != value:
                    errors.append(f"{key}: got {len(got)} bytes, want {len(value)}")
                    return
        except Exception as exc:  # reported below; a thread must not die silently
            errors.append(f"worker {worker}: {type(exc).__name__}: {exc}")

    plugin = go_plugin(go_bins, marker, tmpdir_short)
    with plugin:
        stub = plugin.stub  # one stub, one channel, one connection for every thread
        workers = [
            threading.Thread(target=work, args=(n, stub), name=f"kv-{n}") for n in range(threads)
        ]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=150)
        elapsed = time.monotonic() - started
        assert not any(w.is_alive() for w in workers), "a worker thread hung"
        assert errors == []
        assert sum(calls) == threads * calls_per_thread == 10_000
        # One spot check after all threads: the last value of every thread is still there.
        for n in range(threads):
            got = stub.Get(kv_pb2.GetRequest(key=f"t{n}-{pairs - 1}"), timeout=10).value
            assert got == value_for(n, pairs - 1)
        assert plugin.ping() is True
        seconds = timed_close(plugin)
    print(f"\nour host -> Go plugin: 10,000 calls on 8 threads in {elapsed:.2f} s")
    assert_graceful(plugin, seconds)


# --- AutoMTLS (Go's P-521 certificates) ----------------------------------------------------


@pytest.mark.timeout(60)
def test_our_host_go_plugin_unix_automtls(
    go_bins: dict[str, Path], marker: str, tmpdir_short: Path
) -> None:
    plugin = go_plugin(go_bins, marker, tmpdir_short, tls=True)
    try:
        with plugin:
            line = plugin.handshake_line
            assert line is not None and len(line.server_cert) > 50
            exercise_kv(plugin.stub)
            assert plugin.ping() is True
            seconds = timed_close(plugin)
        assert_graceful(plugin, seconds)
    finally:
        plugin.close()


@pytest.fixture
def go_kvhost(go_bins: dict[str, Path]) -> Iterator[KVHost]:
    host = KVHost(go_bins["kvhost"])
    yield host
    leaked = host.kill_leftovers()
    assert not leaked, f"processes left behind (killed now): {leaked}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_go_host_automtls_to_our_plugin(go_kvhost: KVHost, transport: str) -> None:
    """The Go 1.0.1 host with AutoMTLS (P-521 host certificate) loading our KV plugin.

    The plugin terminates TLS with the bridge and requires the host's certificate.
    """
    env = {"KV_AUTOMTLS": "1", "PLUGIN_TRANSPORT": transport}
    r = go_kvhost.run("check", plugin=PYTHON_KV_PLUGIN, env=env).expect_ok()
    assert r["automtls"] is True and r["network"] == transport, r
    assert_clean_check(r)  # the fixture then checks that no marked process is left


@pytest.mark.timeout(60)
def test_our_multiplexing_host_refuses_a_go_plugin_1_0_1(
    go_bins: dict[str, Path], marker: str, tmpdir_short: Path
) -> None:
    """go-plugin 1.0.1 plugins print six fields: no multiplexing, a typed error, no leftovers."""
    plugin = PluginProcess(
        [str(go_bins["kvplugin"])], handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub, tls=False,
        multiplex=True, env={"TMPDIR": str(tmpdir_short), MARKER_VAR: marker}, start_timeout=30,
    )  # fmt: skip
    with pytest.raises(MultiplexNotSupported, match="no 7th field") as refused:
        plugin.start()
    assert "go-plugin >= 1.6.0" in str(refused.value)
    assert plugin.returncode is not None  # the plugin is gone
    assert list(tmpdir_short.iterdir()) == []
