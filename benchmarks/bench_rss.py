"""Resident memory (VmRSS) of the host and the plugin process, ours vs raw grpcio.

Each repetition runs ``_rss_probe.py`` in a fresh interpreter for each variant
(order rotating): it starts the plugin (ours: the echo example through
``PluginProcess``; raw: ``_raw_server.py`` with a hand-written channel; pyvider:
its plugin and client), makes 200 64-byte calls and reads /proc/<pid>/status.
Unix socket, plaintext. MiB, lower is better; no budget.

    python -m benchmarks.bench_rss
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from ._common import Row, Settings, compare, interleave
from ._targets import HERE, ROOT, PyviderWorker, clean_environ

PROBE = HERE / "_rss_probe.py"
FIELDS = {
    "plugin_kib": ("rss.plugin", "RSS plugin process"),
    "host_kib": ("rss.host", "RSS host process"),
    "growth": ("rss.host_growth", "RSS host growth: start + 200 calls"),
}


def probe(which: str, store: list[dict[str, Any]]) -> Callable[[], float]:
    def run() -> float:
        out = subprocess.run(
            [sys.executable, str(PROBE), which],
            env=clean_environ(),
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["growth"] = result["host_kib"] - result["host_base_kib"]
        store.append(result)
        return 0.0

    return run


def run(settings: Settings, pyvider: PyviderWorker | None) -> list[Row]:
    store: dict[str, list[dict[str, Any]]] = {"ours": [], "raw": []}
    if pyvider is not None:
        store["pyvider"] = []
    interleave({name: probe(name, s) for name, s in store.items()}, settings.rss_reps, warmup=0)
    rows: list[Row] = []
    for field, (key, title) in FIELDS.items():

        def mib(name: str, field: str = field) -> list[float]:
            return [r[field] / 1024 for r in store.get(name, []) if r.get(field) is not None]

        rows.append(
            compare(
                key,
                title,
                "MiB",
                mib("ours"),
                mib("raw"),
                pyvider=mib("pyvider") or None,
                note="plaintext unix; fresh host per sample" if field == "plugin_kib" else "",
            )
        )
    return rows


if __name__ == "__main__":
    from .__main__ import main

    sys.exit(main(["--only", "rss", *sys.argv[1:]]))
