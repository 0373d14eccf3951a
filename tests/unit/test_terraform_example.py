"""The pyecho provider's pure parts: cty msgpack values, the file resource, the launcher."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import msgpack
import pytest

from pyvider_rpcplugin_sync._protos import tfplugin6_pb2 as tf
from pyvider_rpcplugin_sync.examples.terraform_provider import cty, file_resource
from pyvider_rpcplugin_sync.examples.terraform_provider.crash import (
    MAX_SUMMARY_CHARS,
    MAX_TRACEBACK_CHARS,
    crash_message,
)
from pyvider_rpcplugin_sync.examples.terraform_provider.launcher import (
    LAUNCHER_NAME,
    cli_config,
    write_launcher,
)


def test_objects_round_trip_with_null_and_unknown() -> None:
    value = {"id": cty.UNKNOWN, "path": "/tmp/x", "content": None, "n": 3, "ok": True}
    assert cty.decode(cty.encode(value)) == value


def test_unknown_is_msgpack_extension_zero() -> None:
    packed = cty.encode({"id": cty.UNKNOWN}).msgpack
    assert msgpack.unpackb(packed) == {"id": msgpack.ExtType(0, b"\x00")}


def test_refined_unknowns_decode_as_unknown() -> None:
    packed = msgpack.packb({"id": msgpack.ExtType(12, b"\x81\x01\xc3")})
    assert cty.decode(tf.DynamicValue(msgpack=packed)) == {"id": cty.UNKNOWN}


def test_null_object_and_empty_value() -> None:
    assert cty.decode(cty.encode(None)) is None
    assert cty.decode(tf.DynamicValue()) is None
    assert cty.decode(tf.DynamicValue(json=b'{"a": "b"}')) == {"a": "b"}


@pytest.mark.parametrize(
    "packed",
    [
        msgpack.packb(["not", "an", "object"]),
        msgpack.packb({"x": msgpack.ExtType(5, b"")}),
        b"\xc1",  # never used in msgpack
        msgpack.packb({}) + b"\x00",  # trailing data
    ],
)
def test_bad_values_raise_cty_error(packed: bytes) -> None:
    with pytest.raises(cty.CtyError):
        cty.decode(tf.DynamicValue(msgpack=packed))


def test_bad_json_raises_cty_error() -> None:
    with pytest.raises(cty.CtyError, match="malformed JSON"):
        cty.decode(tf.DynamicValue(json=b"{not json"))


def test_type_json() -> None:
    assert cty.type_json("string") == b'"string"'


# --- the file resource -------------------------------------------------------------


def test_plan_create_update_replace_destroy() -> None:
    proposed = {"id": None, "path": "/a", "content": "x"}
    assert file_resource.plan(None, proposed) == ({**proposed, "id": cty.UNKNOWN}, [])
    prior = {"id": "i1", "path": "/a", "content": "old"}
    assert file_resource.plan(prior, proposed) == ({**proposed, "id": "i1"}, [])
    moved = {**proposed, "path": "/b"}
    assert file_resource.plan(prior, moved) == ({**moved, "id": "i1"}, ["path"])
    assert file_resource.plan(prior, None) == (None, [])


def test_apply_read_and_delete(tmp_path: Path) -> None:
    path = str(tmp_path / "f.txt")
    created = file_resource.apply(None, {"id": cty.UNKNOWN, "path": path, "content": "héllo"})
    assert created is not None
    assert len(created["id"]) == 32
    assert Path(path).read_text(encoding="utf-8") == "héllo"
    updated = file_resource.apply(created, {**created, "content": "bye"})
    assert updated == {**created, "content": "bye"}
    Path(path).write_text("drifted", encoding="utf-8")
    assert file_resource.read(updated) == {**updated, "content": "drifted"}
    assert file_resource.apply(updated, None) is None
    assert not os.path.exists(path)
    assert file_resource.read(updated) is None  # gone: Terraform plans to recreate it
    assert file_resource.apply(updated, None) is None  # deleting twice is fine
    assert os.listdir(tmp_path) == []  # no temporary file left


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    missing_dir = tmp_path / "missing" / "f.txt"
    with pytest.raises(FileNotFoundError):
        file_resource.apply(None, {"id": cty.UNKNOWN, "path": str(missing_dir), "content": "x"})
    blocked = tmp_path / "a-directory"
    blocked.mkdir()
    with pytest.raises(IsADirectoryError):
        file_resource.apply(None, {"id": cty.UNKNOWN, "path": str(blocked), "content": "x"})
    assert os.listdir(tmp_path) == ["a-directory"]


def test_import_reads_the_file(tmp_path: Path) -> None:
    target = tmp_path / "f.txt"
    target.write_text("there", encoding="utf-8")
    state = file_resource.import_state(str(target))
    assert state["path"] == str(target)
    assert state["content"] == "there"
    with pytest.raises(FileNotFoundError):
        file_resource.import_state(str(tmp_path / "nope"))


# --- launcher ----------------------------------------------------------------------


def test_launcher_runs_the_provider_module(tmp_path: Path) -> None:
    launcher = write_launcher(tmp_path / "bin dir", python="/opt/my python/bin/python3")
    assert launcher.name == LAUNCHER_NAME
    assert launcher.stat().st_mode & stat.S_IXUSR
    text = launcher.read_text()
    assert "exec '/opt/my python/bin/python3' -m " in text
    # A real run: the script parses in sh and hands its arguments on.
    real = write_launcher(tmp_path / "real")
    result = subprocess.run(
        [str(real), "--help"], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "--debug" in result.stdout


def test_cli_config_escapes_the_directory(tmp_path: Path) -> None:
    text = cli_config(Path('/tmp/a "quoted" ${dir}'))
    assert '"registry.terraform.io/pyvider/pyecho" = "/tmp/a \\"quoted\\" $${dir}"' in text
    assert "direct {}" in text


# --- crash report ------------------------------------------------------------------


def _raise(message: str) -> None:
    raise ValueError(message)


def test_crash_message_carries_the_traceback() -> None:
    try:
        _raise("bad input")
    except ValueError as exc:
        message = crash_message("ReadDataSource", exc)
    first, rest = message.split("\n\n", 1)
    assert first == "ReadDataSource: ValueError: bad input"
    assert rest.startswith("Traceback (most recent call last):")
    assert "raise ValueError(message)" in rest


def test_a_long_traceback_keeps_its_end() -> None:
    try:
        _raise("first line\n" + "x" * (3 * MAX_TRACEBACK_CHARS))
    except ValueError as exc:
        message = crash_message("ApplyResourceChange", exc)
    first, rest = message.split("\n\n", 1)
    assert first == "ApplyResourceChange: ValueError: first line"
    assert rest.startswith("...\n")
    assert len(rest) <= MAX_TRACEBACK_CHARS + 4
    assert rest.endswith("x" * 100 + "\n")


def test_a_long_message_is_shortened() -> None:
    try:
        _raise("y" * 2000)
    except ValueError as exc:
        first = crash_message("ReadResource", exc).split("\n\n", 1)[0]
    assert len(first) == MAX_SUMMARY_CHARS
    assert first.endswith("y...")
