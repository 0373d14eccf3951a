"""Protocol constants, environment variable names, default timeouts and sizes.

Every default a user can change (timeouts, graces, sizes, backoffs) lives here,
so that there is one place to read them; buffer sizes and poll intervals that no
option reaches stay beside the code they tune. Values that come from go-plugin
cite the file they come from in ``hashicorp/go-plugin`` (docs/protocol.md says
where each one acts on the wire).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Final

# --- handshake (docs/protocol.md, sections 2-6) -------------------------------

CORE_PROTOCOL_VERSION: Final = 1
PROTOCOL_GRPC: Final = "grpc"
PROTOCOL_NETRPC: Final = "netrpc"
NETWORK_UNIX: Final = "unix"
NETWORK_TCP: Final = "tcp"
# go-plugin ignores field 6 unless it is longer than this (junk from old plugins).
MIN_CERT_FIELD_LENGTH: Final = 50
HANDSHAKE_MIN_FIELDS: Final = 4
HANDSHAKE_MAX_FIELDS: Final = 7

# pyvider-rpcplugin's defaults, so plugins of either library load in the
# other's host without configuration.
DEFAULT_COOKIE_KEY: Final = "PLUGIN_MAGIC_COOKIE"
DEFAULT_COOKIE_VALUE: Final = "test_cookie_value"
DEFAULT_PROTOCOL_VERSIONS: Final = (1,)

# --- environment set by the host for the plugin ------------------------------

ENV_PROTOCOL_VERSIONS: Final = "PLUGIN_PROTOCOL_VERSIONS"
ENV_MIN_PORT: Final = "PLUGIN_MIN_PORT"
ENV_MAX_PORT: Final = "PLUGIN_MAX_PORT"
ENV_CLIENT_CERT: Final = "PLUGIN_CLIENT_CERT"
ENV_MULTIPLEX_GRPC: Final = "PLUGIN_MULTIPLEX_GRPC"
ENV_UNIX_SOCKET_DIR: Final = "PLUGIN_UNIX_SOCKET_DIR"
ENV_UNIX_SOCKET_GROUP: Final = "PLUGIN_UNIX_SOCKET_GROUP"
# Ours (and pyvider-rpcplugin's): lets a host or user pick the plugin's transport.
ENV_TRANSPORT: Final = "PLUGIN_TRANSPORT"
# Ours: the plugin's stderr log level (hclog names or Python names).
ENV_LOG_LEVEL: Final = "PLUGIN_LOG_LEVEL"

# go-plugin's defaults for the TCP port range (client.go, NewClient).
DEFAULT_MIN_PORT: Final = 10000
DEFAULT_MAX_PORT: Final = 25000

# --- sockets ------------------------------------------------------------------

# sun_path is 108 bytes on Linux including the NUL; grpcio binds 107, fails at 108.
# macOS and the BSDs have 104.
MAX_UNIX_SOCKET_PATH: Final = 107 if sys.platform.startswith("linux") else 103
SOCKET_DIR_PREFIX: Final = "pyvider-plugin-"
# A plugin's server never shares its port (grpc's default is SO_REUSEPORT on).
NO_PORT_SHARING: Final = (("grpc.so_reuseport", 0),)
SOCKET_FILE_PREFIX: Final = "plugin"
LOOPBACK_HOST: Final = "127.0.0.1"

# --- gRPC services on the wire (docs/protocol.md, "The internal services") ----

HEALTH_SERVICE_NAME: Final = "plugin"
BROKER_SERVICE: Final = "plugin.GRPCBroker"
CONTROLLER_SERVICE: Final = "plugin.GRPCController"
STDIO_SERVICE: Final = "plugin.GRPCStdio"
HEALTH_SERVICE: Final = "grpc.health.v1.Health"
INTERNAL_SERVICES: Final = frozenset(
    {
        BROKER_SERVICE,
        CONTROLLER_SERVICE,
        STDIO_SERVICE,
        HEALTH_SERVICE,
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)

# --- GRPCBroker (docs/protocol.md, "GRPCBroker") ------------------------------

# go-plugin's Dial wait, and how long unclaimed connection info is kept.
BROKER_DIAL_TIMEOUT: Final = 5.0
BROKER_INFO_LIFETIME: Final = 5.0
# Worker threads of each brokered server (accept_and_serve) unless the caller says.
BROKER_SERVER_WORKERS: Final = 4
# Broker ids are uint32 on the wire.
BROKER_MAX_ID: Final = 2**32 - 1

# --- plugin server sizing and timing ------------------------------------------

# Broker and stdio streams each hold a worker for a connection's lifetime.
RESERVED_STREAM_WORKERS: Final = 2
DEFAULT_MAX_WORKERS: Final = 16
# How long in-flight RPCs get to finish when the plugin stops.
DEFAULT_STOP_GRACE: Final = 0.5
# After the server stopped, how long idle worker threads get to end before a
# plugin process exits past handlers that are still running.
WORKER_EXIT_WAIT: Final = 0.2
# How often the plugin checks that its parent (the host) is still alive.
PARENT_WATCH_INTERVAL: Final = 0.5
# go-plugin reads stdio in 1 KiB chunks; we forward up to this much at once.
STDIO_CHUNK_SIZE: Final = 1024
# Bounded queue of stdio chunks waiting for a StreamStdio reader (oldest dropped).
STDIO_QUEUE_CHUNKS: Final = 1024
STDIO_POLL_INTERVAL: Final = 0.25

# --- host timeouts ------------------------------------------------------------

DEFAULT_START_TIMEOUT: Final = 60.0
DEFAULT_SHUTDOWN_GRACE: Final = 2.0
DEFAULT_CONTROLLER_TIMEOUT: Final = 2.0
DEFAULT_TERMINATE_GRACE: Final = 1.0
DEFAULT_PING_TIMEOUT: Final = 5.0
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
# The deadline of an application's unary (and stream-unary) call unless call_timeout=
# or the call's timeout= says otherwise: longer than any slow real call we know of
# (a Terraform apply step, a large file through the broker), short enough that a hung
# plugin is noticed within minutes. Response streams get none by default.
DEFAULT_CALL_TIMEOUT: Final = 300.0
# How long close() waits for the application's calls in flight before Shutdown.
DEFAULT_DRAIN_TIMEOUT: Final = 5.0
# A call failed right after the plugin died: how long the death watch gets to confirm it.
DEATH_NOTICE: Final = 0.5
# After a failed TLS connect: how long a plain connect may take to show the peer listens.
CONNECT_PROBE_TIMEOUT: Final = 0.5
READER_JOIN_TIMEOUT: Final = 2.0
# The ssl bridge's TLS handshake with a P-521 peer.
BRIDGE_HANDSHAKE_TIMEOUT: Final = 10.0
STDERR_TAIL_LINES: Final = 50
# go-plugin's stderr line buffer (client.go).
STDERR_LINE_LIMIT: Final = 64 * 1024

TLS_SERVER_NAME: Final = "localhost"
# The host reads the handshake line up to this length (go-plugin's bufio limit).
HANDSHAKE_LINE_LIMIT: Final = 64 * 1024
# After the plugin exits (or closes its pipes), how long its output may take to reach EOF.
PIPE_EOF_GRACE: Final = 0.5
# --- SharedPlugin -------------------------------------------------------------

# The first pause between start attempts; it doubles up to the maximum. A plugin that
# ran at least the maximum before it died is restarted at once, on the next call.
DEFAULT_RESTART_BACKOFF: Final = 0.1
DEFAULT_MAX_RESTART_BACKOFF: Final = 5.0
# Each pause is drawn from [half, all] of its exponential value ("equal jitter"), so
# that the hosts of a fleet do not restart their plugins in lockstep.
RESTART_JITTER: Final = 0.5
DEFAULT_HEALTH_TIMEOUT: Final = 1.0
# Threads waiting for another thread's start wait this long beyond its own limits.
START_WAIT_SLACK: Final = 5.0

# The entry-point group under which installed packages register plugin commands.
PLUGIN_ENTRY_POINT_GROUP: Final = "pyvider_rpcplugin_sync.plugins"

# --- testing and tools --------------------------------------------------------

# How long the processes of a closed plugin's group get to disappear (zombies being
# reaped by init) before the fixture counts them as leaked.
LEAK_GRACE: Final = 2.0
PROTOC_TIMEOUT: Final = 120.0

# A reattached plugin is not our child: its pid is probed this often (go-plugin: 1 s).
REATTACH_POLL_INTERVAL: Final = 1.0

# --- message sizes (both sides) -----------------------------------------------

# The largest message either side sends or accepts, unless ``max_message_size=`` says
# otherwise: go-plugin's host value (math.MaxInt32, also gRPC's own ceiling) on both
# sides, so a reply one side may send is never refused by the other (grpcio's own
# receive default is 4 MiB; Terraform schemas and file transfers exceed it).
DEFAULT_MAX_MESSAGE_SIZE: Final = 2**31 - 1
_MESSAGE_SIZE_KEYS: Final = ("grpc.max_send_message_length", "grpc.max_receive_message_length")


def message_size_options(size: int) -> tuple[tuple[str, int], ...]:
    """grpc channel/server options limiting sent and received messages to ``size`` bytes."""
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size <= 2**31 - 1:
        raise ValueError(f"max_message_size must be an int in 1..2**31-1 bytes, not {size!r}")
    return tuple((key, size) for key in _MESSAGE_SIZE_KEYS)


def overrides_message_size(options: Sequence[tuple[str, Any]]) -> bool:
    """True when grpc ``options`` set a message size themselves (they then win)."""
    return any(key in _MESSAGE_SIZE_KEYS for key, _ in options)


UNLIMITED_MESSAGE_OPTIONS: Final = message_size_options(DEFAULT_MAX_MESSAGE_SIZE)

# --- rate limiting (names shared with pyvider-rpcplugin) ----------------------

ENV_RATE_LIMIT_ENABLED: Final = "PLUGIN_RATE_LIMIT_ENABLED"
ENV_RATE_LIMIT_REQUESTS_PER_SECOND: Final = "PLUGIN_RATE_LIMIT_REQUESTS_PER_SECOND"
ENV_RATE_LIMIT_BURST_CAPACITY: Final = "PLUGIN_RATE_LIMIT_BURST_CAPACITY"
DEFAULT_RATE_LIMIT_REQUESTS_PER_SECOND: Final = 100.0
# Denials are logged at most this often (seconds), each line with a count.
DENIAL_LOG_INTERVAL: Final = 1.0
RATE_LIMIT_MODES: Final = ("wait", "fail")

# --- supervision and portability ----------------------------------------------

# "1": use the POSIX fallbacks even where Linux's pidfd, /proc and process_group
# work (how CI proves that the library works without them, e.g. on macOS).
ENV_POSIX_FALLBACKS: Final = "PYVIDER_RPCPLUGIN_POSIX_FALLBACKS"
# After the host died: how long its plugins get after SIGTERM before SIGKILL.
ORPHAN_TERM_GRACE: Final = 0.5
