"""Import time: ``import pyvider_rpcplugin_sync`` (and what a host really imports) vs
``import grpc``, each in a fresh interpreter.

Every repetition runs each statement once in a new ``python -c`` (order rotating)
and takes the child's CPU time (user + system, from ``wait4``): on a shared,
loaded machine wall time mostly measures the neighbours. The score is the
per-repetition difference to ``import grpc``, in ms; wall-clock medians are kept
in the JSON. ``python -c pass`` is listed for the interpreter's own share.

    python -m benchmarks.bench_import [--quick]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

from ._common import IMPORT_BUDGET, Row, Settings, Stat, compare, interleave
from ._targets import ROOT, PyviderWorker, clean_environ

BASELINE = "import grpc"
STATEMENTS = {
    "pass": "pass",
    "grpc": BASELINE,
    "package": "import pyvider_rpcplugin_sync",
    "host": "from pyvider_rpcplugin_sync import PluginProcess",
    "plugin": "from pyvider_rpcplugin_sync import serve",
    "pyvider": "import pyvider.rpcplugin",
}


def timed_import(statement: str, wall: list[float]) -> Callable[[], float]:
    """A run of ``python -c statement``: its CPU ms (returned) and wall ms (into ``wall``)."""
    env = clean_environ()
    argv = [sys.executable, "-c", statement]

    def run() -> float:
        begin = time.perf_counter()
        child = subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(child.pid, 0)
        wall.append((time.perf_counter() - begin) * 1000)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            raise RuntimeError(f"{statement!r} exited {child.returncode}")
        return (usage.ru_utime + usage.ru_stime) * 1000

    return run


def pyvider_installed() -> bool:
    from importlib.util import find_spec

    try:
        return find_spec("pyvider.rpcplugin") is not None
    except ModuleNotFoundError:
        return False


def run(settings: Settings, pyvider: PyviderWorker | None) -> list[Row]:
    names = [n for n in STATEMENTS if n != "pyvider" or (settings.pyvider and pyvider_installed())]
    wall: dict[str, list[float]] = {name: [] for name in names}
    samples = interleave(
        {name: timed_import(STATEMENTS[name], wall[name]) for name in names},
        settings.import_reps,
        warmup=1,
    )
    grpc = samples["grpc"]
    with_pyvider = "pyvider" in samples
    package = compare(
        "import.package",
        "import pyvider_rpcplugin_sync",
        "ms",
        samples["package"],
        grpc,
        budget=IMPORT_BUDGET,
        kind="delta",
        pyvider=samples["pyvider"] if with_pyvider else None,
        note="CPU ms of a fresh `python -c` over `import grpc` (the package imports grpc "
        "lazily); pyvider column: `import pyvider.rpcplugin`",
    )
    host = compare(
        "import.host",
        "from ... import PluginProcess",
        "ms",
        samples["host"],
        grpc,
        budget=IMPORT_BUDGET,
        kind="delta",
        note="what a host pays to import the API (protobuf, grpc_health come with the "
        "first start, as a raw grpcio host's do with its stubs)",
    )
    plugin = compare(
        "import.plugin",
        "from ... import serve",
        "ms",
        samples["plugin"],
        grpc,
        budget=IMPORT_BUDGET,
        kind="delta",
        note="what a plugin pays to import the API (grpc's server, protobuf and the "
        "services come with the first serve())",
    )
    interpreter = Row(
        "import.pass", "python -c pass (interpreter)", "ms", ours=Stat.of(samples["pass"])
    )
    rows = [package, host, plugin, interpreter]
    for row, name in zip(rows, ("package", "host", "plugin", "pass"), strict=True):
        row.extra["wall_ms_median"] = {
            "ours": round(statistics.median(wall[name]), 1),
            "import grpc": round(statistics.median(wall["grpc"]), 1),
        }
    return rows


if __name__ == "__main__":
    from .__main__ import main

    sys.exit(main(["--only", "import", *sys.argv[1:]]))
