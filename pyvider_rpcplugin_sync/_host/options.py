"""The keyword options of the hosts, as types: ``HostConfig``'s fields but ``stub``.

``PluginProcess``, ``PluginProcess.reattach``, ``SharedPlugin`` and the fixtures
take them as ``**options: Unpack[HostOptions]``, so mypy and pyright check each
name and value; ``stub=`` is typed apart, to make ``plugin.stub`` the stub class's
instance. A unit test keeps these keys equal to ``HostConfig``'s fields.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

import grpc

from .._constants import RateLimitMode, Transport
from .._protocol.handshake import HandshakeConfig

if TYPE_CHECKING:
    from .._metrics.hook import CallMetrics
    from .._ratelimit.bucket import TokenBucket
    from .breaker import CircuitBreaker
    from .config import CommandLauncher
    from .retry import RetryPolicy
    from .runner import Stdin
    from .stdio import StdioSink

StubT = TypeVar("StubT")
"""The type of ``plugin.stub``: what the ``stub=`` class (or factory) returns."""

StubFactory = Callable[[grpc.Channel], StubT]
"""A stub class such as ``KVStub``, or any callable that makes a stub of a channel."""


class HostOptions(TypedDict, total=False):
    """``HostConfig``'s fields but ``stub`` (documented there), as keyword options."""

    handshake: HandshakeConfig
    tls: bool
    env: Mapping[str, str]
    skip_host_env: bool
    cwd: str | os.PathLike[str] | None
    start_timeout: float
    shutdown_grace: float
    connect_timeout: float
    call_timeout: float | None
    drain_timeout: float
    transport: Transport | None
    unix_socket_dir: str | os.PathLike[str] | None
    unix_socket_group: str | None
    checksum: str | None
    checksum_file: str | os.PathLike[str] | None
    logger: logging.Logger | None
    rate_limit: TokenBucket | None
    rate_limit_mode: RateLimitMode
    stdin: Stdin
    stdio_stdout: StdioSink | None
    stdio_stderr: StdioSink | None
    interceptors: Sequence[Any]
    channel_options: Sequence[tuple[str, Any]]
    max_message_size: int
    on_exit: Callable[[int], None] | None
    launcher: CommandLauncher
    multiplex: bool
    retry: RetryPolicy | None
    circuit_breaker: CircuitBreaker | None
    metrics: CallMetrics | None
