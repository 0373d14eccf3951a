"""Certificates as a Go peer makes them (go-plugin's mtls.go), for tests and benchmarks.

Our own identities are P-256 (``certs.generate_identity``). A Go host or plugin uses
ECDSA P-521 signed with SHA-512, valid for about 30 years (docs/protocol.md, "AutoMTLS"); this
stands in for one without Go.
"""

from __future__ import annotations

import datetime

from .certs import Identity, self_signed_identity

# mtls.go: NotAfter = now + 262980 h (about 30 years).
GO_VALIDITY = datetime.timedelta(hours=262980)


def go_style_identity(curve: str = "secp521r1") -> Identity:
    """A fresh self-signed ``localhost`` certificate as go-plugin's AutoMTLS makes it."""
    return self_signed_identity(curve, GO_VALIDITY)
