"""grpc.health.v1.Health from grpcio-health-checking: the plugin's servicer, SERVING under
"plugin" and "", and the host's check of it.

grpc_health (and with it protobuf) is imported by the first call, not by this
module: importing the host or the plugin API stays near ``import grpc``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from .._constants import HEALTH_SERVICE, HEALTH_SERVICE_NAME
from .._errors import RPCPluginError

if TYPE_CHECKING:
    from grpc_health.v1 import health


def add_health_service(server: grpc.Server) -> health.HealthServicer:
    """Register the official health servicer; go-plugin pings service "plugin"."""
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    servicer = health.HealthServicer(experimental_non_blocking=True)
    for name in (HEALTH_SERVICE_NAME, ""):
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


HEALTH_CHECK = f"/{HEALTH_SERVICE}/Check"


def health_check(channel: grpc.Channel, timeout: float) -> Any:
    """``grpc.health.v1.Health/Check`` of service "plugin"; raises ``grpc.RpcError``."""
    from grpc_health.v1 import health_pb2

    check = channel.unary_unary(
        HEALTH_CHECK,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    # wait_for_ready=False: a refused connection or a failed TLS handshake fails at
    # once, with grpc's reason, instead of waiting out the timeout.
    request = health_pb2.HealthCheckRequest(service=HEALTH_SERVICE_NAME)
    return check(request, timeout=timeout, wait_for_ready=False)


def check_serving(response: Any) -> bool:
    """True for SERVING; otherwise the error saying which status the plugin reports."""
    from grpc_health.v1 import health_pb2

    if response.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        raise RPCPluginError(
            f"the plugin reports health status {status}",
            hint="the plugin is up but says it cannot serve",
        )
    return True
