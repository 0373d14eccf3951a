"""Handshake-level faults, printed raw (no library import, so it starts fast).

Usage: ``faults.py MODE [ARG...]``

- ``line TEXT``: print TEXT as the first stdout line, then wait to be killed
- ``line-env``: the same, TEXT from the environment variable SCENARIO_LINE
- ``partial TEXT``: print TEXT without a newline, then wait
- ``exit CODE MESSAGE``: write MESSAGE to stderr and exit with CODE
- ``close-stdout``: close stdout without printing, then wait
- ``hang``: print nothing and wait
- ``listen-tmp``: listen on a unix socket named as go-plugin < 1.5 names its own
  (``plugin<digits>`` in the temp dir), print its handshake line, and answer nothing
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading


def wait_forever() -> None:
    threading.Event().wait()


def main(argv: list[str]) -> int:
    mode = argv[1]
    if mode in ("line", "line-env", "partial"):
        text = os.environ["SCENARIO_LINE"] if mode == "line-env" else argv[2]
        end = "" if mode == "partial" else "\n"
        os.write(1, (text + end).encode("utf-8", "surrogateescape"))
        wait_forever()
    elif mode == "exit":
        sys.stderr.write(argv[3] + "\n")
        sys.stderr.flush()
        return int(argv[2])
    elif mode == "close-stdout":
        os.close(1)
        wait_forever()
    elif mode == "hang":
        wait_forever()
    elif mode == "listen-tmp":
        path = os.path.join(tempfile.gettempdir(), f"plugin{os.getpid()}")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(path)
        listener.listen()  # never accepted: the kernel queues connections, nobody answers
        os.write(1, f"1|1|unix|{path}|grpc|\n".encode())
        wait_forever()
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
