"""go-plugin's internal gRPC services, one module each.

The wire is in docs/protocol.md, "The internal services".
"""
