"""grpc.health.v1.Health from grpcio-health-checking, SERVING under "plugin" and ""."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from .._constants import HEALTH_SERVICE_NAME


def add_health_service(server: grpc.Server) -> health.HealthServicer:
    """Register the official health servicer; go-plugin pings service "plugin"."""
    servicer = health.HealthServicer(experimental_non_blocking=True)
    for name in (HEALTH_SERVICE_NAME, ""):
        servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer
