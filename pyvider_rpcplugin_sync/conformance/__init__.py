"""A conformance kit for go-plugin's gRPC protocol: checks any plugin or host.

``python -m pyvider_rpcplugin_sync conformance plugin -- CMD`` starts a plugin
a few times and checks what it does; ``conformance host -- CMD`` points a host
at a probe plugin and records what the host does. ``check_plugin`` and
``check_host`` run the same batteries from Python and return a ``Report``.
The checks are described in docs/conformance.md, their rules in docs/protocol.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .model import EXIT_FAILED, EXIT_NOT_RUN, EXIT_OK, EXIT_USAGE, Report, Result

if TYPE_CHECKING:
    from .host import HostOptions, check_host
    from .plugin import PluginOptions, check_plugin

# Loaded on first use: the command line builds its parser from this package.
_LAZY = {
    "HostOptions": ".host",
    "check_host": ".host",
    "PluginOptions": ".plugin",
    "check_plugin": ".plugin",
}

__all__ = [
    "EXIT_FAILED",
    "EXIT_NOT_RUN",
    "EXIT_OK",
    "EXIT_USAGE",
    "HostOptions",
    "PluginOptions",
    "Report",
    "Result",
    "check_host",
    "check_plugin",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
