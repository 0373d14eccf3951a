"""The go-plugin internal services seen through grpcio, without generated code.

Messages are encoded by hand (they are one or two fields), so the kit needs no
protobuf module of its own and cannot clash with a plugin's descriptors.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, cast

import grpc

HEALTH_CHECK = "/grpc.health.v1.Health/Check"
STDIO = "/plugin.GRPCStdio/StreamStdio"
BROKER = "/plugin.GRPCBroker/StartStream"
SHUTDOWN = "/plugin.GRPCController/Shutdown"
UNREACHABLE = ("UNAVAILABLE", "DEADLINE_EXCEEDED")  # how a health error starts: nobody answered
SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def _identity(data: bytes) -> bytes:
    return data


def target(network: str, address: str) -> str:
    return f"unix:{address}" if network == "unix" else address


def channel(network: str, address: str) -> grpc.Channel:
    return grpc.insecure_channel(target(network, address))


def health_request(service: str) -> bytes:
    raw = service.encode()
    return (b"\x0a" + bytes([len(raw)]) + raw) if raw else b""


def health_status(reply: bytes) -> str:
    """``HealthCheckResponse.status`` (field 1, varint) by name; UNKNOWN when absent."""
    if len(reply) >= 2 and reply[0] == 0x08:
        return SERVING_STATUS.get(reply[1], str(reply[1]))
    return "UNKNOWN"


def health(ch: grpc.Channel, service: str, timeout: float) -> tuple[str | None, str]:
    """(status name, "") or (None, the error)."""
    call = ch.unary_unary(
        HEALTH_CHECK, request_serializer=_identity, response_deserializer=_identity
    )
    try:
        reply = call(health_request(service), timeout=timeout, wait_for_ready=True)
    except grpc.RpcError as exc:
        return None, f"{exc.code().name}: {exc.details()}"
    return health_status(reply), ""


def stream_stays_open(
    ch: grpc.Channel, method: str, hold: float, *, bidi: bool
) -> tuple[bool, str]:
    """Open a streaming call on a connected channel; (True, ...) when it is still open
    after ``hold`` seconds (the service is there and waits), else (False, how it ended).
    Call it only once the plugin answered on ``ch``: the call waits for readiness."""
    done = threading.Event()
    release = threading.Event()

    def requests() -> Iterator[bytes]:
        release.wait()  # send nothing; end the request stream when the check is over
        return
        yield b""

    if bidi:
        call = ch.stream_stream(
            method, request_serializer=_identity, response_deserializer=_identity
        )(requests(), wait_for_ready=True)
    else:
        call = ch.unary_stream(
            method, request_serializer=_identity, response_deserializer=_identity
        )(b"", wait_for_ready=True)
    # grpc's call objects are futures too (its stubs type only the iterator side).
    cast("grpc.Future[Any]", call).add_done_callback(lambda _call: done.set())
    try:
        if not done.wait(hold):
            return True, "stream held open"
        code = call.code()
        return False, f"ended at once: {code.name if code else '?'}: {call.details()}"
    finally:
        release.set()
        call.cancel()
