"""The pure parts of the host's process handling: argv, checksums, socket dirs, log lines."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import pytest

from pyvider_rpcplugin_sync import PluginStartError
from pyvider_rpcplugin_sync._host.env import (
    command_argv,
    resolve_executable,
    socket_dir_fits,
    verify_checksum,
)
from pyvider_rpcplugin_sync._host.pipes import PipeReaders, split_lines
from pyvider_rpcplugin_sync._host.stdio import StderrLog, plugin_logger_name

pytestmark = pytest.mark.timeout(30)


def test_command_argv() -> None:
    assert command_argv("python3 -m 'my plugin'") == ["python3", "-m", "my plugin"]
    assert command_argv(["./p", Path("x")]) == ["./p", "x"]
    for empty in ("", [], "   ", [""]):
        with pytest.raises(ValueError):
            command_argv(empty)


def test_resolve_executable(tmp_path: Path) -> None:
    tool = tmp_path / "tool"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert resolve_executable("tool", {"PATH": str(tmp_path)}, None) == str(tool)
    assert resolve_executable("./tool", {}, str(tmp_path)) == str(tool)
    with pytest.raises(PluginStartError, match="not found"):
        resolve_executable("no-such-tool-here", {"PATH": str(tmp_path)}, None)


def test_verify_checksum(tmp_path: Path) -> None:
    binary = tmp_path / "plugin"
    binary.write_bytes(b"plugin bytes")
    digest = hashlib.sha256(b"plugin bytes").hexdigest()
    verify_checksum(str(binary), digest)
    verify_checksum(str(binary), digest.upper())
    with pytest.raises(PluginStartError, match="checksums did not match") as caught:
        verify_checksum(str(binary), "0" * 64)
    assert caught.value.hint
    with pytest.raises(ValueError, match="64 hex"):
        verify_checksum(str(binary), "abc")
    with pytest.raises(PluginStartError, match="cannot read"):
        verify_checksum(str(tmp_path / "missing"), digest)


def test_socket_dir_fits() -> None:
    assert socket_dir_fits("/tmp/pyvider-plugin-abcdefgh")
    assert not socket_dir_fits("/" + "d" * 95)
    # "plugin" + 10 digits after "/": a 90-byte dir gives a 107-byte path, the limit.
    assert socket_dir_fits("/" + "d" * 89)
    assert not socket_dir_fits("/" + "d" * 90)


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["/usr/bin/terraform-provider-aws_v5"], "terraform-provider-aws_v5"),
        (["python3", "-u", "plugins/kv_plugin.py", "--x"], "kv_plugin"),
        (["/venv/bin/python", "-m", "pkg.examples.echo_plugin"], "echo_plugin"),
        (["python3.11"], "python3_11"),
        (["./my.plugin"], "my_plugin"),
    ],
)
def test_plugin_logger_name(argv: list[str], name: str) -> None:
    assert plugin_logger_name(argv) == f"pyvider_rpcplugin_sync.plugin.{name}"


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=1)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> tuple[StderrLog, Collect]:
    target = logging.getLogger(f"test.stderr.{os.getpid()}")
    target.propagate = False
    target.setLevel(1)
    handler = Collect()
    target.handlers[:] = [handler]
    return StderrLog(target), handler


def test_stderr_levels(collected: tuple[StderrLog, Collect]) -> None:
    sink, handler = collected
    for line in [
        '{"@level":"trace","@message":"t","@timestamp":"2026-01-02T03:04:05.123456Z"}',
        '{"@level":"WARN","@message":"w","@module":"m","args":[1]}',
        '{"@level":"error","@message":"e","levelname":"x","exc_info":"y"}',
        '{"@level":"loud","@message":"unknown level"}',
        "[INFO]  tagged info",
        "[WARNING] python-style warning",
        "plain",
        "",
        "panic: runtime error",
        "goroutine 1 [running]:",
    ]:
        sink(line)
    got = [(r.levelno, r.getMessage()) for r in handler.records]
    assert got == [
        (5, "t"),
        (logging.WARNING, "w"),
        (logging.ERROR, "e"),
        (logging.DEBUG, '{"@level":"loud","@message":"unknown level"}'),
        (logging.INFO, "tagged info"),
        (logging.WARNING, "python-style warning"),
        (logging.DEBUG, "plain"),
        (logging.ERROR, "panic: runtime error"),
        (logging.ERROR, "goroutine 1 [running]:"),
    ]
    assert handler.records[1].__dict__["@module"] == "m"
    assert handler.records[1].plugin_args == [1]  # type: ignore[attr-defined]
    assert handler.records[2].plugin_levelname == "x"  # type: ignore[attr-defined]
    assert handler.records[2].plugin_exc_info == "y"  # type: ignore[attr-defined]
    assert handler.records[2].exc_info is None


def test_split_lines_gives_what_readline_with_a_limit_gives() -> None:
    data = b"short\n" + b"x" * 10 + b"\nlast"
    chunks = [data[i : i + 3] for i in range(0, len(data), 3)]
    assert list(split_lines(chunks, 4)) == [b"shor", b"t\n", b"xxxx", b"xxxx", b"xx\n", b"last"]
    assert list(split_lines([b"a\n", b"b\n"], 64)) == [b"a\n", b"b\n"]


def test_stopped_readers_end_although_the_writer_keeps_the_pipe_open() -> None:
    read_end, write_end = os.pipe()
    readers = PipeReaders()
    try:
        os.write(write_end, b"before")
        chunks = readers.chunks(read_end)
        assert next(chunks) == b"before"
        readers.stop()
        assert list(chunks) == []  # no end of file: the writer still holds the pipe
    finally:
        readers.close()
        os.close(read_end)
        os.close(write_end)
