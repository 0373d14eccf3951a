"""Go programs built as Go modules, at pinned versions, from the Go module proxy.

Two kinds:

- **our modules** in ``tests/interop`` (``go18``: go-plugin hosts and plugins; its
  ``go.mod`` pins go-plugin v1.8.0 and ``go16.mod`` builds the same sources against
  v1.6.0; ``tfprovider6``: a protocol 6 Terraform provider on
  terraform-plugin-framework). ``go.mod`` and ``go.sum`` are committed.
- **tools**: other projects' release modules, built from the module proxy's copy
  (``go mod download``, then ``go build`` inside it, with its own ``go.mod`` and
  ``go.sum``): OpenTofu and HashiCorp's random and local providers (see ``TOOLS``).

Build outputs live outside the repository, so a fresh clone on the same machine
finds them: Go's own caches (``GOMODCACHE``, ``GOCACHE``, defaults of ``go env``)
and, for tool binaries, ``$PYVIDER_INTEROP_CACHE`` (default
``~/.cache/pyvider-rpcplugin-sync/interop``), one directory per tool and build key
(the pinned version, build flags and, for our modules, a hash of their sources).

Command line (stdlib only; ``make interop-deps`` runs ``prepare``)::

    python tests/interop/gomodules.py prepare        # download and build everything
    python tests/interop/gomodules.py go18 DEST [go16]  # our go-plugin programs into DEST
    python tests/interop/gomodules.py tool NAME      # print the path of a built tool
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
GO18_DIR = HERE / "go18"
GO18_PROGRAMS = ("kvhost18", "kvplugin18", "counterhost18", "counterplugin18", "yamuxecho18")
# The same sources against another go-plugin: modfile name -> go-plugin version.
GO_PLUGIN_MODFILES = {"go18": ("go.mod", "v1.8.0"), "go16": ("go16.mod", "v1.6.0")}
BUILD_TIMEOUT = 1800.0
CACHE_ENV = "PYVIDER_INTEROP_CACHE"
INSTALL_HINT = "run `make interop-deps` (or `python tests/interop/gomodules.py prepare`)"


class GoModuleError(RuntimeError):
    """Go is missing, a download or a build failed, or a tool was never built."""


@dataclass(frozen=True)
class Tool:
    """A binary built from a pinned module version (``module``) or from one of our
    modules (``directory``)."""

    name: str
    package: str
    module: str = ""
    version: str = ""
    directory: Path | None = None
    ldflags: str = "-s -w"
    licence: str = ""

    def key(self) -> str:
        spec = json.dumps([self.module, self.version, self.package, self.ldflags])
        digest = hashlib.sha256(spec.encode())
        if self.directory is not None:
            for path in sorted(self.directory.rglob("*")):
                if path.is_file() and path.suffix in (".go", ".mod", ".sum"):
                    digest.update(str(path.relative_to(self.directory)).encode())
                    digest.update(path.read_bytes())
        return digest.hexdigest()[:16]

    def path(self) -> Path:
        return cache_root() / f"{self.name}-{self.version or 'src'}-{self.key()}" / self.name


TOOLS = {
    tool.name: tool
    for tool in (
        Tool(
            "tofu",
            "./cmd/tofu",
            module="github.com/opentofu/opentofu",
            version="v1.12.6",
            # As OpenTofu's release build: a release version string, not "-dev".
            ldflags="-s -w -X github.com/opentofu/opentofu/version.dev=no",
            licence="MPL-2.0",
        ),
        Tool(
            # Its module path is github.com/terraform-providers/terraform-provider-random;
            # its v3 tags are not module versions, so the pin is the pseudo-version of a
            # commit (2026-08-24, the proxy's newest; terraform-plugin-framework 1.19.0,
            # protocol 5, go-plugin 1.7.0).
            "terraform-provider-random",
            ".",
            module="github.com/hashicorp/terraform-provider-random",
            version="v1.3.2-0.20260824155315-e1092b0cfc07",
            licence="MPL-2.0",
        ),
        Tool(
            # As random: module path github.com/terraform-providers/terraform-provider-local,
            # the proxy's commit of 2026-08-06 (terraform-plugin-framework 1.19.0, protocol 5).
            "terraform-provider-local",
            ".",
            module="github.com/hashicorp/terraform-provider-local",
            version="v1.4.1-0.20260806152022-9068a4b7aa37",
            licence="MPL-2.0",
        ),
        Tool("terraform-provider-echo6", ".", directory=HERE / "tfprovider6"),
    )
}


def cache_root() -> Path:
    configured = os.environ.get(CACHE_ENV)
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "pyvider-rpcplugin-sync" / "interop"


MIN_GO = (1, 26)  # OpenTofu v1.12.6's go.mod asks for 1.26.6; GOTOOLCHAIN stays local


def go_available() -> str | None:
    """Why module builds cannot run here, or None."""
    go = shutil.which("go")
    if go is None:
        return f"`go` not found on PATH; {INSTALL_HINT}"
    try:
        found = subprocess.run(
            [go, "env", "GOVERSION"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        return f"`{go} env GOVERSION` failed: {exc}"
    numbers = tuple(int(part) for part in found.removeprefix("go").split(".")[:2] if part.isdigit())
    if numbers < MIN_GO:
        wanted = ".".join(map(str, MIN_GO))
        return f"{go} is {found}; the Go modules need Go {wanted} or newer first on PATH"
    return None


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("GO111MODULE", "GOPATH_MODE", "GOFLAGS"):
        env.pop(name, None)
    # Module mode with the committed go.sum files; never a toolchain download.
    env.update(GO111MODULE="on", GOFLAGS="-mod=readonly -buildvcs=false", GOTOOLCHAIN="local")
    return env


def _go(args: list[str], cwd: Path, timeout: float = BUILD_TIMEOUT) -> str:
    reason = go_available()
    go = shutil.which("go")
    if reason is not None or go is None:
        raise GoModuleError(reason or f"`go` not found on PATH; {INSTALL_HINT}")
    try:
        proc = subprocess.run(
            [go, *args],
            cwd=cwd,
            env=go_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise GoModuleError(f"`go {' '.join(args)}` timed out after {timeout:.0f} s") from exc
    if proc.returncode != 0:
        output = (proc.stderr + proc.stdout).strip()
        raise GoModuleError(f"`go {' '.join(args)}` in {cwd} failed:\n{output}")
    return proc.stdout


def build_go18(dest: Path, flavour: str = "go18") -> dict[str, Path]:
    """Build ``GO18_PROGRAMS`` into ``dest`` against the go-plugin of ``flavour``."""
    modfile, _version = GO_PLUGIN_MODFILES[flavour]
    dest = Path(dest).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    targets = [f"./cmd/{name}" for name in GO18_PROGRAMS]
    _go(["build", f"-modfile={modfile}", "-ldflags=-s -w", "-o", f"{dest}{os.sep}", *targets],
        GO18_DIR)  # fmt: skip
    binaries = {name: dest / name for name in GO18_PROGRAMS}
    for name, path in binaries.items():
        if not os.access(path, os.X_OK):
            raise GoModuleError(f"go build reported success but {name} is missing at {path}")
    return binaries


def tool_path(name: str) -> Path:
    """The built tool, or GoModuleError saying how to build it."""
    path = TOOLS[name].path()
    if not os.access(path, os.X_OK):
        raise GoModuleError(f"{name} is not built ({path} is missing); {INSTALL_HINT}")
    return path


def build_tool(name: str) -> Path:
    """Build ``name`` unless its binary for the current key exists; return its path."""
    tool = TOOLS[name]
    target = tool.path()
    if os.access(target, os.X_OK):
        return target
    if tool.directory is not None:
        source = tool.directory
    else:
        out = _go(["mod", "download", "-json", f"{tool.module}@{tool.version}"], HERE)
        source = Path(json.loads(out)["Dir"])
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / tool.name
        _go(["build", f"-ldflags={tool.ldflags}", "-o", str(built), tool.package], source)
        built.replace(target)  # atomic: a concurrent reader sees all or nothing
    return target


def prepare() -> None:
    """Download every module and build every program once; print what took how long."""
    for flavour, (modfile, version) in GO_PLUGIN_MODFILES.items():
        started = time.monotonic()
        _go(["mod", "download", f"-modfile={modfile}"], GO18_DIR)
        with tempfile.TemporaryDirectory() as tmp:  # warms GOCACHE for the tests' builds
            build_go18(Path(tmp), flavour)
        print(f"gomodules: {flavour} (go-plugin {version}): {time.monotonic() - started:.1f} s")
    for name, tool in TOOLS.items():
        started = time.monotonic()
        cached = os.access(tool.path(), os.X_OK)
        path = build_tool(name)
        state = "cached" if cached else "built"
        print(f"gomodules: {name}: {state} in {time.monotonic() - started:.1f} s: {path}")


def main(argv: list[str]) -> int:
    usage = "usage: gomodules.py prepare | go18 DEST [go16] | tool NAME"
    try:
        if argv == ["prepare"]:
            prepare()
            return 0
        if len(argv) in (2, 3) and argv[0] == "go18":
            flavour = argv[2] if len(argv) == 3 else "go18"
            for name, path in build_go18(Path(argv[1]), flavour).items():
                print(f"{name}: {path}")
            return 0
        if len(argv) == 2 and argv[0] == "tool" and argv[1] in TOOLS:
            print(tool_path(argv[1]))
            return 0
    except GoModuleError as exc:
        print(f"gomodules: {exc}", file=sys.stderr)
        return 1
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
