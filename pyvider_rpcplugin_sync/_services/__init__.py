"""go-plugin's internal gRPC services, one module each (protocol.md §4)."""
