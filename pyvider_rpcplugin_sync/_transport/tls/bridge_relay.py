"""One bridged connection: a TLS socket and a plaintext socket, relayed through an SSLObject.

Runs only on its bridge's event-loop thread (``bridge.py``): the SSLObject and
both sockets are never touched from two threads. Sockets are non-blocking; TLS runs
over ``ssl.MemoryBIO`` pairs. Data moves in chunks of up to ``CHUNK`` bytes; a
side is read only while the opposite side has less than ``HIGH_WATER`` bytes
waiting, and EVENT_WRITE is watched only while output is pending.

Closing: EOF (or close_notify) from the TLS peer shuts down the plaintext socket for
writing once the decrypted data is delivered; EOF from the plaintext peer sends
close_notify once its data is encrypted and sent. A relay whose two directions are
both done closes its sockets. Any error closes both at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import ssl
from collections.abc import Callable
from typing import Protocol

from .certs import describe_ssl_error

logger = logging.getLogger("pyvider_rpcplugin_sync.tls")

CHUNK = 256 * 1024
HIGH_WATER = 1024 * 1024

SILENT_CLOSE = (
    "the peer closed the connection right after the handshake; did it refuse our certificate?"
)

EVENT_READ = selectors.EVENT_READ
EVENT_WRITE = selectors.EVENT_WRITE


class RelayOwner(Protocol):
    """What a relay needs from its bridge (all called on the loop thread)."""

    selector: selectors.BaseSelector

    def open_backend(self) -> socket.socket: ...

    def relay_failed(self, relay: Relay, phase: str, reason: str) -> None: ...

    def relay_closed(self, relay: Relay) -> None: ...


class Side:
    """One socket of a relay and the bytes waiting to be written to it."""

    __slots__ = ("connecting", "eof", "events", "out", "relay", "shut", "sock")

    def __init__(self, relay: Relay, sock: socket.socket, *, connecting: bool = False) -> None:
        self.relay = relay
        self.sock = sock
        self.out = bytearray()
        self.connecting = connecting
        self.eof = False  # nothing more will come from this socket
        self.shut = False  # nothing more will go to this socket
        self.events = 0

    def on_event(self, mask: int) -> None:
        self.relay.on_event(self, mask)


class Relay:
    """Relays one connection; ``tls`` is the encrypted side, ``plain`` the grpcio side."""

    def __init__(
        self,
        owner: RelayOwner,
        tls_sock: socket.socket,
        plain_sock: socket.socket | None,
        *,
        context: ssl.SSLContext,
        server_hostname: str | None,  # None: we are the TLS server
        label: str,
        deadline: float,
        tls_connecting: bool = False,
    ) -> None:
        self.owner = owner
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.ssl = context.wrap_bio(
            self.incoming,
            self.outgoing,
            server_side=server_hostname is None,
            server_hostname=server_hostname,
        )
        self.label = label
        self.deadline: float | None = deadline  # None once established
        self.tls = Side(self, tls_sock, connecting=tls_connecting)
        self.plain = Side(self, plain_sock) if plain_sock is not None else None
        self.established = False
        self.received = False  # any application data from the TLS peer yet
        self.notify_queued = False  # our close_notify is in tls.out
        self.tls_aborted = False  # the peer closed without close_notify
        self.closed = False

    # --- entry points (loop thread) ---------------------------------------------

    def begin(self) -> None:
        """Start: a client that is already connected sends its ClientHello."""
        self._guarded(self._begin, self.tls, 0)

    def expire(self, now: float) -> None:
        """Close if the connect + handshake deadline has passed."""
        if self.deadline is not None and not self.closed and now >= self.deadline:
            self._fail("tls", "no TLS handshake before the deadline")

    def on_event(self, side: Side, mask: int) -> None:
        self._guarded(self._dispatch, side, mask)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for side in (self.tls, self.plain):
            if side is None:
                continue
            if side.events:
                self.owner.selector.unregister(side.sock)
                side.events = 0
            side.sock.close()
        self.owner.relay_closed(self)

    # --- steps ------------------------------------------------------------------

    def _guarded(self, step: Callable[[Side, int], None], side: Side, mask: int) -> None:
        if self.closed:
            return
        try:
            step(side, mask)
        except SocketError as exc:
            self._on_error(exc.error, exc.side)
        except OSError as exc:  # ssl.SSLError, a failed connect: both about the TLS side
            self._on_error(exc, self.tls)
        except Exception:
            logger.exception("TLS bridge: unexpected error on a relayed connection")
            self.close()
        else:
            self._settle()

    def _dispatch(self, side: Side, mask: int) -> None:
        if side.connecting:
            self._finish_connect()
            return
        is_tls = side is self.tls
        if mask & EVENT_READ:
            self._read_tls() if is_tls else self._read_plain()
        if mask & EVENT_WRITE and not self.closed:
            self._flush_tls() if is_tls else self._flush_plain()

    def _begin(self, side: Side, mask: int) -> None:
        if not self.tls.connecting and not self.ssl.server_side:
            self._handshake()

    def _finish_connect(self) -> None:
        error = self.tls.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if error:
            raise ConnectionError(error, os.strerror(error))
        self.tls.connecting = False
        self._handshake()

    def _handshake(self) -> None:
        try:
            self.ssl.do_handshake()
        except ssl.SSLWantReadError:
            self._flush_tls()
            return
        self.established = True
        self.deadline = None
        if self.plain is None:
            try:
                self.plain = Side(self, self.owner.open_backend())
            except OSError as exc:
                self._fail("backend", describe_ssl_error(exc))
                return
        logger.debug(
            "TLS bridge: %s established (%s, %s, ALPN %s)",
            self.label,
            self.ssl.version(),
            (self.ssl.cipher() or ("?",))[0],
            self.ssl.selected_alpn_protocol(),
        )
        self._flush_tls()

    def _read_tls(self) -> None:
        data = _recv(self.tls)
        if data is None:
            return
        if data:
            self.incoming.write(data)
        else:
            self.incoming.write_eof()
        if not self.established:
            self._handshake()
            if not self.established or self.closed:
                return
        self._decrypt()

    def _decrypt(self) -> None:
        assert self.plain is not None
        out = self.plain.out
        while True:
            try:
                chunk = self.ssl.read(CHUNK)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            except ssl.SSLEOFError:
                # The peer closed without close_notify (grpcio does): gRPC frames its
                # own messages, so a truncation cannot go unnoticed above us. OpenSSL
                # now refuses any further TLS on this connection, close_notify included.
                self.tls_aborted = True
                chunk = b""
            if not chunk:
                if self._refused():
                    self._fail("tls", SILENT_CLOSE)
                    return
                self.tls.eof = True
                break
            out += chunk
            self.received = True
            incoming = self.incoming
            if not (incoming.pending or incoming.eof or self.ssl.pending()):
                break  # nothing left to decrypt: skip the SSLWantReadError round
        self._flush_tls()  # post-handshake messages (session tickets, key updates)
        self._flush_plain()

    def _read_plain(self) -> None:
        assert self.plain is not None
        data = _recv(self.plain)
        if data is None:
            return
        if data:
            self.ssl.write(data)
        elif self.tls_aborted:
            self.plain.eof = self.tls.shut = True
        else:
            self.plain.eof = True
            self.notify_queued = True
            with contextlib.suppress(ssl.SSLWantReadError):
                self.ssl.unwrap()  # queues close_notify; reading stays possible
        self._flush_tls()

    def _flush_tls(self) -> None:
        side = self.tls
        data = self.outgoing.read() if self.outgoing.pending else b""
        if side.connecting:
            side.out += data
            return
        if side.out or not data:
            side.out += data
            if side.out:
                _send_buffered(side)
        else:  # the common case: nothing queued, send straight from the BIO's bytes
            sent = _send(side, data)
            if sent < len(data):
                side.out += memoryview(data)[sent:]
        if not side.out and self.notify_queued:
            side.shut = True

    def _flush_plain(self) -> None:
        side = self.plain
        if side is None:
            return
        if side.out:
            _send_buffered(side)
        if not side.out and self.tls.eof and not side.shut:
            side.shut = True
            try:
                side.sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                raise SocketError(side, exc) from None

    # --- bookkeeping ----------------------------------------------------------------

    def _settle(self) -> None:
        """Close when both directions are done, else watch exactly what is needed."""
        if self.closed:
            return
        plain = self.plain
        if plain is not None and self.tls.eof and plain.shut and plain.eof and self.tls.shut:
            self.close()
            return
        self._watch(self.tls, self._wanted_tls())
        if plain is not None:
            self._watch(plain, self._wanted_plain(plain))

    def _wanted_tls(self) -> int:
        side = self.tls
        if side.connecting:
            return EVENT_WRITE
        events = EVENT_WRITE if side.out else 0
        if not side.eof and (self.plain is None or len(self.plain.out) < HIGH_WATER):
            events |= EVENT_READ
        return events

    def _wanted_plain(self, side: Side) -> int:
        events = EVENT_WRITE if side.out else 0
        if (
            self.established
            and not side.eof
            and not self.tls.connecting
            and len(self.tls.out) < HIGH_WATER
        ):
            events |= EVENT_READ
        return events

    def _watch(self, side: Side, events: int) -> None:
        if events == side.events:
            return
        selector = self.owner.selector
        if not side.events:
            selector.register(side.sock, events, side.on_event)
        elif not events:
            selector.unregister(side.sock)
        else:
            selector.modify(side.sock, events, side.on_event)
        side.events = events

    def _on_error(self, exc: OSError, side: Side) -> None:
        if self.tls.connecting:
            self._fail("connect", describe_ssl_error(exc))
        elif not self.established:
            self._fail("tls", describe_ssl_error(exc))
        elif side is self.tls and self._refused():
            # TLS 1.3: the server judges our certificate after our side of the handshake
            # is done; its verdict arrives at the first read (an alert), or at the
            # first write as a reset that may hide the alert before it.
            self._fail("tls", self._verdict(exc))
        elif isinstance(exc, ssl.SSLError) and not self.tls_aborted:
            self._fail("stream", describe_ssl_error(exc))
        else:
            logger.debug("TLS bridge: %s closed: %s", self.label, describe_ssl_error(exc))
            self.close()

    def _refused(self) -> bool:
        """A server that drops us unasked before saying anything refused us: a gRPC
        server speaks first (SETTINGS)."""
        return not (self.received or self.notify_queued or self.ssl.server_side)

    def _verdict(self, exc: OSError) -> str:
        """Why the server dropped us: its alert if it sent one before the reset."""
        if isinstance(exc, ssl.SSLError):
            return describe_ssl_error(exc)
        try:
            if data := self.tls.sock.recv(CHUNK):
                self.incoming.write(data)
            self.ssl.read(CHUNK)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as alert:
            return describe_ssl_error(alert)
        except OSError:
            pass
        return f"{SILENT_CLOSE} ({describe_ssl_error(exc)})"

    def _fail(self, phase: str, reason: str) -> None:
        """Report, send what TLS has to say (an alert) if possible, close."""
        if self.closed:
            return
        self.owner.relay_failed(self, phase, reason)
        if not self.tls.connecting:
            try:
                self.tls.out += self.outgoing.read()
                if self.tls.out:
                    self.tls.sock.send(self.tls.out)
            except OSError:
                pass
        self.close()


class SocketError(Exception):
    """A socket call failed; says which side, as one step may touch both."""

    def __init__(self, side: Side, error: OSError) -> None:
        super().__init__(str(error))
        self.side = side
        self.error = error


def _recv(side: Side) -> bytes | None:
    """Up to CHUNK bytes, b"" at EOF, None if nothing is there yet."""
    try:
        return side.sock.recv(CHUNK)
    except BlockingIOError:
        return None
    except OSError as exc:
        raise SocketError(side, exc) from None


def _send(side: Side, data: bytes | bytearray) -> int:
    try:
        return side.sock.send(data)
    except BlockingIOError:
        return 0
    except OSError as exc:
        raise SocketError(side, exc) from None


def _send_buffered(side: Side) -> None:
    del side.out[: _send(side, side.out)]
