"""Helpers for the TLS bridge tests (no tests here): certificates, backends, a TLS client.

The TLS client drives an ``ssl.SSLObject`` over a socket from one thread only, so it
can half-close (send close_notify and keep reading), which ``SSLSocket`` cannot.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import selectors
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cryptography import x509

from pyvider_rpcplugin_sync._transport.tls.bridge import listen
from pyvider_rpcplugin_sync._transport.tls.bridge_certs import go_style_identity
from pyvider_rpcplugin_sync._transport.tls.certs import Identity, generate_identity

CHUNK = 64 * 1024
IO_TIMEOUT = 10.0


def cert(identity: Identity) -> x509.Certificate:
    return x509.load_pem_x509_certificate(identity.cert_pem)


@dataclass(frozen=True)
class Identities:
    host: Identity  # P-521, as a Go host's
    plugin: Identity  # P-256, as ours
    foreign: Identity  # P-521, trusted by nobody


def make_identities() -> Identities:
    return Identities(go_style_identity(), generate_identity(), go_style_identity())


def open_fds() -> set[str]:
    """This process's open descriptors as "fd -> target". A leak shows as an entry that was
    not there before (``open_fds() <= before``); an unrelated descriptor closing meanwhile
    (a finished test's thread, the garbage collector) does not count."""
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add(f"{fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            continue  # the descriptor of the listing itself, closed by now
    return found


# --- plaintext backends (stand-ins for the grpcio server) ---------------------------------

Handler = Callable[[socket.socket], None]


def echo(conn: socket.socket) -> None:
    """Echo until EOF, then half-close."""
    while data := conn.recv(CHUNK):
        conn.sendall(data)
    conn.shutdown(socket.SHUT_WR)


def digest_then_reply(conn: socket.socket) -> None:
    """Read to EOF, then answer ``<length> <sha256>`` and close."""
    h, n = hashlib.sha256(), 0
    while data := conn.recv(CHUNK):
        h.update(data)
        n += len(data)
    conn.sendall(f"{n} {h.hexdigest()}".encode())


class Backend:
    """A unix-socket server running ``handler`` per connection in a thread."""

    def __init__(self, directory: str, handler: Handler = echo) -> None:
        self.path = os.path.join(directory, "backend.sock")
        self._sock = listen("unix", self.path)
        self._handler = handler
        self._cond = threading.Condition()
        self._active = 0
        self.accepted = 0
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._cond:
                self._active += 1
                self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with conn:
                conn.settimeout(IO_TIMEOUT)
                self._handler(conn)
        except OSError as exc:
            self.errors.append(exc)
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def wait_idle(self, timeout: float = IO_TIMEOUT) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._active == 0, timeout)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()
        self._thread.join(IO_TIMEOUT)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


@contextlib.contextmanager
def backend(directory: str, handler: Handler = echo) -> Iterator[Backend]:
    server = Backend(directory, handler)
    try:
        yield server
    finally:
        server.close()


# --- a single-threaded TLS client on SSLObject ----------------------------------------------


def connect(network: str, address: str) -> socket.socket:
    if network == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(IO_TIMEOUT)
        sock.connect(address)
        return sock
    host, _, port = address.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=IO_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class TLSClient:
    def __init__(self, sock: socket.socket, context: ssl.SSLContext) -> None:
        self.sock = sock
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")

    @classmethod
    @contextlib.contextmanager
    def open(cls, network: str, address: str, context: ssl.SSLContext) -> Iterator[TLSClient]:
        with connect(network, address) as sock:
            client = cls(sock, context)
            client.handshake()
            yield client

    def _flush(self) -> None:
        if data := self.outgoing.read():
            self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(CHUNK)
        if data:
            self.incoming.write(data)
        else:
            self.incoming.write_eof()

    def handshake(self) -> None:
        while True:
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
            except ssl.SSLError:
                self._flush()  # our alert tells the server why
                raise
            else:
                self._flush()
                return

    def send(self, data: bytes) -> None:
        self.obj.write(data)
        self._flush()

    def close_write(self) -> None:
        """Send close_notify and keep reading (TLS half-close)."""
        with contextlib.suppress(ssl.SSLWantReadError):
            self.obj.unwrap()
        self._flush()

    def recv(self) -> bytes:
        """Some plaintext, or b"" at close_notify / EOF."""
        while True:
            try:
                return self.obj.read(CHUNK)
            except ssl.SSLWantReadError:
                self._flush()
                self._fill()
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""

    def recv_until_eof(self) -> bytes:
        data = bytearray()
        while chunk := self.recv():
            data += chunk
        return bytes(data)

    def exchange(self, payload: bytes) -> bytes:
        """Send ``payload`` while reading as many bytes back, on this one thread."""
        self.sock.setblocking(False)
        received, sent, pending = bytearray(), 0, bytearray()
        with selectors.DefaultSelector() as sel:
            sel.register(self.sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
            while len(received) < len(payload):
                if sent < len(payload) and len(pending) < 4 * CHUNK:
                    self.obj.write(payload[sent : sent + CHUNK])
                    sent += CHUNK
                pending += self.outgoing.read()
                events = sel.select(IO_TIMEOUT)
                assert events, f"stalled after {len(received)} of {len(payload)} bytes"
                mask = events[0][1]
                if mask & selectors.EVENT_WRITE and pending:
                    with contextlib.suppress(BlockingIOError):
                        del pending[: self.sock.send(pending)]
                if mask & selectors.EVENT_READ:
                    self._read_available(received)
                want = selectors.EVENT_READ | (selectors.EVENT_WRITE if pending else 0)
                sel.modify(self.sock, want)
        self.sock.setblocking(True)
        self.sock.settimeout(IO_TIMEOUT)
        return bytes(received)

    def _read_available(self, received: bytearray) -> None:
        with contextlib.suppress(BlockingIOError):
            data = self.sock.recv(CHUNK)
            assert data, "connection closed during the exchange"
            self.incoming.write(data)
        while True:
            try:
                received += self.obj.read(CHUNK)
            except ssl.SSLWantReadError:
                return
