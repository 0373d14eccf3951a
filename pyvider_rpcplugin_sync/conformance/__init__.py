"""A conformance kit for go-plugin's gRPC protocol: checks any plugin or host.

``python -m pyvider_rpcplugin_sync conformance plugin -- CMD`` starts a plugin
a few times and checks what it does; ``conformance host -- CMD`` points a host
at a probe plugin and records what the host does. ``check_plugin`` and
``check_host`` are the same batteries as functions returning a ``Report``.
The checks and what backs them are described in docs/conformance.md and
docs/protocol.md.
"""

from __future__ import annotations

from .model import EXIT_FAILED, EXIT_NOT_RUN, EXIT_OK, EXIT_USAGE, Report, Result

__all__ = ["EXIT_FAILED", "EXIT_NOT_RUN", "EXIT_OK", "EXIT_USAGE", "Report", "Result"]
