"""Debug mode: serve unmanaged and print the reattach config, like Go providers' ``-debug``.

No host starts the plugin, so there is no cookie, no version list, no client
certificate and no parent to watch: the plugin makes up the host's side of the
handshake itself, listens without TLS (go-plugin's reattach has no AutoMTLS),
prints ``TF_REATTACH_PROVIDERS`` for Terraform (``"Test": true``: Terraform
1.11 records the protocol version only in test mode, and it must not shut an
unmanaged plugin down) and serves until Ctrl-C, SIGTERM or a host's Shutdown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Generator, Mapping
from types import FrameType
from typing import Any, TextIO

from .._constants import (
    ENV_CLIENT_CERT,
    ENV_MULTIPLEX_GRPC,
    ENV_PROTOCOL_VERSIONS,
    PROTOCOL_GRPC,
)
from .._protocol.handshake import HandshakeConfig
from .._protocol.reattach import TF_REATTACH_PROVIDERS, ReattachConfig, format_tf_reattach_providers
from .server import PluginServer, Registrars


def debug_environ(
    base: Mapping[str, str], handshake: HandshakeConfig, versions: list[int]
) -> dict[str, str]:
    """The environment a host would have given: our cookie and versions, no AutoMTLS."""
    environ = {
        key: value
        for key, value in base.items()
        if key not in (ENV_CLIENT_CERT, ENV_MULTIPLEX_GRPC)
    }
    environ[handshake.magic_cookie_key] = handshake.magic_cookie_value
    environ[ENV_PROTOCOL_VERSIONS] = ",".join(str(v) for v in versions)
    return environ


def plugin_versions(registrars: Registrars, handshake: HandshakeConfig) -> list[int]:
    if callable(registrars):
        return sorted(handshake.protocol_versions)
    return sorted(registrars)


def debug_banner(name: str, config: ReattachConfig) -> str:
    """What a debug-mode plugin prints on stdout (shell-quoted JSON on its own line)."""
    text = format_tf_reattach_providers({name: config})
    return (
        f"Plugin started in debug mode (pid {config.pid}). To attach Terraform, set the\n"
        f"{TF_REATTACH_PROVIDERS} environment variable with the following:\n"
        "\n"
        f"\t{TF_REATTACH_PROVIDERS}='{text}'\n"
        "\n"
        "Other go-plugin hosts reattach with the object under the plugin's name.\n"
        "Stop the plugin with Ctrl-C.\n"
    )


def serve_debug(
    registrars: Registrars,
    *,
    handshake: HandshakeConfig,
    name: str | None,
    server_options: dict[str, Any],
    out: TextIO | None = None,
) -> None:
    """Serve ``registrars`` unmanaged until stopped; print how to attach first."""
    options = dict(server_options)
    base = options.pop("environ", None)
    options.pop("tls", None)  # reattach has no AutoMTLS
    environ = debug_environ(
        os.environ if base is None else base, handshake, plugin_versions(registrars, handshake)
    )
    server = PluginServer(registrars, handshake=handshake, environ=environ, tls=False, **options)
    line = server.start()
    try:
        config = ReattachConfig(
            network=line.network,
            address=line.address,
            protocol=PROTOCOL_GRPC,
            protocol_version=line.app_version,
            pid=os.getpid(),
            test=True,
        )
        stream = sys.stdout if out is None else out
        stream.write(debug_banner(name or _program_name(), config))
        stream.flush()
        with _stop_on_signals(server):
            server.wait()
    finally:
        server.stop()


def _program_name() -> str:
    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "plugin"


@contextlib.contextmanager
def _stop_on_signals(server: PluginServer) -> Generator[None, None, None]:
    """Ctrl-C and SIGTERM stop the server (no host owns this process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        server.request_stop()

    saved = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
