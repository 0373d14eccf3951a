"""``protoc``: stubs for a user's own .proto, generated, imported and served."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from pyvider_rpcplugin_sync import CodegenError
from pyvider_rpcplugin_sync._codegen import generate_stubs
from pyvider_rpcplugin_sync.testing import serve_in_process

pytestmark = pytest.mark.timeout(90)

CLI = [sys.executable, "-m", "pyvider_rpcplugin_sync"]
GREETER = """\
syntax = "proto3";
package greet.v1;
import "google/protobuf/empty.proto";

message HelloRequest { string name = 1; }
message HelloReply { string text = 1; }

service Greeter {
  rpc Hello (HelloRequest) returns (HelloReply);
  rpc Ping (google.protobuf.Empty) returns (google.protobuf.Empty);
}
"""


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def importable(tmp_path: Path) -> Iterator[Path]:
    """An output directory on sys.path; the modules imported from it are forgotten after."""
    out = tmp_path / "gen"
    sys.path.insert(0, str(out))
    before = set(sys.modules)
    try:
        yield out
    finally:
        sys.path.remove(str(out))
        for name in set(sys.modules) - before:
            del sys.modules[name]


def test_cli_generates_stubs_that_serve_and_call(tmp_path: Path, importable: Path) -> None:
    proto_dir = tmp_path / "protos"
    proto_dir.mkdir()
    (proto_dir / "greeter.proto").write_text(GREETER)
    result = cli(
        "protoc", "-I", str(proto_dir), "--out", str(importable), str(proto_dir / "greeter.proto")
    )
    assert result.returncode == 0, result.stderr
    names = sorted(Path(line).name for line in result.stdout.split())
    assert names == [
        "greeter_pb2.py",
        "greeter_pb2.pyi",
        "greeter_pb2_grpc.py",
        "greeter_pb2_grpc.pyi",
    ]
    assert "class HelloRequest" in (importable / "greeter_pb2.pyi").read_text()
    typed_stub = (importable / "greeter_pb2_grpc.pyi").read_text()
    assert (
        "UnaryUnaryMultiCallable[_greeter_pb2.HelloRequest, _greeter_pb2.HelloReply]" in typed_stub
    )

    pb2: Any = importlib.import_module("greeter_pb2")
    pb2_grpc: Any = importlib.import_module("greeter_pb2_grpc")

    class Greeter(pb2_grpc.GreeterServicer):  # type: ignore[misc]
        def Hello(self, request: Any, context: grpc.ServicerContext) -> Any:
            return pb2.HelloReply(text=f"hello, {request.name}")

    def register(server: grpc.Server) -> None:
        pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)

    with serve_in_process(register, stub=pb2_grpc.GreeterStub) as plugin:
        assert plugin.stub.Hello(pb2.HelloRequest(name="proto"), timeout=5).text == "hello, proto"


def test_package_paths_become_module_paths(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "myapp").mkdir(parents=True)
    (src / "myapp" / "greeter.proto").write_text(GREETER)
    written = generate_stubs([src / "myapp" / "greeter.proto"], include=[src], out=tmp_path / "o")
    assert {p.relative_to(tmp_path / "o").as_posix() for p in written} == {
        "myapp/greeter_pb2.py",
        "myapp/greeter_pb2_grpc.py",
        "myapp/greeter_pb2.pyi",
        "myapp/greeter_pb2_grpc.pyi",
    }
    assert "from myapp import greeter_pb2" in (tmp_path / "o/myapp/greeter_pb2_grpc.py").read_text()


def test_a_broken_proto_is_a_clear_error_with_protocs_message(tmp_path: Path) -> None:
    broken = tmp_path / "broken.proto"
    broken.write_text('syntax = "proto3";\nmessage Oops { strin name = 1; }\n')
    result = cli("protoc", "--out", str(tmp_path / "o"), str(broken))
    assert result.returncode == 1
    assert result.stderr.startswith("error: protoc failed:")
    assert "broken.proto:2" in result.stderr and "strin" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_paths_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CodegenError, match="does not exist"):
        generate_stubs([tmp_path / "missing.proto"])
    (tmp_path / "a.proto").write_text(GREETER)
    other = tmp_path / "elsewhere"
    other.mkdir()
    with pytest.raises(CodegenError, match="not inside any include directory") as caught:
        generate_stubs([tmp_path / "a.proto"], include=[other])
    assert caught.value.hint is not None and "-I" in caught.value.hint


def test_without_the_codegen_extra_the_error_says_how_to_install_it(tmp_path: Path) -> None:
    # grpcio-tools made unimportable for the CLI process, as in an install without it.
    shadow = tmp_path / "shadow" / "grpc_tools"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'grpc_tools'\")\n")
    (tmp_path / "x.proto").write_text(GREETER)
    result = cli("protoc", str(tmp_path / "x.proto"), env={"PYTHONPATH": str(tmp_path / "shadow")})
    assert result.returncode == 1
    assert "error: generating stubs needs grpcio-tools, which is not installed" in result.stderr
    assert "hint: pip install 'pyvider-rpcplugin-sync[codegen]'" in result.stderr
    assert "Traceback" not in result.stderr
