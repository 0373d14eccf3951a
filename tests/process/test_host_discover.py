"""Finding plugins: discover() in a directory, installed_plugins() from entry points."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pyvider_rpcplugin_sync import PluginProcess, discover, installed_plugins
from pyvider_rpcplugin_sync._protos import echo_pb2, echo_pb2_grpc

pytestmark = pytest.mark.timeout(60)


def _executable(path: Path, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_discover_lists_matching_executables_sorted_with_links_resolved(tmp_path: Path) -> None:
    b = _executable(tmp_path / "terraform-provider-b")
    a = _executable(tmp_path / "terraform-provider-a")
    (tmp_path / "terraform-provider-readme").write_text("not a program")  # not executable
    (tmp_path / "terraform-provider-dir").mkdir(mode=0o755)
    _executable(tmp_path / "other-plugin")
    elsewhere = tmp_path / "store"
    elsewhere.mkdir()
    c = _executable(elsewhere / "real-c")
    (tmp_path / "terraform-provider-c").symlink_to(c)
    (tmp_path / "terraform-provider-dangling").symlink_to(tmp_path / "missing")

    found = discover("terraform-provider-*", tmp_path)

    assert found == sorted([str(a), str(b), str(c)])
    assert discover("nothing-*", tmp_path) == []


def test_discover_takes_a_relative_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugin = _executable(tmp_path / "plugin-x")
    monkeypatch.chdir(tmp_path.parent)
    assert discover("plugin-*", tmp_path.name) == [str(plugin)]


def test_a_discovered_plugin_runs(tmp_path: Path) -> None:
    script = f"#!/bin/sh\nexec {sys.executable} -m pyvider_rpcplugin_sync.examples.echo_plugin\n"
    _executable(tmp_path / "plugin-echo", script)
    [command] = discover("plugin-*", tmp_path)
    with PluginProcess([command], stub=echo_pb2_grpc.EchoStub) as plugin:
        reply = plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"found"), timeout=20)
        assert reply.payload == b"found"


def test_installed_plugins_come_from_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dist = tmp_path / "thirdparty_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: thirdparty-plugins\nVersion: 1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[pyvider_rpcplugin_sync.plugins]\n"
        "thirdparty-echo = pyvider_rpcplugin_sync.examples.echo_plugin\n"
        "with-attr = thirdparty.plugin:main\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    plugins = installed_plugins()

    # The library's own examples are registered by its pyproject.toml.
    assert plugins["echo"] == [sys.executable, "-m", "pyvider_rpcplugin_sync.examples.echo_plugin"]
    assert plugins["thirdparty-echo"] == plugins["echo"]
    assert plugins["with-attr"] == [sys.executable, "-m", "thirdparty.plugin"]
    assert installed_plugins("no.such.group") == {}
    with PluginProcess(plugins["thirdparty-echo"], stub=echo_pb2_grpc.EchoStub) as plugin:
        reply = plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"by name"), timeout=20)
        assert reply.payload == b"by name"
