"""yamux, the stream multiplexer go-plugin uses to run every gRPC connection of a host and a
plugin over one socket: a sans-IO frame codec and session (``frames``, ``session``) and a
threaded driver over a connected socket (``driver``)."""
