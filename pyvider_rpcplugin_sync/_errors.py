"""The library's exception tree, rooted at ``RPCPluginError``.

Users catch these without importing grpc. ``CallTimeout``, also a
``grpc.RpcError``, lives beside the call frame that raises it
(``_transport/guard.py``), so that importing the package does not import grpc.
Other gRPC status errors raised by an application's own RPCs are not wrapped:
they pass through unchanged.
"""

from __future__ import annotations


class RPCPluginError(Exception):
    """Root of every error this library raises; ``hint`` says what to do about it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class HandshakeError(RPCPluginError):
    """The handshake line or the magic cookie is missing or malformed."""


class ProtocolVersionError(HandshakeError):
    """Host and plugin share no protocol version (core or application)."""


class MultiplexNotSupported(HandshakeError):
    """The host asked for a multiplexed broker (``multiplex=True``) and the plugin's
    handshake line does not say it multiplexes (field 7 missing or false)."""


class _ProcessFailure(RPCPluginError):
    """An error about the plugin process, carrying its exit code and stderr tail."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        returncode: int | None = None,
        stderr_tail: str = "",
    ) -> None:
        super().__init__(message, hint=hint)
        self.returncode = returncode
        self.stderr_tail = stderr_tail

    def __str__(self) -> str:
        text = super().__str__()
        if self.returncode is not None:
            text += f" [exit code {self.returncode}]"
        if self.stderr_tail:
            text += "\n--- plugin stderr (last lines) ---\n" + self.stderr_tail
        return text


class PluginStartError(_ProcessFailure):
    """The plugin could not be started or exited before it was usable."""


class StartTimeout(PluginStartError, TimeoutError):
    """The start did not complete within ``start_timeout``: no handshake line, or no
    answer at the address it named. Also a ``TimeoutError``."""


class TransportError(RPCPluginError):
    """A socket could not be created, bound or reached."""


class TLSError(RPCPluginError):
    """A certificate or key is invalid, or the peer failed verification."""


class RateLimited(RPCPluginError):
    """A call was refused, or could not get a token in time, because of a rate limit."""


class CircuitOpen(RPCPluginError):
    """The call was refused at once: the circuit breaker (``circuit_breaker=``) is open
    after consecutive failed calls; ``retry_in`` is the seconds until trial calls pass."""

    def __init__(self, message: str, *, hint: str | None = None, retry_in: float = 0.0) -> None:
        super().__init__(message, hint=hint)
        self.retry_in = retry_in


class PluginClosed(_ProcessFailure):
    """The plugin was closed or has died; the call cannot be made."""


class PluginClosing(PluginClosed):
    """The call was in flight when ``close()`` ended the session: the drain period ran
    out before it finished (we closed it; a crash raises plain ``PluginClosed``)."""


class PluginDown(PluginClosed):
    """A ``SharedPlugin`` stays down: its last ``attempts`` starts (or early deaths) in a
    row failed, reaching ``max_start_failures``; ``last_error`` is the last cause."""

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        attempts: int = 0,
        last_error: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.attempts = attempts
        self.last_error = last_error


class CodegenError(RPCPluginError):
    """Stub generation (``protoc``) failed, or grpcio-tools (the ``codegen`` extra) is missing."""


class BrokerError(RPCPluginError):
    """A brokered connection (GRPCBroker) could not be served or dialed, e.g. a bad id."""


class BrokerTimeout(BrokerError):
    """The peer announced no connection for a broker id within the dial timeout."""


class BrokerClosed(BrokerError):
    """The broker's session has ended: the plugin was closed or the host left."""
