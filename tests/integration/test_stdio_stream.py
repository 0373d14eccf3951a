"""plugin.GRPCStdio over a real grpc server: what was queued before a stop still goes out."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from google.protobuf import empty_pb2

from pyvider_rpcplugin_sync._protos.goplugin_pb2 import StdioData
from pyvider_rpcplugin_sync._services.stdio import STDERR, STDOUT, StdioQueue, stdio_handler

pytestmark = pytest.mark.timeout(30)


def test_chunks_queued_before_the_close_reach_the_host_and_the_stream_ends() -> None:
    queue = StdioQueue()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((stdio_handler(queue),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stream = channel.unary_stream(
                "/plugin.GRPCStdio/StreamStdio",
                request_serializer=empty_pb2.Empty.SerializeToString,
                response_deserializer=StdioData.FromString,
            )(empty_pb2.Empty(), timeout=20)
            queue.put(STDOUT, b"first")
            first = next(stream)
            # A print() to stderr is two writes; the stop closes the queue between them
            # and the stream must still send both before it ends.
            queue.put(STDERR, b"to stderr")
            queue.put(STDERR, b"\n")
            queue.close()
            rest = list(stream)
    finally:
        server.stop(None).wait()
    assert (first.channel, first.data) == (STDOUT, b"first")
    assert b"".join(d.data for d in rest) == b"to stderr\n"
    assert {d.channel for d in rest} == {STDERR}
