"""Sync, thread-based hosts and plugins for HashiCorp go-plugin's gRPC protocol."""

from ._errors import (
    HandshakeError,
    PluginClosed,
    PluginStartError,
    ProtocolVersionError,
    RateLimited,
    RPCPluginError,
    StartTimeout,
    TLSError,
    TransportError,
)
from ._handshake import HandshakeConfig
from ._ratelimit import TokenBucket
from ._serve import run_plugin, serve
from ._server import PluginServer

__all__ = [
    # configuration
    "HandshakeConfig",
    # errors
    "HandshakeError",
    "PluginClosed",
    # plugin side
    "PluginServer",
    "PluginStartError",
    "ProtocolVersionError",
    "RPCPluginError",
    "RateLimited",
    "StartTimeout",
    "TLSError",
    "TransportError",
    "run_plugin",
    "serve",
]
