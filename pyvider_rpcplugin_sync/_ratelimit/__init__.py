"""The token bucket, and the grpc interceptors that take tokens from it."""
