"""HostConfig, the launcher seam, skip_host_env and the unix socket options, with real plugins."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from process_helpers import ECHO

from pyvider_rpcplugin_sync import (
    CommandLauncher,
    HostConfig,
    PluginProcess,
    TransportError,
)
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.timeout(60)
NOBODY, NOGROUP = 65534, 65534


def echo(plugin: PluginProcess, payload: bytes) -> bytes:
    return bytes(plugin.stub.Echo(echo_pb2.EchoRequest(payload=payload), timeout=20).payload)


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = (entry.decode().partition("=") for entry in raw.split(b"\0") if entry)
    return {key: value for key, _, value in pairs}


def uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


@pytest.fixture
def short_dir() -> Iterator[str]:
    """A directory with a short path (socket paths must fit in 107 bytes)."""
    directory = tempfile.mkdtemp(prefix="launch", dir="/tmp")
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_one_config_serves_many_hosts_and_keywords_replace_its_fields() -> None:
    config = HostConfig(tls=False, stub=echo_pb2_grpc.EchoStub, env={"A": "1"})
    with (
        PluginProcess(ECHO, config) as first,
        PluginProcess(ECHO, config, env={"A": "2"}) as second,
    ):
        assert echo(first, b"one") == b"one" and echo(second, b"two") == b"two"
        assert first.pid is not None and second.pid is not None
        assert environ_of(first.pid)["A"] == "1"
        assert environ_of(second.pid)["A"] == "2"
    assert config.env == {"A": "1"}  # the frozen config is untouched


def test_config_is_validated_when_built() -> None:
    with pytest.raises(ValueError, match="transport must be"):
        HostConfig(transport="udp")
    with pytest.raises(ValueError, match="rate_limit_mode"):
        HostConfig(rate_limit_mode="sometimes")
    with pytest.raises(TypeError, match="no_such_option"):
        PluginProcess(ECHO, no_such_option=True)


def test_skip_host_env_keeps_the_host_environment_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOST_ONLY_SECRET", "s3cr3t")
    options = {"tls": False, "stub": echo_pb2_grpc.EchoStub, "env": {"GIVEN": "yes"}}
    with PluginProcess(ECHO, **options) as inherits:
        assert inherits.pid is not None
        assert environ_of(inherits.pid)["HOST_ONLY_SECRET"] == "s3cr3t"
    with PluginProcess(ECHO, skip_host_env=True, **options) as plugin:
        assert echo(plugin, b"ok") == b"ok"
        assert plugin.pid is not None
        environ = environ_of(plugin.pid)
    assert "HOST_ONLY_SECRET" not in environ and "PATH" not in environ
    assert environ["GIVEN"] == "yes"
    assert environ["PLUGIN_PROTOCOL_VERSIONS"] == "1"
    assert "PLUGIN_CLIENT_CERT" not in environ  # tls=False


def test_launcher_translates_the_address_the_host_dials(short_dir: str) -> None:
    seen: list[tuple[str, str]] = []
    link = os.path.join(short_dir, "alias.sock")

    def translate(network: str, address: str) -> tuple[str, str]:
        seen.append((network, address))
        os.symlink(address, link)  # the plugin's socket, reached by another name
        return network, link

    launcher = CommandLauncher(translate_address=translate)
    with PluginProcess(ECHO, tls=True, stub=echo_pb2_grpc.EchoStub, launcher=launcher) as plugin:
        assert echo(plugin, b"via alias") == b"via alias"
        assert plugin.handshake_line is not None
        assert seen == [("unix", plugin.handshake_line.address)]
        assert plugin.address == link
        assert plugin.reattach_config().address == link


@pytest.mark.skipif(os.geteuid() != 0, reason="running a plugin as another user needs root")
def test_plugin_run_as_another_user_reaches_its_socket_through_the_group(short_dir: str) -> None:
    # setpriv (util-linux) runs the plugin as nobody:nogroup. The capability only lets
    # it read the interpreter under /root (mode 0700); it grants no write access, so
    # the socket directory must be shared with the plugin's group to be usable, and
    # its parent open to the plugin's user.
    os.chmod(short_dir, 0o755)
    launcher = CommandLauncher(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOGROUP}",
            "--clear-groups",
            "--inh-caps=+dac_read_search",
            "--ambient-caps=+dac_read_search",
            "--",
        ]
    )
    with PluginProcess(
        ECHO,
        tls=True,
        stub=echo_pb2_grpc.EchoStub,
        launcher=launcher,
        unix_socket_dir=short_dir,
        unix_socket_group="nogroup",
    ) as plugin:
        assert echo(plugin, b"as nobody") == b"as nobody"
        assert plugin.pid is not None and uid_of(plugin.pid) == NOBODY
        environ = environ_of(plugin.pid)
        socket_dir = environ["PLUGIN_UNIX_SOCKET_DIR"]
        assert environ["PLUGIN_UNIX_SOCKET_GROUP"] == "nogroup"
        assert os.path.dirname(socket_dir) == short_dir
        assert plugin.address is not None and os.path.dirname(plugin.address) == socket_dir
        directory, sock = os.stat(socket_dir), os.stat(plugin.address)
        assert (stat.S_IMODE(directory.st_mode), directory.st_gid) == (0o770, NOGROUP)
        assert (stat.S_IMODE(sock.st_mode), sock.st_gid, sock.st_uid) == (0o660, NOGROUP, NOBODY)
    assert os.listdir(short_dir) == []  # the socket directory went with the plugin


def test_unix_socket_dir_that_does_not_exist_is_a_typed_error(tmp_path: Path) -> None:
    with pytest.raises(TransportError, match="socket directory") as caught:
        PluginProcess(ECHO, tls=False, unix_socket_dir=tmp_path / "missing").start()
    assert "unix_socket_dir" in (caught.value.hint or "")
