"""go-plugin's internal gRPC services, one module each (docs/protocol.md §8)."""
