"""Interop with the async sibling ``pyvider-rpcplugin`` 0.5.5 (PyPI), both directions.

pyvider host -> our plugin: ``pyvider/kv_host.py`` (written with pyvider's
``plugin_client``) loads ``pyvider_rpcplugin_sync.examples.kv_plugin`` (cookie
``BASIC_PLUGIN=hello``) or ``pyvider/sync_kv_plugin.py`` (our default handshake).

Our host -> pyvider plugin: ``PluginProcess`` loads ``pyvider/kv_plugin.py``
(written with pyvider's ``RPCPluginServer``). These tests import ``PluginProcess``
from the package root and fail (never skip) while it is not there.

What pyvider-rpcplugin 0.5.5 does, as these tests pin it:

- Defaults: cookie ``PLUGIN_MAGIC_COOKIE=test_cookie_value``, app version 1
  (the same as our ``HandshakeConfig()``); **AutoMTLS on** in its client
  (``PLUGIN_AUTO_MTLS``, client key ECDSA P-384 unless ``PYVIDER_CLIENT_CERT_CURVE``);
  its client retries a failed start 3 times (4 launches) unless
  ``PLUGIN_CLIENT_RETRY_ENABLED=false``. Its host sends only the cookie and
  ``PLUGIN_CLIENT_CERT`` (no ``PLUGIN_PROTOCOL_VERSIONS``, no port range) and
  accepts only 6-field handshake lines.
- Its host shuts a plugin down with the controller ``Shutdown`` RPC, sleeps
  50 ms, closes the channel, then SIGTERMs the plugin if it is still running
  (5 s, then SIGKILL). Its plugin answers ``Shutdown`` by SIGTERMing itself
  0.1 s later and exits 0.
- Its plugin serves AutoMTLS with an ECDSA P-384 certificate but does **not**
  verify the host's certificate unless ``PLUGIN_CLIENT_ROOT_CERTS`` is set.

Every process started here carries a marker variable; none may survive a test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

from pyvider_rpcplugin_sync._protos import kv_pb2, kv_pb2_grpc


def _load_helpers() -> ModuleType:
    # By path: tests/interop/pyvider must not become an importable "pyvider".
    path = Path(__file__).resolve().parent / "pyvider" / "interop_helpers.py"
    name = "pyvider_interop_helpers"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


h = _load_helpers()

pytestmark = pytest.mark.interop

REQUIRE_ENV = "PYVIDER_REQUIRE_INTEROP"
PYVIDER_VERSION = "0.5.5"
BASIC = ("BASIC_PLUGIN", "hello")
ONE_MIB = 1024 * 1024
BINARY = bytes(range(256)) + b"\x00\xff\r\n|"

# Values kv_host stores and reads back: text, unicode, binary, empty, 1 MiB.
HOST_VALUES = (
    "--put",
    "greeting=hello",
    "--put",
    "wörld=✓ ünïcode",
    "--put-hex",
    f"binary={BINARY.hex()}",
    "--put",
    "empty=",
    "--put-random",
    f"big={ONE_MIB}",
)
EXPECTED_SIZES = {
    "greeting": 5,
    "wörld": len("✓ ünïcode".encode()),
    "binary": len(BINARY),
    "empty": 0,
    "big": ONE_MIB,
}


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def pyvider_rpcplugin() -> str:
    """Skip (or fail under PYVIDER_REQUIRE_INTEROP=1) without pyvider-rpcplugin."""
    from importlib import metadata

    try:
        version = metadata.version("pyvider-rpcplugin")
    except metadata.PackageNotFoundError:
        reason = (
            f"pyvider-rpcplugin is not installed "
            f"(pip install pyvider-rpcplugin=={PYVIDER_VERSION}, the 'test' extra)"
        )
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
        pytest.skip(reason)
    return version


@pytest.fixture(autouse=True)
def clean_plugin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PLUGIN_*/cookie variables from the developer's shell reach our host's children."""
    for name in h.foreign_variables():
        monkeypatch.delenv(name)


@pytest.fixture
def marker() -> Iterator[str]:
    """A per-test marker for the environment of every process the test starts."""
    value = uuid.uuid4().hex
    yield value
    leaked = h.marked_pids(value)
    h.kill_and_wait(leaked)
    assert not leaked, f"processes left behind (killed now): {leaked}"


def assert_no_leftovers(marker: str, address: str | None = None, network: str = "unix") -> None:
    assert h.marked_pids(marker) == [], "a plugin outlived its host"
    if network == "unix" and address:
        socket_path = Path(address)
        assert not socket_path.exists(), f"socket file left behind: {socket_path}"
        if socket_path.parent.name.startswith("pyvider-plugin-"):  # our plugin's private dir
            assert not socket_path.parent.exists(), f"socket dir left behind: {socket_path.parent}"


def our_host_api() -> tuple[Any, Any]:
    """The host API under test. An ImportError here fails the test, by design."""
    from pyvider_rpcplugin_sync import HandshakeConfig, PluginProcess

    return PluginProcess, HandshakeConfig


def pyvider_plugin_cmd(*args: str) -> list[str]:
    return [sys.executable, str(h.PYVIDER_KV_PLUGIN), *args]


def open_pyvider_plugin(
    marker: str,
    *,
    handshake: Any = None,
    tls: bool = False,
    transport: str = "unix",
    plugin_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Any:
    plugin_process, handshake_config = our_host_api()
    return plugin_process(
        pyvider_plugin_cmd(*plugin_args),
        handshake=handshake if handshake is not None else handshake_config(),
        tls=tls,
        transport=transport,
        stub=kv_pb2_grpc.KVStub,
        env={h.MARKER_VAR: marker, **(env or {})},
        cwd=h.REPO_ROOT,
        start_timeout=30,
    )


def exercise_kv(stub: Any) -> None:
    """Put and Get text, unicode, binary, empty and 1 MiB values; a missing key is NOT_FOUND."""
    values = {
        "greeting": b"hello",
        "wörld": "✓ ünïcode".encode(),
        "binary": BINARY,
        "empty": b"",
        "big": os.urandom(ONE_MIB),
    }
    for key, value in values.items():
        stub.Put(kv_pb2.PutRequest(key=key, value=value), timeout=30)
    for key, value in values.items():
        assert stub.Get(kv_pb2.GetRequest(key=key), timeout=30).value == value, key
    with pytest.raises(grpc.RpcError) as caught:
        stub.Get(kv_pb2.GetRequest(key="no such key"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def assert_host_checked_everything(r: dict[str, Any]) -> None:
    assert {v["key"]: v["size"] for v in r["values"]} == EXPECTED_SIZES, r
    assert r["missing_key_code"] == "NOT_FOUND", r
    assert r["health"] == "SERVING", r


def assert_clean_exit(r: dict[str, Any]) -> None:
    code = r["plugin_exit"]
    assert code == 0, (
        f"our plugin exited {code} after pyvider's shutdown "
        f"(-15 = killed by the SIGTERM pyvider's close() sends when the plugin is "
        f"still running after Shutdown): {r}"
    )


# --- defaults ------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_default_handshake_matches_pyvider_defaults() -> None:
    """``HandshakeConfig()`` equals pyvider-rpcplugin's defaults (read from the package)."""
    from pyvider_rpcplugin_sync import HandshakeConfig

    code = (
        "import json; from pyvider.rpcplugin import defaults as d; print(json.dumps("
        "[d.DEFAULT_PLUGIN_MAGIC_COOKIE_KEY, d.DEFAULT_PLUGIN_MAGIC_COOKIE_VALUE,"
        " d.DEFAULT_PLUGIN_PROTOCOL_VERSIONS, d.DEFAULT_PLUGIN_AUTO_MTLS]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=h.clean_environ(),
        capture_output=True,
        text=True,
        timeout=50,
        check=True,
    ).stdout
    key, value, versions, auto_mtls = json.loads(out.strip().splitlines()[-1])
    ours = HandshakeConfig()
    assert (ours.magic_cookie_key, ours.magic_cookie_value) == (key, value)
    assert list(ours.protocol_versions) == versions
    assert auto_mtls is True  # pyvider's host asks for AutoMTLS unless told not to


# --- pyvider host -> our plugin --------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_pyvider_host_loads_our_plugin(marker: str, transport: str) -> None:
    run = h.run_kv_host(
        [
            "--cookie-key",
            BASIC[0],
            "--cookie-value",
            BASIC[1],
            "--auto-mtls",
            "off",
            "--env",
            f"PLUGIN_TRANSPORT={transport}",
            *HOST_VALUES,
        ],
        h.OUR_KV_PLUGIN,
        marker=marker,
    )
    r = run.expect_ok()
    assert r["network"] == transport, r
    if transport == "tcp":
        assert r["address"].startswith("127.0.0.1:"), r
    assert r["client_cert"] is False and r["server_cert"] is False, r
    assert_host_checked_everything(r)
    assert_clean_exit(r)
    assert_no_leftovers(marker, r["address"], transport)


@pytest.mark.timeout(60)
def test_pyvider_host_defaults_load_our_default_plugin(marker: str) -> None:
    """No cookie configured on either side: the defaults agree."""
    run = h.run_kv_host(
        ["--auto-mtls", "off", "--put", "k=v"],
        [sys.executable, str(h.SYNC_DEFAULT_KV_PLUGIN)],
        marker=marker,
    )
    r = run.expect_ok()
    assert r["values"] == [{"key": "k", "size": 1}], r
    assert_clean_exit(r)
    assert_no_leftovers(marker, r["address"], r["network"])


@pytest.mark.timeout(90)
@pytest.mark.parametrize("retries", [False, True], ids=["no-retry", "pyvider-retries"])
def test_pyvider_host_wrong_cookie_is_refused(marker: str, retries: bool) -> None:
    args = [
        "--cookie-key",
        BASIC[0],
        "--cookie-value",
        "wrong",
        "--auto-mtls",
        "off",
        "--put",
        "a=b",
    ]
    if not retries:
        args.append("--no-retry")
    run = h.run_kv_host(args, h.OUR_KV_PLUGIN, marker=marker, timeout=80)
    r = run.expect_start_failure()
    assert "exited prematurely with code 1" in r["error"], run.describe()
    # Our plugin's refusal reaches the pyvider host's error (its stderr tail).
    assert "This binary is a plugin" in r["error"], run.describe()
    if retries:  # pyvider relaunches the plugin 3 more times before giving up
        assert "after 4 attempts" in r["error"], run.describe()
    assert_no_leftovers(marker)


@pytest.mark.timeout(60)
def test_pyvider_host_controller_shutdown_alone_stops_our_plugin(marker: str) -> None:
    """pyvider's Shutdown RPC is enough: our plugin exits 0 before close() would SIGTERM it."""
    run = h.run_kv_host(
        [
            "--cookie-key",
            BASIC[0],
            "--cookie-value",
            BASIC[1],
            "--auto-mtls",
            "off",
            "--put",
            "a=b",
            "--shutdown-wait",
            "5",
        ],
        h.OUR_KV_PLUGIN,
        marker=marker,
    )
    r = run.expect_ok()
    assert r["exited_within_shutdown_wait"] is True, r
    assert r["plugin_exit"] == 0, r
    assert_no_leftovers(marker, r["address"], r["network"])


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("transport", "curve"),
    [("unix", None), ("tcp", None), ("unix", "secp256r1")],
    ids=["unix-p384-default", "tcp-p384-default", "unix-p256"],
)
def test_pyvider_host_automtls_to_our_plugin(
    marker: str, transport: str, curve: str | None
) -> None:
    """pyvider's default AutoMTLS (client key P-384, or P-256): our plugin requires and
    verifies it, serves its P-256 certificate, pyvider pins that certificate."""
    args = [
        "--cookie-key",
        BASIC[0],
        "--cookie-value",
        BASIC[1],
        "--env",
        f"PLUGIN_TRANSPORT={transport}",
        *HOST_VALUES,
    ]
    if curve:
        args += ["--client-curve", curve]
    r = h.run_kv_host(args, h.OUR_KV_PLUGIN, marker=marker).expect_ok()
    assert r["client_cert"] is True and r["server_cert"] is True, r
    assert r["network"] == transport, r
    assert_host_checked_everything(r)
    assert_clean_exit(r)
    assert_no_leftovers(marker, r["address"], transport)


@pytest.mark.timeout(90)
def test_pyvider_host_p521_client_cert_to_our_plugin(marker: str) -> None:
    """Go's AutoMTLS curve on pyvider's client (PYVIDER_CLIENT_CERT_CURVE=secp521r1)."""
    run = h.run_kv_host(
        [
            "--cookie-key",
            BASIC[0],
            "--cookie-value",
            BASIC[1],
            "--client-curve",
            "secp521r1",
            "--no-retry",
            "--put",
            "a=b",
        ],
        h.OUR_KV_PLUGIN,
        marker=marker,
        timeout=80,
    )
    try:
        r = run.expect_ok()
        assert r["client_cert"] is True and r["server_cert"] is True, r
        assert_clean_exit(r)
    finally:
        assert_no_leftovers(marker)


@pytest.mark.timeout(90)
def test_timings_pyvider_host_to_our_plugin(
    marker: str, record_property: Callable[[str, object], None]
) -> None:
    """Spawn-to-first-reply and sequential calls/s through pyvider's client (for the notes)."""
    r = h.run_kv_host(
        [
            "--cookie-key",
            BASIC[0],
            "--cookie-value",
            BASIC[1],
            "--auto-mtls",
            "off",
            "--put",
            "k=0123456789abcdef",
            "--bench",
            "2000",
        ],
        h.OUR_KV_PLUGIN,
        marker=marker,
        timeout=80,
    ).expect_ok()
    first_reply_ms = r["timings_ms"]["first_reply"]
    calls_per_s = r["bench"]["calls_per_s"]
    record_property("pyvider_host_first_reply_ms", first_reply_ms)
    record_property("pyvider_host_calls_per_s", calls_per_s)
    print(
        f"\npyvider host -> our plugin (unix, plaintext): first reply {first_reply_ms} ms, "
        f"{calls_per_s} calls/s, shutdown {r['timings_ms']['shutdown']} ms"
    )
    assert first_reply_ms < 15_000 and calls_per_s > 20, r  # sanity only; numbers are noisy
    assert_no_leftovers(marker, r["address"], r["network"])


# --- our host -> pyvider plugin ---------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_our_host_loads_pyvider_plugin(marker: str, transport: str) -> None:
    """Plaintext, both libraries' default cookie."""
    with open_pyvider_plugin(marker, transport=transport) as plugin:
        assert plugin.network == transport
        assert plugin.negotiated_version == 1
        assert plugin.handshake_line.server_cert == ""
        exercise_kv(plugin.stub)
        assert plugin.ping() is True
        address = plugin.address
        assert plugin.pid in h.marked_pids(marker)
    # pyvider's plugin answers Shutdown by SIGTERMing itself, then exits 0.
    assert plugin.returncode == 0
    assert_no_leftovers(marker, address, transport)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("configured_by", ["env", "config"])
def test_our_host_custom_cookie_pyvider_plugin(marker: str, configured_by: str) -> None:
    """BASIC_PLUGIN=hello, set in pyvider's plugin by its env variables or its config dict."""
    _, handshake_config = our_host_api()
    env: dict[str, str] = {}
    plugin_args: tuple[str, ...] = ()
    if configured_by == "env":
        env = {"PLUGIN_MAGIC_COOKIE_KEY": BASIC[0], "PLUGIN_MAGIC_COOKIE_VALUE": BASIC[1]}
    else:
        plugin_args = ("--cookie-key", BASIC[0], "--cookie-value", BASIC[1])
    handshake = handshake_config(BASIC[0], BASIC[1], (1,))
    plugin = open_pyvider_plugin(marker, handshake=handshake, env=env, plugin_args=plugin_args)
    with plugin:
        plugin.stub.Put(kv_pb2.PutRequest(key="k", value=b"v"), timeout=10)
        assert plugin.stub.Get(kv_pb2.GetRequest(key="k"), timeout=10).value == b"v"
    assert plugin.returncode == 0
    assert_no_leftovers(marker)


@pytest.mark.timeout(60)
def test_our_host_wrong_cookie_refused_by_pyvider_plugin(marker: str) -> None:
    from pyvider_rpcplugin_sync import PluginStartError

    _, handshake_config = our_host_api()
    plugin = open_pyvider_plugin(
        marker,
        handshake=handshake_config(BASIC[0], "wrong", (1,)),
        plugin_args=("--cookie-key", BASIC[0], "--cookie-value", BASIC[1]),
    )
    with pytest.raises(PluginStartError) as caught, plugin:
        pytest.fail("the plugin started with a wrong cookie")
    error = caught.value
    assert error.returncode == 1, str(error)
    assert "Magic cookie mismatch" in str(error), str(error)  # pyvider's stderr, quoted
    assert_no_leftovers(marker)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("transport", ["unix", "tcp"])
def test_our_host_automtls_pyvider_plugin(marker: str, transport: str) -> None:
    """Our AutoMTLS (P-256 host cert): pyvider answers with its own P-384 certificate."""
    with open_pyvider_plugin(marker, tls=True, transport=transport) as plugin:
        cert_field = plugin.handshake_line.server_cert
        assert len(cert_field) > 50 and "=" not in cert_field
        assert h.cert_curve(cert_field) == "secp384r1"
        exercise_kv(plugin.stub)
        assert plugin.ping() is True
        address = plugin.address
    assert plugin.returncode == 0
    assert_no_leftovers(marker, address, transport)


@pytest.mark.timeout(60)
@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="pyvider-rpcplugin 0.5.5 serves AutoMTLS with grpc.ssl_server_credentials("
    "require_client_auth=False) unless PLUGIN_CLIENT_ROOT_CERTS is configured "
    "(pyvider/rpcplugin/server/network.py, ServerNetworkMixin._client_ca_bundle): the "
    "host certificate in PLUGIN_CLIENT_CERT is never checked, any local client gets in",
)
def test_pyvider_plugin_automtls_rejects_foreign_clients(marker: str) -> None:
    with open_pyvider_plugin(marker, tls=True) as plugin:
        assert plugin.ping() is True
        cert_field, address = plugin.handshake_line.server_cert, plugin.address
        certless = h.tls_probe("unix", address, cert_field)
        foreign = h.tls_probe("unix", address, cert_field, identity=h.foreign_identity())
    assert_no_leftovers(marker, address)
    assert certless is not None, "pyvider's plugin answered a client without a certificate"
    assert foreign is not None, "pyvider's plugin answered a client with a foreign certificate"


@pytest.mark.timeout(60)
def test_our_host_full_mtls_with_pyvider_plugin_verifying_host_cert(marker: str) -> None:
    """pyvider's plugin with PLUGIN_CLIENT_ROOT_CERTS = the host's cert: real mutual TLS."""
    with open_pyvider_plugin(marker, tls=True, plugin_args=("--verify-host-cert",)) as plugin:
        exercise_kv(plugin.stub)
        assert plugin.ping() is True
        cert_field, address = plugin.handshake_line.server_cert, plugin.address
        certless = h.tls_probe("unix", address, cert_field)
        foreign = h.tls_probe("unix", address, cert_field, identity=h.foreign_identity())
        assert plugin.ping() is True  # the probes did not disturb our connection
    assert certless is not None, "a client without a certificate got in"
    assert foreign is not None, "a client with a foreign certificate got in"
    assert plugin.returncode == 0
    assert_no_leftovers(marker, address)


@pytest.mark.timeout(60)
def test_our_host_automtls_refused_by_pyvider_plugin_without_auto_mtls(marker: str) -> None:
    """PLUGIN_AUTO_MTLS=false in pyvider's plugin: it answers plaintext; our host says so."""
    from pyvider_rpcplugin_sync import TLSError

    plugin = open_pyvider_plugin(marker, tls=True, plugin_args=("--no-auto-mtls",))
    with pytest.raises(TLSError, match=r"(?i)certificate"), plugin:
        pytest.fail("connected to a plaintext plugin although AutoMTLS was asked for")
    assert plugin.returncode is not None  # stopped and reaped
    assert_no_leftovers(marker)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("tls", [False, True], ids=["plain", "automtls"])
def test_timings_our_host_to_pyvider_plugin(
    marker: str, tls: bool, record_property: Callable[[str, object], None]
) -> None:
    """Spawn-to-first-reply and sequential calls/s of our host with pyvider's plugin."""
    started = time.perf_counter()
    with open_pyvider_plugin(marker, tls=tls) as plugin:
        plugin.stub.Put(kv_pb2.PutRequest(key="k", value=b"0123456789abcdef"), timeout=10)
        first_reply_ms = (time.perf_counter() - started) * 1000
        request = kv_pb2.GetRequest(key="k")
        plugin.stub.Get(request, timeout=10)
        calls = 2000
        t0 = time.perf_counter()
        for _ in range(calls):
            plugin.stub.Get(request, timeout=10)
        calls_per_s = calls / (time.perf_counter() - t0)
        t_close = time.perf_counter()
    close_ms = (time.perf_counter() - t_close) * 1000
    record_property("our_host_first_reply_ms", round(first_reply_ms, 1))
    record_property("our_host_calls_per_s", round(calls_per_s, 1))
    print(
        f"\nour host -> pyvider plugin (unix, {'AutoMTLS' if tls else 'plaintext'}): "
        f"first reply {first_reply_ms:.1f} ms, {calls_per_s:.1f} calls/s, "
        f"close {close_ms:.1f} ms"
    )
    assert plugin.returncode == 0
    assert first_reply_ms < 15_000 and calls_per_s > 20
    assert_no_leftovers(marker)


@pytest.mark.timeout(60)
def test_our_multiplexing_host_refuses_the_pyvider_plugin(marker: str) -> None:
    """pyvider-rpcplugin does not multiplex: a typed error, and its process is gone."""
    from pyvider_rpcplugin_sync import MultiplexNotSupported, PluginProcess

    plugin = PluginProcess(
        pyvider_plugin_cmd(), tls=False, stub=kv_pb2_grpc.KVStub, multiplex=True,
        env={h.MARKER_VAR: marker}, cwd=h.REPO_ROOT, start_timeout=30,
    )  # fmt: skip
    with pytest.raises(MultiplexNotSupported, match="plugin does not support the feature"):
        plugin.start()
    assert plugin.returncode is not None
    assert h.marked_pids(marker) == []
