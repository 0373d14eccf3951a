"""What the host prepares before it spawns a plugin: argv, checksum, socket dir, environment.

No subprocess here (``runner`` spawns); small functions with unit tests.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Mapping, Sequence

from .._constants import (
    ENV_MULTIPLEX_GRPC,
    ENV_TRANSPORT,
    ENV_UNIX_SOCKET_DIR,
    ENV_UNIX_SOCKET_GROUP,
    MAX_UNIX_SOCKET_PATH,
    NETWORK_TCP,
    SOCKET_DIR_PREFIX,
    SOCKET_FILE_PREFIX,
)
from .._errors import PluginStartError, TransportError
from .._protocol.handshake import HandshakeConfig, host_environment
from .._transport.listener import share_with_group


def command_argv(cmd: str | Sequence[str]) -> list[str]:
    """An argv list; a string is split like a shell would (no shell is run)."""
    argv = shlex.split(cmd) if isinstance(cmd, str) else [os.fspath(arg) for arg in cmd]
    if not argv or not argv[0]:
        raise ValueError("the plugin command must not be empty")
    return argv


def resolve_executable(argv0: str, env: Mapping[str, str], cwd: str | None) -> str:
    """The file the kernel will run for ``argv0``, found as ``subprocess`` finds it."""
    if os.sep in argv0:
        return os.path.abspath(os.path.join(cwd or os.curdir, argv0))
    found = shutil.which(argv0, path=env.get("PATH", os.defpath))
    if found is None:
        raise PluginStartError(
            f"plugin command {argv0!r} was not found on PATH",
            hint="give the full path of the plugin executable",
        )
    return os.path.abspath(found)


def verify_checksum(path: str, expected: str) -> None:
    """SHA-256 of ``path`` must equal ``expected`` (hex), compared in constant time."""
    import hashlib  # with hmac, only for a host that verifies checksums
    import hmac

    want = expected.strip().lower()
    if len(want) != 64 or any(c not in "0123456789abcdef" for c in want):
        raise ValueError("checksum must be a SHA-256 digest as 64 hex digits")
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise PluginStartError(
            f"cannot read {path} to verify its checksum: {exc}",
            hint="checksum_file must name a readable file",
        ) from None
    if not hmac.compare_digest(digest.hexdigest(), want):
        raise PluginStartError(
            "checksums did not match",
            hint=f"{path} is not the binary the checksum was made for; rebuild or "
            "reinstall the plugin, or update the expected checksum",
        )


def make_socket_dir(
    transport: str | None, *, parent: str | None = None, group: str | None = None
) -> str | None:
    """A private directory for the plugin's sockets (``mkdtemp``: mode 0700), in
    ``parent`` (default: the temp dir); shared with ``group`` (mode 0770) if given.

    None when it would be too long but ``transport`` is TCP: our plugins then
    need none, Go plugins fall back to their own temp dir.
    """
    try:
        directory = tempfile.mkdtemp(prefix=SOCKET_DIR_PREFIX, dir=parent)
    except OSError as exc:
        raise TransportError(
            f"could not make the plugin's socket directory in {parent}: {exc.strerror or exc}",
            hint="unix_socket_dir must name an existing directory this user can write",
        ) from None
    if socket_dir_fits(directory):
        if group is not None:
            try:
                share_with_group(directory, group, 0o770)
            except BaseException:
                shutil.rmtree(directory, ignore_errors=True)
                raise
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    if transport == NETWORK_TCP:
        return None
    raise TransportError(
        f"unix socket paths in {directory} would be over {MAX_UNIX_SOCKET_PATH} bytes",
        hint="set TMPDIR to a short directory (e.g. /tmp), or use transport='tcp'",
    )


def plugin_temp_dir(env: Mapping[str, str]) -> str:
    """The plugin's temp dir as Go's ``os.TempDir`` finds it: ``$TMPDIR``, else /tmp."""
    return env.get("TMPDIR") or "/tmp"


def socket_dir_fits(directory: str) -> bool:
    """Whether socket files in ``directory`` stay within the sun_path limit."""
    # Ours are "plugin" + 9 digits; Go's os.CreateTemp makes "plugin" + up to 10.
    longest = len(os.fsencode(directory)) + 1 + len(SOCKET_FILE_PREFIX) + 10
    return longest <= MAX_UNIX_SOCKET_PATH


def plugin_environment(
    base: Mapping[str, str],
    handshake: HandshakeConfig,
    *,
    client_cert_pem: str | None,
    socket_dir: str | None,
    transport: str | None,
    socket_group: str | None = None,
    multiplex: bool = False,
) -> dict[str, str]:
    """The plugin's environment: ``base`` (host env + ``env=``) plus go-plugin's variables."""
    env = host_environment(base, handshake, client_cert_pem=client_cert_pem, socket_dir=socket_dir)
    # Inherited from a host that runs *us* as its plugin, these would mislead ours:
    # multiplexing is this host's choice, and the socket dir is the one we made, or none.
    env.pop(ENV_MULTIPLEX_GRPC, None)
    if multiplex:
        env[ENV_MULTIPLEX_GRPC] = "true"
    if env.get(ENV_UNIX_SOCKET_DIR) != socket_dir:
        env.pop(ENV_UNIX_SOCKET_DIR, None)
    if socket_group is not None:
        env[ENV_UNIX_SOCKET_GROUP] = socket_group
    if transport is not None:
        env[ENV_TRANSPORT] = transport  # ours honour it; Go plugins ignore it
    return env
