"""The tools ``make interop-deps`` builds (gomodules.TOOLS), for tests in any directory.

``require_tool(name)`` returns the built binary; when it is missing the test skips
with the reason, or fails when ``PYVIDER_REQUIRE_INTEROP=1`` (``make interop``, CI).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from gomodules import GoModuleError, tool_path

REQUIRE_ENV = "PYVIDER_REQUIRE_INTEROP"


def require_tool(name: str) -> Path:
    try:
        return tool_path(name)
    except GoModuleError as exc:
        if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
            pytest.fail(f"{REQUIRE_ENV}=1 but {exc}")
        pytest.skip(str(exc))
