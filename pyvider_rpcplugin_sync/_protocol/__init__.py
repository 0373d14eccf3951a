"""The go-plugin wire protocol without I/O: the handshake line, Go's parsing rules,
reattach configurations and hclog records."""
