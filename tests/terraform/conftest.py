"""Fixtures for tests that run the real ``terraform`` binary against the pyecho example.

Without ``terraform`` on PATH the tests skip with the reason; with
``PYVIDER_REQUIRE_INTEROP=1`` (``make interop``, CI) they fail instead.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, _HERE)

from proc_scan import no_child_left_behind  # noqa: E402, F401  (an autouse fixture)
from tf_helpers import Terraform  # noqa: E402

REQUIRE_ENV = "PYVIDER_REQUIRE_INTEROP"


@pytest.fixture(scope="session")
def terraform_binary() -> str:
    found = shutil.which("terraform")
    if found is None:
        reason = "terraform is not on PATH"
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
        pytest.skip(reason)
    return found


@pytest.fixture
def terraform(terraform_binary: str, tmp_path: Path) -> Iterator[Terraform]:
    """A Terraform working directory wired to the pyecho launcher; checks for leftovers."""
    with Terraform.create(terraform_binary, tmp_path) as tf:
        yield tf
