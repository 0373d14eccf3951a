"""Not a plugin: a plain HTTP/2 server (the ``h2`` library) that answers 404 to everything.

It prints a valid go-plugin handshake line for its unix socket, as a hostile or
misconfigured program could. A host must refuse it: it is no gRPC server.
Usage: ``http2_404.py`` (the socket goes in PLUGIN_UNIX_SOCKET_DIR).
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import threading

import h2.config
import h2.connection
import h2.events


def answer(conn: socket.socket) -> None:
    http2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    http2.initiate_connection()
    conn.sendall(http2.data_to_send())
    with conn:
        while data := conn.recv(65536):
            for event in http2.receive_data(data):
                if isinstance(event, h2.events.RequestReceived):
                    headers = [(":status", "404"), ("content-type", "text/plain")]
                    http2.send_headers(event.stream_id, headers)
                    http2.send_data(event.stream_id, b"not found\n", end_stream=True)
            conn.sendall(http2.data_to_send())


def main() -> int:
    directory = os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or tempfile.mkdtemp()
    path = os.path.join(directory, "http2-404")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen()
    sys.stdout.write(f"1|1|unix|{path}|grpc|\n")
    sys.stdout.flush()
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=answer, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    raise SystemExit(main())
