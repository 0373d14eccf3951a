"""Regenerate the committed Python code in pyvider_rpcplugin_sync/_protos/.

The .proto sources are copied beside the code made from them, so that the
wheel ships them (hosts and plugins in other languages need the same files).

Usage: python protos/generate.py [OUTPUT_ROOT]

OUTPUT_ROOT defaults to the repository root; the stale-code test points it at
a temp dir and compares. grpcio-tools and mypy-protobuf (the ``.pyi`` files) are
pinned in pyproject's codegen extra so that the output is reproducible.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from grpc_tools import protoc  # pyright: ignore[reportMissingTypeStubs]

from pyvider_rpcplugin_sync._codegen import typed_stub_args

PROTO_DIR = Path(__file__).resolve().parent
PACKAGE_DIR = "pyvider_rpcplugin_sync/_protos"
# goplugin.proto has no services on purpose (see its header), so no stubs.
WITH_SERVICES = ("counter.proto", "echo.proto", "kv.proto", "tfplugin5.proto", "tfplugin6.proto")
MESSAGES_ONLY = ("goplugin.proto",)


def generate(output_root: Path) -> None:
    (output_root / PACKAGE_DIR).mkdir(parents=True, exist_ok=True)
    include = f"-I{PACKAGE_DIR}={PROTO_DIR}"
    well_known = f"-I{Path(protoc.__file__).parent / '_proto'}"
    batches = [
        (WITH_SERVICES, [f"--grpc_python_out={output_root}", *typed_stub_args(output_root)]),
        (MESSAGES_ONLY, typed_stub_args(output_root, services=False)),
    ]
    for names, extra in batches:
        args = [
            "protoc",
            include,
            well_known,
            f"--python_out={output_root}",
            *extra,
            *(str(PROTO_DIR / name) for name in names),
        ]
        if protoc.main(args) != 0:  # pyright: ignore[reportUnknownMemberType]
            raise SystemExit(f"protoc failed for {', '.join(names)}")
        for name in names:
            shutil.copyfile(PROTO_DIR / name, output_root / PACKAGE_DIR / name)


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_DIR.parent)
