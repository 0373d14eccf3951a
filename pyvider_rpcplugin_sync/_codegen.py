"""``python -m pyvider_rpcplugin_sync protoc``: Python stubs for your own ``.proto`` files.

Runs grpcio-tools' protoc (from the ``codegen`` extra, pinned to the version the
library's own generated code was made with) to write, for each ``NAME.proto``,
``NAME_pb2.py`` (messages), ``NAME_pb2_grpc.py`` (stubs and servicers), and
mypy-protobuf's ``NAME_pb2.pyi`` and ``NAME_pb2_grpc.pyi`` (types of the messages,
stubs and servicers, for editors, mypy and pyright; also in the ``codegen`` extra).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Sequence
from pathlib import Path

from ._constants import PROTOC_TIMEOUT
from ._errors import CodegenError

INSTALL_HINT = "pip install 'pyvider-rpcplugin-sync[codegen]'"
# protoc on a few files takes well under a second; this only bounds a wedged one.


def generate_stubs(
    protos: Sequence[str | os.PathLike[str]],
    *,
    include: Sequence[str | os.PathLike[str]] = (),
    out: str | os.PathLike[str] = ".",
) -> list[Path]:
    """Generate ``_pb2.py``, ``_pb2_grpc.py`` and their ``.pyi`` for ``protos`` into ``out``.

    ``include`` are protoc's ``-I`` directories; by default each file's own directory.
    Every file must lie inside one of them, and its path there decides the module
    path: ``-I protos`` and ``protos/kv.proto`` make ``kv_pb2``, imported as
    ``import kv_pb2`` (so ``out`` must be on ``sys.path``); ``-I src`` and
    ``src/myapp/kv.proto`` make ``myapp/kv_pb2.py``, imported as ``myapp.kv_pb2``.
    Google's well-known types (``google/protobuf/empty.proto`` ...) are always
    found. Returns the files written; raises ``CodegenError`` (with protoc's
    message) when grpcio-tools is missing or protoc fails.
    """
    _require_grpc_tools()
    files = [Path(proto).resolve() for proto in protos]
    if not files:
        raise CodegenError("no .proto file given", hint="protoc [-I DIR] [--out DIR] FILE.proto")
    for path in files:
        if not path.is_file():
            raise CodegenError(f"{path} does not exist", hint="give the path of a .proto file")
    roots = [Path(d).resolve() for d in include] or list(dict.fromkeys(p.parent for p in files))
    for root in roots:
        if not root.is_dir():
            raise CodegenError(f"include directory {root} does not exist")
    relative = [_relative_to_any(path, roots) for path in files]
    target = Path(out).resolve()
    target.mkdir(parents=True, exist_ok=True)
    _run_protoc(
        [
            *(f"-I{root}" for root in roots),
            f"-I{_well_known_dir()}",
            f"--python_out={target}",
            f"--grpc_python_out={target}",
            *typed_stub_args(target),
            *(str(path) for path in files),
        ]
    )
    written: list[Path] = []
    for rel in relative:
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            candidate = target / rel.parent / f"{rel.stem}{suffix}"
            if candidate.exists():
                written.append(candidate)
    return written


def typed_stub_args(target: str | os.PathLike[str], *, services: bool = True) -> list[str]:
    """protoc's arguments for mypy-protobuf's ``_pb2.pyi`` (and, with ``services``,
    ``_pb2_grpc.pyi``) in ``target``."""
    plugins = [("protoc-gen-mypy", "mypy_out")]
    if services:
        plugins.append(("protoc-gen-mypy_grpc", "mypy_grpc_out"))
    args: list[str] = []
    for plugin, option in plugins:
        args += [f"--plugin={plugin}={_plugin_program(plugin)}", f"--{option}=quiet:{target}"]
    return args


def _plugin_program(name: str) -> str:
    # The scripts of the environment running this, then of the user's site, then PATH.
    for scheme in (None, f"{os.name}_user"):
        scripts = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        candidate = Path(scripts) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise CodegenError(
            f"typed stubs need mypy-protobuf's {name}, which is not installed", hint=INSTALL_HINT
        )
    return found


def _require_grpc_tools() -> None:
    try:
        found = importlib.util.find_spec("grpc_tools.protoc") is not None
    except ImportError:
        found = False
    if not found:
        raise CodegenError(
            "generating stubs needs grpcio-tools, which is not installed", hint=INSTALL_HINT
        )


def _well_known_dir() -> Path:
    spec = importlib.util.find_spec("grpc_tools")
    assert spec is not None and spec.origin is not None  # checked by _require_grpc_tools
    return Path(spec.origin).parent / "_proto"


def _relative_to_any(path: Path, roots: Sequence[Path]) -> Path:
    for root in roots:
        if path.is_relative_to(root):
            return path.relative_to(root)
    raise CodegenError(
        f"{path} is not inside any include directory ({', '.join(map(str, roots))})",
        hint="add -I with the directory its imports and package path start from",
    )


def _run_protoc(args: list[str]) -> None:
    # A subprocess, so protoc's own messages can be put into the error.
    command = [sys.executable, "-m", "grpc_tools.protoc", *args]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=PROTOC_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise CodegenError(f"protoc did not finish within {PROTOC_TIMEOUT:g} s") from None
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip()
        if "No module named" in message and "grpc_tools" in message:
            raise CodegenError("grpcio-tools cannot be imported", hint=INSTALL_HINT)
        raise CodegenError(
            f"protoc failed:\n{message}", hint="fix the .proto file, or the -I directories"
        )
