"""Sync, thread-based hosts and plugins for HashiCorp go-plugin's gRPC protocol.

Names are loaded on first use, so ``import pyvider_rpcplugin_sync`` stays
cheap (the budget is ``import grpc`` plus 10 ms) for programs that only touch
part of the API.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._errors import (
    BrokerClosed,
    BrokerError,
    BrokerTimeout,
    CircuitOpen,
    CodegenError,
    HandshakeError,
    MultiplexNotSupported,
    PluginClosed,
    PluginClosing,
    PluginDown,
    PluginStartError,
    ProtocolVersionError,
    RateLimited,
    RPCPluginError,
    StartTimeout,
    TLSError,
    TransportError,
)

if TYPE_CHECKING:
    from ._broker.broker import Broker, BrokeredServer
    from ._constants import DEFAULT_MAX_MESSAGE_SIZE
    from ._host.breaker import BreakerState, CircuitBreaker
    from ._host.config import CommandLauncher, HostConfig
    from ._host.discover import discover, installed_plugins
    from ._host.options import HostOptions
    from ._host.process import PluginProcess
    from ._host.retry import RetryPolicy
    from ._host.shared import SharedPlugin
    from ._metrics.hook import CallMetrics, CallStats
    from ._plugin.serve import run_plugin, serve
    from ._plugin.server import PluginServer
    from ._protocol.handshake import HandshakeConfig, HandshakeLine
    from ._protocol.reattach import ReattachConfig
    from ._ratelimit.bucket import TokenBucket
    from ._transport.guard import CallTimeout

    __version__: str

_LAZY = {
    "Broker": "._broker.broker",
    "BrokeredServer": "._broker.broker",
    "BreakerState": "._host.breaker",
    "CallMetrics": "._metrics.hook",
    "CallStats": "._metrics.hook",
    "CircuitBreaker": "._host.breaker",
    "CallTimeout": "._transport.guard",
    "DEFAULT_MAX_MESSAGE_SIZE": "._constants",
    "CommandLauncher": "._host.config",
    "HandshakeConfig": "._protocol.handshake",
    "HandshakeLine": "._protocol.handshake",
    "HostConfig": "._host.config",
    "HostOptions": "._host.options",
    "discover": "._host.discover",
    "installed_plugins": "._host.discover",
    "PluginProcess": "._host.process",
    "PluginServer": "._plugin.server",
    "ReattachConfig": "._protocol.reattach",
    "RetryPolicy": "._host.retry",
    "TokenBucket": "._ratelimit.bucket",
    "SharedPlugin": "._host.shared",
    "run_plugin": "._plugin.serve",
    "serve": "._plugin.serve",
}

__all__ = [
    "__version__",
    # configuration
    "DEFAULT_MAX_MESSAGE_SIZE",
    "HandshakeConfig",
    "HandshakeLine",
    # host side
    "CommandLauncher",
    "HostConfig",
    "HostOptions",
    "PluginProcess",
    "ReattachConfig",
    "discover",
    "installed_plugins",
    "SharedPlugin",
    # retries and the circuit breaker
    "RetryPolicy",
    "CircuitBreaker",
    "BreakerState",
    # metrics (both sides)
    "CallMetrics",
    "CallStats",
    # plugin side
    "PluginServer",
    "run_plugin",
    "serve",
    # brokered connections (GRPCBroker)
    "Broker",
    "BrokeredServer",
    # rate limiting
    "TokenBucket",
    # errors
    "BrokerClosed",
    "BrokerError",
    "BrokerTimeout",
    "CallTimeout",
    "CircuitOpen",
    "CodegenError",
    "HandshakeError",
    "MultiplexNotSupported",
    "PluginClosed",
    "PluginClosing",
    "PluginDown",
    "PluginStartError",
    "ProtocolVersionError",
    "RPCPluginError",
    "RateLimited",
    "StartTimeout",
    "TLSError",
    "TransportError",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = version = _installed_version()
        return version
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    if isinstance(value, type) or callable(value):
        # Tracebacks and reprs name the public path, not the private module.
        value.__module__ = __name__
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


def _installed_version() -> str:
    """The version in the installed package's metadata (pyproject.toml's, the one source)."""
    from importlib import metadata

    try:
        return metadata.version("pyvider-rpcplugin-sync")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def _own_exported_classes() -> None:
    """The errors (loaded already) report this package as their module in tracebacks."""
    for name in __all__:
        value = globals().get(name)
        if isinstance(value, type):
            value.__module__ = __name__


_own_exported_classes()
