"""Fixtures for tests that run real Terraform-protocol hosts against the pyecho example.

Every test runs twice: under ``terraform`` (the machine's, found on PATH; without it
those runs skip with the reason) and under OpenTofu's ``tofu`` (built at a pinned
release by ``make interop-deps``, see tests/interop/gomodules.py; without it those runs
skip, and fail with ``PYVIDER_REQUIRE_INTEROP=1``, as in ``make interop`` and CI).
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
_INTEROP = str(Path(__file__).resolve().parent.parent / "interop")
for _path in (_INTEROP, _HERE):  # tf_helpers first; also under --import-mode=importlib
    if _path not in sys.path:
        sys.path.insert(0, _path)

from interop_tools import require_tool  # noqa: E402
from proc_scan import no_child_left_behind  # noqa: E402, F401  (an autouse fixture)
from tf_helpers import Terraform  # noqa: E402


@pytest.fixture(scope="session", params=["terraform", "tofu"])
def terraform_binary(request: pytest.FixtureRequest) -> str:
    """The host binary: Terraform from PATH, or the OpenTofu that interop-deps built."""
    if request.param == "tofu":
        return str(require_tool("tofu"))
    found = shutil.which("terraform")
    if found is None:
        pytest.skip("terraform is not on PATH (its tests run where it is)")
    return found


@pytest.fixture
def terraform(terraform_binary: str, tmp_path: Path) -> Iterator[Terraform]:
    """A Terraform working directory wired to the pyecho launcher; checks for leftovers."""
    with Terraform.create(terraform_binary, tmp_path) as tf:
        yield tf
