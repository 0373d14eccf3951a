"""Fixtures of the conformance kit's tests: peers to run the kit against, and leak checks.

Go peers are built by ``tests/interop/gobuild.py`` (Debian's go-plugin 1.0.1) and
``tests/interop/gomodules.py`` (go-plugin 1.8.0 from the Go module proxy);
without Go they skip with the reason, and with ``PYVIDER_REQUIRE_INTEROP=1``
(CI) they fail instead, as in ``tests/interop``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
for _path in (str(_HERE), str(_HERE.parent / "interop")):  # also under --import-mode=importlib
    if _path not in sys.path:
        sys.path.insert(0, _path)

from fakehost import MARKER_VAR, no_process_left_behind  # noqa: E402
from gobuild import GoBuildError, build_go_binaries, go_available  # noqa: E402

REQUIRE_ENV = "PYVIDER_REQUIRE_INTEROP"


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def go101_bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Debian's go-plugin 1.0.1 programs (kvhost, kvplugin, counterhost, counterplugin)."""
    reason = go_available()
    if reason is not None:
        _unavailable(f"Go interop is unavailable: {reason}")
    try:
        return build_go_binaries(tmp_path_factory.mktemp("gobin"))
    except GoBuildError as exc:
        pytest.fail(f"building the Go interop programs failed: {exc}")


@pytest.fixture(scope="session")
def go18_bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The go-plugin 1.8.0 programs of ``tests/interop/go18`` (kvhost18, kvplugin18,
    counterhost18, counterplugin18), built from the Go module proxy's cache."""
    from gomodules import GoModuleError, build_go18
    from gomodules import go_available as modules_available

    reason = modules_available()
    if reason is not None:
        _unavailable(f"Go module builds are unavailable: {reason}")
    try:
        return build_go18(tmp_path_factory.mktemp("go18"), "go18")
    except GoModuleError as exc:
        pytest.fail(f"building the go-plugin 1.8.0 programs failed: {exc}")


@pytest.fixture(scope="session")
def terraform_bin() -> str:
    found = shutil.which("terraform")
    if found is None:
        _unavailable("terraform is not on PATH")
    assert found is not None
    return found


@pytest.fixture
def marker(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every process the test starts carries the marker; one still running fails the test."""
    with no_process_left_behind() as value:
        monkeypatch.setenv(MARKER_VAR, value)
        yield value
