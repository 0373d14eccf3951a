"""Fixtures for interop tests against real Go go-plugin programs.

``go_bins`` builds ``tests/interop/go`` (kvhost, kvplugin, counterhost, counterplugin)
against Debian's go-plugin 1.0.1 once per session; ``go_module_programs`` builds the Go
module ``tests/interop/go18`` against go-plugin v1.8.0 or v1.6.0 (tools such as
OpenTofu: ``interop_tools.require_tool``). Without Go the tests skip with the reason;
with ``PYVIDER_REQUIRE_INTEROP=1`` (``make interop``, CI) they fail instead. A build
error always fails.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, _HERE)

from fakehost import no_process_left_behind  # noqa: E402
from gobuild import GoBuildError, build_go_binaries, go_available  # noqa: E402

REQUIRE_ENV = "PYVIDER_REQUIRE_INTEROP"


def interop_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "") not in ("", "0")


@pytest.fixture(scope="session")
def go_bins(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``{name: Path}`` of gobuild.PROGRAMS, built once per test session."""
    reason = go_available()
    if reason is not None:
        if interop_required():
            pytest.fail(f"{REQUIRE_ENV}=1 but Go interop is unavailable: {reason}")
        pytest.skip(reason)
    try:
        return build_go_binaries(tmp_path_factory.mktemp("gobin"))
    except GoBuildError as exc:
        pytest.fail(f"building the Go interop programs failed: {exc}")


@pytest.fixture
def marker() -> Iterator[str]:
    """A marker for the environment of every process the test starts; any still running
    at the end fails the test (and is killed)."""
    with no_process_left_behind() as value:
        yield value


@pytest.fixture
def tmpdir_short() -> Iterator[Path]:
    """$TMPDIR of the Go programs: go-plugin 1.0.1 puts its sockets there (107 bytes max)."""
    directory = Path(tempfile.mkdtemp(prefix="go-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def go_module_programs(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[[str], dict[str, Path]]:
    """``programs(flavour)``: ``{name: Path}`` of gomodules.GO18_PROGRAMS built against the
    go-plugin of ``flavour`` ("go18": v1.8.0, "go16": v1.6.0), once per session."""
    from gomodules import GoModuleError, build_go18
    from gomodules import go_available as modules_available

    reason = modules_available()
    if reason is not None:
        if interop_required():
            pytest.fail(f"{REQUIRE_ENV}=1 but Go module builds are unavailable: {reason}")
        pytest.skip(reason)
    built: dict[str, dict[str, Path]] = {}

    def programs(flavour: str) -> dict[str, Path]:
        if flavour not in built:
            try:
                built[flavour] = build_go18(tmp_path_factory.mktemp(flavour), flavour)
            except GoModuleError as exc:
                pytest.fail(f"building the {flavour} interop programs failed: {exc}")
        return built[flavour]

    return programs
