"""Our host (``PluginProcess``) loading real go-plugin 1.8.0 (and 1.6.0) Go plugins.

``go18/cmd/kvplugin18`` and ``go18/cmd/counterplugin18``, built as a Go module against
go-plugin v1.8.0 and, from the same sources, v1.6.0. Cells:

- KV, plaintext and AutoMTLS (the Go plugin's P-521 certificate, through the ssl TLS
  bridge): values checked byte for byte, ``ping``, graceful close (exit 0, no signal);
- the Go plugin puts its socket in the directory our host sends as
  ``PLUGIN_UNIX_SOCKET_DIR`` (go-plugin 1.0.1 plugins ignore it), with
  ``PLUGIN_UNIX_SOCKET_GROUP`` 0660 in that group, and the directory is gone after close;
- tcp: n/a; go-plugin plugins listen on TCP only on Windows (server.go
  ``serverListener``), so ``transport="tcp"`` still yields unix;
- brokered callbacks in both directions, plaintext and AutoMTLS: the Go plugin dials
  our host's AddHelper on every ``put`` (1.0.1 plugins cannot under AutoMTLS, go-plugin
  issue 109, fixed in 1.4.4), and our host dials an AddHelper the Go plugin serves.
"""

from __future__ import annotations

import grp
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fakehost import MARKER_VAR
from test_our_host_go import KV_HANDSHAKE, assert_graceful, exercise_kv, timed_close

from pyvider_rpcplugin_sync import HandshakeConfig, PluginProcess, PluginStartError
from pyvider_rpcplugin_sync.examples import (
    counter_host,
    counter_pb2,
    counter_pb2_grpc,
    kv_pb2,
    kv_pb2_grpc,
)
from pyvider_rpcplugin_sync.examples.counter_plugin import COUNTER_HANDSHAKE

pytestmark = [pytest.mark.interop, pytest.mark.timeout(90)]

FLAVOURS = ["go18", "go16"]  # go-plugin v1.8.0, v1.6.0
TLS = [False, True]
TLS_IDS = ["plain", "automtls"]
Programs = Callable[[str], dict[str, Path]]


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """PluginProcess passes the host's environment on: none of the developer's plugin
    variables may reach the Go plugin."""
    for name in list(os.environ):
        if name.startswith(("KV_", "PLUGIN_", "BASIC_PLUGIN", "GO18_")):
            monkeypatch.delenv(name)


def start(
    binary: Path, marker: str, tmpdir: Path, *, env: dict[str, str] | None = None, **options: Any
) -> PluginProcess:
    full_env = {"TMPDIR": str(tmpdir), MARKER_VAR: marker, **(env or {})}
    return PluginProcess([str(binary)], env=full_env, start_timeout=30, **options)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("tls", TLS, ids=TLS_IDS)
def test_kv(
    go_module_programs: Programs, marker: str, tmpdir_short: Path, flavour: str, tls: bool
) -> None:
    binary = go_module_programs(flavour)["kvplugin18"]
    plugin = start(
        binary, marker, tmpdir_short, handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub, tls=tls,
        transport="tcp",
    )  # fmt: skip
    with plugin:
        assert plugin.handshake_line.network == "unix"  # tcp asked; Go plugins listen on unix
        assert bool(plugin.handshake_line.server_cert) is tls
        exercise_kv(plugin.stub)
        plugin.ping()
        socket_path = Path(plugin.address)
        # The directory our host made and sent as PLUGIN_UNIX_SOCKET_DIR, not $TMPDIR.
        assert socket_path.parent != tmpdir_short
        assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
        close_seconds = timed_close(plugin)
    assert_graceful(plugin, close_seconds)
    assert not socket_path.parent.exists()
    assert list(tmpdir_short.iterdir()) == []


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_socket_group(
    go_module_programs: Programs, marker: str, tmpdir_short: Path, flavour: str
) -> None:
    gids = os.getgroups() if os.geteuid() != 0 else [g.gr_gid for g in grp.getgrall()]
    group = next((gid for gid in gids if gid != os.getgid()), None)
    assert group is not None, "no group other than our primary one to hand the socket to"
    binary = go_module_programs(flavour)["kvplugin18"]
    plugin = start(
        binary, marker, tmpdir_short, handshake=KV_HANDSHAKE, stub=kv_pb2_grpc.KVStub,
        env={"PLUGIN_UNIX_SOCKET_GROUP": str(group)},
    )  # fmt: skip
    with plugin:
        info = Path(plugin.address).stat()
        assert stat.S_ISSOCK(info.st_mode)
        assert stat.S_IMODE(info.st_mode) == 0o660 and info.st_gid == group
        plugin.ping()
    assert plugin.returncode == 0, plugin.stderr_tail


def reverse_sum(plugin: PluginProcess, a: int, b: int) -> tuple[int, int]:
    """Ask the plugin for the broker id of its AddHelper, dial it, return (sum, id)."""
    open_helper = plugin.channel.unary_unary(
        "/proto.HelperSource/Open",
        request_serializer=counter_pb2.CounterEmpty.SerializeToString,
        response_deserializer=counter_pb2.CounterGetResponse.FromString,
    )
    service_id = int(open_helper(counter_pb2.CounterEmpty(), timeout=10).value)
    with plugin.broker.dial(service_id) as channel:
        reply = counter_pb2_grpc.AddHelperStub(channel).Sum(
            counter_pb2.SumRequest(a=a, b=b), timeout=10
        )
    return int(reply.r), service_id


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("tls", TLS, ids=TLS_IDS)
@pytest.mark.parametrize("multiplex", [False, True], ids=["sockets", "multiplexed"])
def test_brokered_callbacks_both_ways(
    go_module_programs: Programs,
    marker: str,
    tmpdir_short: Path,
    *,
    flavour: str,
    tls: bool,
    multiplex: bool,
) -> None:
    """Multiplexed: the Go plugin's field 7 says true; the main connection and every
    brokered one are yamux streams over our one connection, TLS inside each."""
    binary = go_module_programs(flavour)["counterplugin18"]
    plugin = start(
        binary, marker, tmpdir_short, handshake=COUNTER_HANDSHAKE,
        stub=counter_pb2_grpc.CounterStub, tls=tls, multiplex=multiplex,
    )  # fmt: skip
    with plugin:
        assert plugin.handshake_line.multiplex is (True if multiplex else None)
        ops = counter_host.parse_ops(["put", "a", "2", "put", "a", "40", "put", "b", "-5",
                                      "get", "a", "get", "b"])  # fmt: skip
        assert list(counter_host.run(plugin, ops)) == [42, -5]
        first, first_id = reverse_sum(plugin, 20, 22)
        second, second_id = reverse_sum(plugin, -7, 3)
        assert (first, second) == (42, -4)
        assert first_id != second_id
        close_seconds = timed_close(plugin)
    assert_graceful(plugin, close_seconds)


@pytest.mark.parametrize("flavour", FLAVOURS)
@pytest.mark.parametrize("versions", [(1, 2), (2, 1)], ids=["1,2", "2,1"])
def test_version_negotiation(
    go_module_programs: Programs,
    marker: str,
    tmpdir_short: Path,
    flavour: str,
    versions: tuple[int, ...],
) -> None:
    handshake = HandshakeConfig("BASIC_PLUGIN", "hello", versions)
    binary = go_module_programs(flavour)["kvplugin18"]
    with start(binary, marker, tmpdir_short, handshake=handshake, stub=kv_pb2_grpc.KVStub) as p:
        assert p.negotiated_version == 1  # the Go plugin speaks 1: the highest common one
        p.stub.Put(kv_pb2.PutRequest(key="k", value=b"v"), timeout=10)
        assert p.stub.Get(kv_pb2.GetRequest(key="k"), timeout=10).value == b"v"
    assert p.returncode == 0, p.stderr_tail


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_wrong_cookie(
    go_module_programs: Programs, marker: str, tmpdir_short: Path, flavour: str
) -> None:
    wrong = HandshakeConfig("BASIC_PLUGIN", "not-hello", (1,))
    plugin = start(go_module_programs(flavour)["kvplugin18"], marker, tmpdir_short, handshake=wrong)
    with pytest.raises(PluginStartError) as caught:
        plugin.start()
    assert caught.value.returncode == 1, str(caught.value)
    assert "This binary is a plugin" in str(caught.value)  # go-plugin's refusal, quoted
    assert plugin.returncode == 1
