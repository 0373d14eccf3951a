"""AutoMTLS certificates and credentials, and the TLS bridge for curves grpcio lacks."""
