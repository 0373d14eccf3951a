"""Sockets and channels: where a server listens, the one dialer, AutoMTLS and the
TLS bridge, and the guard on the channels handed to users."""
