"""Build the Go interop programs (``tests/interop/go``) against Debian's go-plugin 1.0.1.

GOPATH mode, offline (docs/install.md): Debian packages the Go sources under
``/usr/share/gocode``; a temporary GOPATH holds a symlink
``src/gointerop.example/kv -> tests/interop/go`` and ``go build`` runs from inside
that symlink with relative patterns (an import-path pattern would ignore the symlink).

Packages: ``bash tests/interop/install_go_deps.sh`` (``make interop-deps``).

Command line (stdlib only)::

    python tests/interop/gobuild.py build DEST     # build the PROGRAMS into DEST
    python tests/interop/gobuild.py protoc         # regenerate the committed *.pb.go

``protoc`` needs ``install_go_deps.sh --with-protoc`` (protobuf-compiler 3.21.12 and
protoc-gen-go-1-3 1.3.5) and runs, inside ``tests/interop/go``, for kvpb and counterpb::

    protoc -I kvpb --go_out=plugins=grpc:kvpb kvpb/kv.proto

The generated ``*.pb.go`` are committed, so building needs neither tool.

``GOCACHE`` is ``<repo>/.gocache`` (about 28 MB, must be git-ignored): a warm build
takes well under a second, a cold one about 6-30 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
GO_SRC = HERE / "go"
REPO_ROOT = HERE.parent.parent
GOCACHE = REPO_ROOT / ".gocache"
IMPORT_PATH = "gointerop.example/kv"
DEBIAN_GOPATH = Path("/usr/share/gocode")
PROGRAMS = ("kvhost", "kvplugin", "counterhost", "counterplugin")
BUILD_TIMEOUT = 900.0

# Debian source packages the build needs, by the directory they install.
_REQUIRED_SOURCES = {
    "golang-github-hashicorp-go-plugin-dev": "github.com/hashicorp/go-plugin",
    "golang-google-grpc-dev": "google.golang.org/grpc",
    "golang-github-golang-protobuf-1-3-dev": "github.com/golang/protobuf/proto",
}

_INSTALL_HINT = "run `bash tests/interop/install_go_deps.sh` (or `make interop-deps`)"


class GoBuildError(RuntimeError):
    """Go is missing or the build failed."""


def find_go() -> str | None:
    """Return the path of the ``go`` command, or None."""
    return shutil.which("go")


def go_available() -> str | None:
    """Return why the Go interop programs cannot be built here, or None if they can."""
    if find_go() is None:
        return f"`go` not found on PATH; {_INSTALL_HINT}"
    missing = [
        package
        for package, source in _REQUIRED_SOURCES.items()
        if not (DEBIAN_GOPATH / "src" / source).is_dir()
    ]
    if missing:
        return f"Debian Go sources missing ({', '.join(missing)}); {_INSTALL_HINT}"
    return None


def go_env(gopath: Path) -> dict[str, str]:
    """Environment for ``go`` in GOPATH mode with Debian's packaged sources."""
    env = dict(os.environ)
    # Settings that would rebuild the precompiled std (slow) or need a C compiler.
    for name in ("CGO_ENABLED", "CC", "CXX", "GOROOT"):
        env.pop(name, None)
    env.update(
        GO111MODULE="off",
        GOPATH=f"{gopath}{os.pathsep}{DEBIAN_GOPATH}",
        GOCACHE=str(GOCACHE),
        GOFLAGS="",
        GOENV="off",  # ignore the user's `go env -w` settings
        GOTOOLCHAIN="local",  # Go >= 1.21 must not try to download a toolchain
    )
    return env


def _run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> None:
    # Go resolves its working directory from $PWD when it names the same directory,
    # which is how the symlinked path (inside GOPATH) is seen instead of the real one.
    env = {**env, "PWD": str(cwd)}
    try:
        proc = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GoBuildError(f"`{' '.join(argv)}` timed out after {timeout:.0f} s") from exc
    except OSError as exc:
        raise GoBuildError(f"cannot run `{argv[0]}`: {exc}") from exc
    if proc.returncode != 0:
        output = (proc.stderr + proc.stdout).strip()
        raise GoBuildError(f"`{' '.join(argv)}` failed (exit {proc.returncode}):\n{output}")


@contextmanager
def _temp_gopath() -> Iterator[tuple[Path, Path]]:
    """Yield ``(gopath, package_dir)``: a temporary GOPATH whose
    ``src/<IMPORT_PATH>`` (``package_dir``) is a symlink to GO_SRC."""
    with tempfile.TemporaryDirectory(prefix="pyvider-gopath-") as tmp:
        gopath = Path(tmp)
        package_dir = gopath / "src" / IMPORT_PATH
        package_dir.parent.mkdir(parents=True)
        package_dir.symlink_to(GO_SRC, target_is_directory=True)
        yield gopath, package_dir


def build_go_binaries(dest: Path, *, timeout: float = BUILD_TIMEOUT) -> dict[str, Path]:
    """Build kvhost and kvplugin into ``dest``; return ``{name: path}``.

    Raises GoBuildError with the reason (Go or sources missing, compiler output).
    """
    reason = go_available()
    if reason is not None:
        raise GoBuildError(reason)
    go = find_go()
    assert go is not None
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    GOCACHE.mkdir(exist_ok=True)
    with _temp_gopath() as (gopath, package_dir):
        env = go_env(gopath)
        # "-o DIR/" with several packages writes one binary per main package.
        # No -trimpath and no CGO_ENABLED=0: both would rebuild the standard library.
        # -s -w only drops the symbol table and DWARF (smaller, links faster).
        targets = [f"./cmd/{name}" for name in PROGRAMS]
        argv = [go, "build", "-ldflags=-s -w", "-o", f"{dest}{os.sep}", *targets]
        _run(argv, package_dir, env, timeout)
    binaries = {name: dest / name for name in PROGRAMS}
    for name, path in binaries.items():
        if not os.access(path, os.X_OK):
            raise GoBuildError(f"go build reported success but {name} is missing at {path}")
    return binaries


def regenerate_pb(*, timeout: float = 120.0) -> list[Path]:
    """Regenerate ``go/kvpb/kv.pb.go`` and ``go/counterpb/counter.pb.go``
    (protoc 3.21.12 + protoc-gen-go 1.3.5)."""
    for tool in ("protoc", "protoc-gen-go"):
        if shutil.which(tool) is None:
            raise GoBuildError(
                f"`{tool}` not found; run `bash tests/interop/install_go_deps.sh --with-protoc`"
            )
    generated = []
    for package, proto in (("kvpb", "kv"), ("counterpb", "counter")):
        argv = [
            "protoc",
            "-I",
            package,
            f"--go_out=plugins=grpc:{package}",
            f"{package}/{proto}.proto",
        ]
        _run(argv, GO_SRC, dict(os.environ), timeout)
        generated.append(GO_SRC / package / f"{proto}.pb.go")
    return generated


def main(argv: list[str]) -> int:
    usage = "usage: gobuild.py build DEST | gobuild.py protoc"
    try:
        if len(argv) == 2 and argv[0] == "build":
            for name, path in build_go_binaries(Path(argv[1])).items():
                print(f"{name}: {path}")
            return 0
        if argv == ["protoc"]:
            for path in regenerate_pb():
                print(path)
            return 0
    except GoBuildError as exc:
        print(f"gobuild: {exc}", file=sys.stderr)
        return 1
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
