"""The options PluginProcess, its reattach() and SharedPlugin share, and what they make.

Interceptors and channel options are resolved once, when a host is built; nothing
is added to the call path unless an option asks for it (design.md §4 "Speed").
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypedDict

import grpc

from .._constants import DEFAULT_MAX_MESSAGE_SIZE
from .._protocol.handshake import HandshakeConfig
from .channel import channel_options, check_interceptors, rate_limit_interceptor
from .stdio import StdioSink

if TYPE_CHECKING:
    from .._ratelimit.bucket import TokenBucket

logger = logging.getLogger("pyvider_rpcplugin_sync.host")

# Any grpc client interceptor (unary/stream, unary/stream), or OpenTelemetry's.
ClientInterceptor = Any


class HostOptions(TypedDict, total=False):
    """Options shared by ``PluginProcess`` and ``PluginProcess.reattach``."""

    handshake: HandshakeConfig | None
    stub: Callable[[grpc.Channel], Any] | None
    shutdown_grace: float
    connect_timeout: float
    logger: logging.Logger | None
    rate_limit: TokenBucket | None
    rate_limit_mode: str
    stdio_stdout: StdioSink | None
    stdio_stderr: StdioSink | None
    interceptors: Sequence[ClientInterceptor]
    channel_options: Sequence[tuple[str, Any]]
    max_message_size: int
    on_exit: Callable[[int], None] | None


# Objects that must never be finalized in this process: plugins abandoned after a fork.
ABANDONED: list[object] = []


def call_interceptors(options: HostOptions) -> tuple[ClientInterceptor, ...]:
    """The application's interceptors, then the rate limiter's; empty when none is asked.

    Outermost first: a tracing span covers the time spent waiting for a token.
    """
    limiter = rate_limit_interceptor(
        options.get("rate_limit"), options.get("rate_limit_mode", "wait")
    )
    return (
        *check_interceptors(options.get("interceptors", ())),
        *((limiter,) if limiter is not None else ()),
    )


def channel_options_of(options: HostOptions) -> tuple[tuple[str, Any], ...]:
    return channel_options(
        options.get("max_message_size", DEFAULT_MAX_MESSAGE_SIZE),
        options.get("channel_options", ()),
    )


def notify_exit(callback: Callable[[int], None], code: int, name: str) -> None:
    try:
        callback(code)
    except Exception:
        logger.exception("on_exit callback of plugin %s failed", name)
