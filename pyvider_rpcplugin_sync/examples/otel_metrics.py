"""Call metrics exported through OpenTelemetry: a ``CallMetrics`` hook on a ``Meter``.

``PluginProcess(cmd, metrics=OpenTelemetryMetrics(meter, "client"))`` on the host, and
``serve(register, metrics=OpenTelemetryMetrics(meter, "server"))`` in a plugin. Needs
``opentelemetry-api`` (and an SDK with an exporter to send the figures anywhere):
``pip install 'pyvider-rpcplugin-sync[otel]'``.

Instruments, named after OpenTelemetry's RPC conventions, each with the attributes
``rpc.system`` (``grpc``), ``rpc.service``, ``rpc.method`` and, once a call ended,
``rpc.grpc.status_code`` (``-1`` for a call that never reached the other side):

- ``rpc.<side>.calls``: a counter of ended calls;
- ``rpc.<side>.duration``: a histogram of their durations, in seconds;
- ``rpc.<side>.active_calls``: an up-down counter of the calls in flight.
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry.metrics import Meter


class OpenTelemetryMetrics:
    """A ``CallMetrics`` hook recording into OpenTelemetry instruments of ``meter``."""

    def __init__(self, meter: Meter, side: str = "client") -> None:
        if side not in ("client", "server"):
            raise ValueError(f"side must be 'client' or 'server', not {side!r}")
        self._calls = meter.create_counter(
            f"rpc.{side}.calls", unit="{call}", description="RPCs that ended"
        )
        self._duration = meter.create_histogram(
            f"rpc.{side}.duration", unit="s", description="How long RPCs took"
        )
        self._active = meter.create_up_down_counter(
            f"rpc.{side}.active_calls", unit="{call}", description="RPCs in flight"
        )

    def started(self, method: str) -> None:
        self._active.add(1, _attributes(method))

    def ended(self, method: str, code: grpc.StatusCode | None, seconds: float) -> None:
        attributes = _attributes(method)
        self._active.add(-1, attributes)
        attributes["rpc.grpc.status_code"] = -1 if code is None else code.value[0]
        self._calls.add(1, attributes)
        self._duration.record(seconds, attributes)


def _attributes(method: str) -> dict[str, Any]:
    service, _, name = method.lstrip("/").partition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}
