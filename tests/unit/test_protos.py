"""The committed generated code matches what `make protos` produces now."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "protos"))

from generate import PACKAGE_DIR, generate  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def test_generated_code_is_current(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh = {p.name: p.read_text() for p in (tmp_path / PACKAGE_DIR).iterdir() if p.is_file()}
    committed_dir = REPO / PACKAGE_DIR
    committed = {
        p.name: p.read_text()
        for p in committed_dir.iterdir()
        if p.is_file() and p.name != "__init__.py"
    }
    assert fresh.keys() == committed.keys(), "run `make protos` and commit the result"
    stale = sorted(name for name in fresh if fresh[name] != committed[name])
    assert not stale, f"stale generated code {stale}: run `make protos` and commit"


def test_internal_messages_stay_out_of_the_plugin_package() -> None:
    # Only method paths go on the wire; a private proto package avoids
    # "duplicate symbol" clashes with other go-plugin libraries in one process.
    from pyvider_rpcplugin_sync._protos import goplugin_pb2

    assert goplugin_pb2.ConnInfo.DESCRIPTOR.full_name == "pyvider_rpcplugin_sync.goplugin.ConnInfo"
