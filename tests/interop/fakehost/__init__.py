"""A protocol-level fake of the newest go-plugin host (v1.8), for the interop matrix.

What 1.5+ hosts do differently (``PLUGIN_UNIX_SOCKET_DIR``, ``StreamStdio`` with
backpressure, the 7-field line with ``PLUGIN_MULTIPLEX_GRPC``, the 2 s kill) is
modelled here from ``hashicorp/go-plugin`` v1.8, for what the real go-plugin 1.8.0 and
1.6.0 hosts of ``tests/interop/go18`` cannot be made to do (a P-256 host certificate,
a foreign client certificate, a host that stops reading ``StreamStdio``, a broker id
never served). See ``host.FakeNewestHost``.
"""

from .broker import accept_and_serve, encode_conn_info
from .handshake import MUX_NOT_SUPPORTED, HostError, ParsedLine, parse_line, raw_std_decode
from .host import KILL_GRACE, FakeNewestHost, KillReport
from .leaks import MARKER_VAR, child_processes, marked_pids, no_process_left_behind
from .sinks import Collector, Discard, HandOff
from .wire import STDIO_STDERR, STDIO_STDOUT

__all__ = [
    "KILL_GRACE",
    "MARKER_VAR",
    "MUX_NOT_SUPPORTED",
    "STDIO_STDERR",
    "STDIO_STDOUT",
    "Collector",
    "Discard",
    "FakeNewestHost",
    "HandOff",
    "HostError",
    "KillReport",
    "ParsedLine",
    "accept_and_serve",
    "child_processes",
    "encode_conn_info",
    "marked_pids",
    "no_process_left_behind",
    "parse_line",
    "raw_std_decode",
]
