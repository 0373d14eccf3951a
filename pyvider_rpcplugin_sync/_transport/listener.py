"""Where the plugin listens: a unix socket in a private dir, or TCP on loopback.

docs/protocol.md, "The listener": unix socket paths must fit in 107 bytes on Linux; TCP binds
127.0.0.1 trying ports in order within PLUGIN_MIN_PORT..PLUGIN_MAX_PORT.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import secrets
import shutil
import socket
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import grpc

from .._constants import (
    ENV_TRANSPORT,
    ENV_UNIX_SOCKET_DIR,
    ENV_UNIX_SOCKET_GROUP,
    LOOPBACK_HOST,
    MAX_UNIX_SOCKET_PATH,
    NETWORK_TCP,
    NETWORK_UNIX,
    SOCKET_DIR_PREFIX,
    SOCKET_FILE_PREFIX,
)
from .._errors import TransportError
from .._protocol.handshake import port_range

if TYPE_CHECKING:
    from .tls.bridge import BridgeServer

logger = logging.getLogger(__name__)


@dataclass
class Listener:
    """A bound address, and what to remove once the server has stopped."""

    network: str
    address: str
    owned_dir: str | None = None
    # With the TLS bridge: the bridge on the public address, grpcio's private dir.
    bridge: BridgeServer | None = None
    backend_dir: str | None = None

    def remove(self) -> None:
        if self.bridge is not None:
            self.bridge.close()
            self.bridge = None
        if self.network == NETWORK_UNIX:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.address)
        for directory in (self.owned_dir, self.backend_dir):
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
        self.owned_dir = self.backend_dir = None


def choose_transport(requested: str | None, environ: Mapping[str, str]) -> str:
    transport = (requested or environ.get(ENV_TRANSPORT) or NETWORK_UNIX).strip().lower()
    if transport not in (NETWORK_UNIX, NETWORK_TCP):
        raise TransportError(
            f"unknown transport {transport!r}",
            hint=f"use 'unix' or 'tcp' (argument transport= or {ENV_TRANSPORT})",
        )
    return transport


def socket_path(directory: str) -> str:
    """A fresh socket path in ``directory``, checked against the sun_path limit."""
    path = os.path.join(directory, f"{SOCKET_FILE_PREFIX}{secrets.randbelow(10**9):09d}")
    return checked_socket_path(
        path, f"use a shorter {ENV_UNIX_SOCKET_DIR} or TMPDIR (e.g. /tmp), or the tcp transport"
    )


def checked_socket_path(path: str, hint: str) -> str:
    """``path``, or a ``TransportError`` when it is over the sun_path limit."""
    size = len(os.fsencode(path))
    if size > MAX_UNIX_SOCKET_PATH:
        raise TransportError(
            f"unix socket path is {size} bytes, over the {MAX_UNIX_SOCKET_PATH}-byte limit: {path}",
            hint=hint,
        )
    return path


def bind(
    server: grpc.Server,
    transport: str,
    environ: Mapping[str, str],
    credentials: grpc.ServerCredentials | None = None,
) -> Listener:
    if transport == NETWORK_TCP:
        return _bind_tcp(server, environ, credentials)
    return _bind_unix(server, environ, credentials)


def _add_port(server: grpc.Server, target: str, credentials: grpc.ServerCredentials | None) -> int:
    if credentials is None:
        return int(server.add_insecure_port(target))
    return int(server.add_secure_port(target, credentials))


def _socket_directory(environ: Mapping[str, str]) -> tuple[str, str | None]:
    """(directory for the socket, the directory if we created it and must remove it)."""
    given_dir = environ.get(ENV_UNIX_SOCKET_DIR)
    if given_dir:
        if not os.path.isdir(given_dir) or not os.access(given_dir, os.W_OK | os.X_OK):
            raise TransportError(
                f"socket directory {given_dir} does not exist or is not writable",
                hint=f"{ENV_UNIX_SOCKET_DIR} must name an existing directory this user can write",
            )
        return given_dir, None
    # mkdtemp makes the directory 0700: only this user reaches the socket.
    directory = tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX)
    return directory, directory


def _bind_unix(
    server: grpc.Server, environ: Mapping[str, str], credentials: grpc.ServerCredentials | None
) -> Listener:
    directory, owned_dir = _socket_directory(environ)
    try:
        path = socket_path(directory)
        try:
            _add_port(server, f"unix:{path}", credentials)
        except RuntimeError as exc:
            raise TransportError(
                f"could not bind unix socket {path}: {exc}",
                hint="check the directory's permissions and free space",
            ) from None
        listener = Listener(NETWORK_UNIX, path, owned_dir)
        group = environ.get(ENV_UNIX_SOCKET_GROUP)
        if group:
            share_with_group(path, group)
        return listener
    except BaseException:
        if owned_dir is not None:
            shutil.rmtree(owned_dir, ignore_errors=True)
        raise


def bind_bridged(
    server: grpc.Server, transport: str, environ: Mapping[str, str], context: ssl.SSLContext
) -> Listener:
    """grpcio plaintext on a private socket, a TLS ``BridgeServer`` on the public one.

    For hosts whose certificate grpcio cannot verify (P-521: Go go-plugin hosts).
    """
    from .tls.bridge import BridgeServer
    from .tls.bridge_loop import listen, listen_tcp_in_range

    backend_dir = tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX)
    owned_dir: str | None = None
    try:
        backend = socket_path(backend_dir)
        _add_port(server, f"unix:{backend}", None)
        if transport == NETWORK_TCP:
            public = listen_tcp_in_range(*port_range(environ), host=LOOPBACK_HOST)
        else:
            directory, owned_dir = _socket_directory(environ)
            public = listen(NETWORK_UNIX, socket_path(directory))
        bridge = BridgeServer(public, backend, context)
        listener = Listener(bridge.network, bridge.address, owned_dir, bridge, backend_dir)
        group = environ.get(ENV_UNIX_SOCKET_GROUP)
        if group and transport == NETWORK_UNIX:
            share_with_group(listener.address, group)
        return listener
    except BaseException:
        shutil.rmtree(backend_dir, ignore_errors=True)
        if owned_dir is not None:
            shutil.rmtree(owned_dir, ignore_errors=True)
        raise


def share_with_group(path: str, group: str, mode: int = 0o660) -> None:
    """Give ``path`` to ``group`` (a name or a number) with ``mode``."""
    try:
        gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        os.chown(path, -1, gid)
        os.chmod(path, mode)
    except (KeyError, OSError) as exc:
        raise TransportError(
            f"could not give socket {path} to group {group!r}: {exc}",
            hint=f"{ENV_UNIX_SOCKET_GROUP} must be a group this user belongs to",
        ) from None


def _bind_tcp(
    server: grpc.Server, environ: Mapping[str, str], credentials: grpc.ServerCredentials | None
) -> Listener:
    low, high = port_range(environ)
    if low == 0:
        port = _add_port(server, f"{LOOPBACK_HOST}:0", credentials)
        if port:
            return Listener(NETWORK_TCP, f"{LOOPBACK_HOST}:{port}")
    else:
        for candidate in range(low, high + 1):
            # A cheap probe first: grpc logs an error line for every failed bind.
            if not _port_free(candidate):
                continue
            try:
                port = _add_port(server, f"{LOOPBACK_HOST}:{candidate}", credentials)
            except RuntimeError:
                continue
            if port:
                return Listener(NETWORK_TCP, f"{LOOPBACK_HOST}:{port}")
    raise TransportError(
        f"no free TCP port on {LOOPBACK_HOST} in {low}..{high}",
        hint="widen PLUGIN_MIN_PORT..PLUGIN_MAX_PORT or use the unix transport",
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK_HOST, port))
        except OSError:
            return False
    return True
