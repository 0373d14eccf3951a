"""SIGKILL a host and check that its plugins, their groups and socket dirs go with it."""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOOMED_HOST = Path(__file__).with_name("doomed_host.py")
# The goal: everything gone within 2 s of the host's death.
DEADLINE = 2.0
_POLL = 0.01


def running_in_group(group: int) -> list[int]:
    """Processes of ``group`` that still run (zombies do not: orphans may stay unreaped)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[2]) == group and fields[0] != b"Z":
            found.append(int(entry))
    return found


def kill_host_and_measure(
    plugins: list[list[str]], *, tls: bool, close_one_first: bool = False
) -> dict[str, object]:
    """Start DOOMED_HOST with ``plugins``, SIGKILL it; return what survived and when.
    ``close_one_first``: the host first opens and closes one plugin (its supervisor
    exits with it), so the plugins killed are watched by a second supervisor.

    Plugin exits are waited for with pidfds; the socket directories and the groups'
    other members have nothing to wait on, so they are polled up to the deadline.
    """
    base = tempfile.mkdtemp(prefix="hd-")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KV_", "PLUGIN_", "BASIC_"))}
    env["TMPDIR"] = base
    mode = ("tls" if tls else "plain") + ("+close-one-first" if close_one_first else "")
    argv = [sys.executable, str(DOOMED_HOST), mode]
    argv += [json.dumps(plugin) for plugin in plugins]
    host = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env, text=True)
    try:
        report = json.loads(host.stdout.readline() or "{}")  # type: ignore[union-attr]
        assert report, f"the host failed to start its plugins (exit {host.poll()})"
        pidfds = [os.pidfd_open(pid) for pid in report["pids"]]
        killed = time.monotonic()
        host.send_signal(signal.SIGKILL)
        host.wait()
        deadline = killed + DEADLINE
        for fd in pidfds:
            select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        plugins_gone = time.monotonic() - killed
        survivors = [pid for pid, fd in zip(report["pids"], pidfds, strict=True) if not _ready(fd)]
        while time.monotonic() < deadline and (_left(report) or _running(report)):
            time.sleep(_POLL)  # a removed directory has no event to wait on
        return {
            "plugins_gone_after": plugins_gone,
            "survivors": survivors,
            "running_in_groups": _running(report),
            "dirs_left": _left(report),
            "other_dirs": sorted(os.listdir(base)),
        }
    finally:
        if host.poll() is None:
            host.kill()
            host.wait()
        for pid in _running_pids(base, host):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


def _ready(fd: int) -> bool:
    try:
        return bool(select.select([fd], [], [], 0)[0])
    finally:
        os.close(fd)


def _running(report: dict[str, list[int]]) -> list[int]:
    return [pid for group in report["groups"] for pid in running_in_group(group)]


def _left(report: dict[str, list[str]]) -> list[str]:
    return [d for d in report["dirs"] if d and os.path.lexists(d)]


def _running_pids(base: str, host: subprocess.Popen[str]) -> list[int]:
    """Plugins of this run still running (a failed test must not leak them)."""
    needle = f"TMPDIR={base}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != host.pid:
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
                state = Path(f"/proc/{entry}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
            except OSError:
                continue
            if needle in environ.split(b"\0") and state != b"Z":
                found.append(int(entry))
    return found
