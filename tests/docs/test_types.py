"""What a user's type checker sees: mypy --strict and pyright strict on code that uses
the library, and on the README's and the tutorial's snippets.

The library is found through the repository root (an editable install is invisible to
static checkers); the generated stubs are read through their .pyi files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from snippets import snippets

pytestmark = pytest.mark.timeout(240)

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
CHECK_TIMEOUT = 200

PROBE = """\
from pyvider_rpcplugin_sync import HostConfig, PluginProcess, SharedPlugin
from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc, kv_pb2_grpc
from pyvider_rpcplugin_sync.testing import serve_in_process

plugin = PluginProcess(["plugin"], stub=echo_pb2_grpc.EchoStub)
reveal_type(plugin.stub)  # EchoStub
reveal_type(plugin.make_stub(kv_pb2_grpc.KVStub))  # KVStub
reveal_type(plugin.stub.Echo(echo_pb2.EchoRequest(payload=b"x")))  # EchoResponse
shared = SharedPlugin(["plugin"], stub=echo_pb2_grpc.EchoStub, tls=False)
reveal_type(shared.stub)  # EchoStub
with PluginProcess(["plugin"], stub=echo_pb2_grpc.EchoStub, transport="tcp") as started:
    reveal_type(started.stub)  # EchoStub
reveal_type(serve_in_process(lambda server: None, stub=kv_pb2_grpc.KVStub).stub)  # KVStub
configured = PluginProcess(["plugin"], HostConfig(tls=False), stub=kv_pb2_grpc.KVStub)
reveal_type(configured.stub)  # KVStub
"""
# Each line is an error in both checkers.
WRONG = [
    "plugin.stub.NoSuchMethod(1, 2, 3)",
    "plugin.stub.Echo(echo_pb2.StreamRequest())",
    'PluginProcess(["plugin"], start_timout=1)',
    'PluginProcess(["plugin"], transport="udp")',
    'PluginProcess(["plugin"], rate_limit_mode="block")',
    'HostConfig(transport="udp")',
    'SharedPlugin(["plugin"], stub=echo_pb2_grpc.EchoStub).stub.Put()',
]
REVEALED = re.compile(r"#\s*(\w+)$")


def mypy(workdir: Path, *files: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", *files],
        cwd=workdir,
        env={**os.environ, "MYPYPATH": str(REPO), "MYPY_CACHE_DIR": str(workdir / ".mypy")},
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def pyright(workdir: Path, *files: str) -> subprocess.CompletedProcess[str]:
    config = {"typeCheckingMode": "strict", "extraPaths": [str(REPO)], "pythonVersion": "3.11"}
    (workdir / "pyrightconfig.json").write_text(json.dumps(config))
    return subprocess.run(
        [str(BIN / "pyright"), "--pythonpath", sys.executable, *files],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=CHECK_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def revealed(output: str, pattern: str) -> dict[int, str]:
    """Line number -> the revealed type's last dotted name."""
    found = {}
    for match in re.finditer(pattern, output):
        found[int(match["line"])] = match["type"].rsplit(".", 1)[-1]
    return found


def expected_reveals() -> dict[int, str]:
    return {
        number: match[1]
        for number, line in enumerate(PROBE.splitlines(), 1)
        if (match := REVEALED.search(line)) and "reveal_type" in line
    }


def test_mypy_names_the_stub_class(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    result = mypy(tmp_path, "probe.py")
    assert " error: " not in result.stdout, result.stdout
    pattern = r'probe\.py:(?P<line>\d+): note: Revealed type is "(?P<type>[\w.]+)"'
    assert revealed(result.stdout, pattern) == expected_reveals(), result.stdout


def test_pyright_names_the_stub_class(tmp_path: Path) -> None:
    (tmp_path / "probe.py").write_text(PROBE)
    result = pyright(tmp_path, "probe.py")
    assert " - error: " not in result.stdout, result.stdout
    pattern = r'probe\.py:(?P<line>\d+):\d+ - information: Type of ".*" is "(?P<type>[\w.]+)"'
    assert revealed(result.stdout, pattern) == expected_reveals(), result.stdout


@pytest.mark.parametrize("checker", ["mypy", "pyright"])
def test_misuse_is_a_type_error(tmp_path: Path, checker: str) -> None:
    setup = [
        "from pyvider_rpcplugin_sync import HostConfig, PluginProcess, SharedPlugin",
        "from pyvider_rpcplugin_sync.examples import echo_pb2, echo_pb2_grpc",
        'plugin = PluginProcess(["plugin"], stub=echo_pb2_grpc.EchoStub)',
    ]
    (tmp_path / "wrong.py").write_text("\n".join([*setup, *WRONG]) + "\n")
    first = len(setup) + 1  # the line number of WRONG[0]
    if checker == "mypy":
        output = mypy(tmp_path, "wrong.py").stdout
        flagged = {int(n) for n in re.findall(r"wrong\.py:(\d+): error:", output)}
    else:
        output = pyright(tmp_path, "wrong.py").stdout
        flagged = {int(n) for n in re.findall(r"wrong\.py:(\d+):\d+ - error:", output)}
    wanted = set(range(first, first + len(WRONG)))
    assert flagged == wanted, output


@pytest.mark.parametrize("document", ["README.md", "docs/tutorial.md"])
def test_snippets_type_check_under_mypy_strict(document: str, tmp_path: Path) -> None:
    """Each Python snippet becomes a module (files under their own names); the stubs the
    document generates with ``protoc`` are generated; then mypy --strict checks them all."""
    modules = []
    for index, snippet in enumerate(snippets(REPO / document)):
        if snippet.file:
            target = tmp_path / snippet.file
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(snippet.code)
            if target.suffix == ".py":
                modules.append(snippet.file)
        elif snippet.lang == "python":
            (tmp_path / f"snippet_{index}.py").write_text(snippet.code)
            modules.append(f"snippet_{index}.py")
        elif snippet.run and "pyvider_rpcplugin_sync protoc" in snippet.code:
            subprocess.run(
                ["bash", "-euo", "pipefail", "-c", snippet.code],
                cwd=tmp_path,
                env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
                check=True,
                timeout=CHECK_TIMEOUT,
                stdin=subprocess.DEVNULL,
            )
    assert modules, f"{document} has no Python snippet"
    # Several snippets are scripts of their own: checked one by one, in one mypy run.
    result = mypy(tmp_path, "--scripts-are-modules", *modules)
    assert result.returncode == 0, result.stdout + result.stderr
