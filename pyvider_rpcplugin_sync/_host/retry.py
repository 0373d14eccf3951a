"""Opt-in retries of idempotent methods: ``RetryPolicy``, turned into grpc's own retry policy.

grpc-core retries a call inside the channel (no Python on the call path), with
exponential backoff and jitter (each pause the backoff +- 20 %), under the call's one
deadline, as long as no response has come and the request fits grpc's retry buffer
(``grpc.per_rpc_retry_buffer_size``, 256 KiB). This module only builds the channel's
service config and options from a small frozen object, and checks it once, when
``HostConfig`` is made.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from .._constants import INTERNAL_SERVICES

# grpc-core clamps maxAttempts to 5 (it does not fail): more is refused here instead.
MAX_ATTEMPTS = 5
_SERVICE_CONFIG = "grpc.service_config"
_ENABLE_RETRIES = "grpc.enable_retries"


@dataclass(frozen=True)
class RetryPolicy:
    """Retry the calls of ``methods`` that fail with one of ``codes`` (UNAVAILABLE).

    Only for idempotent methods: a retried call may have run on the plugin already.

    Args:
        methods: full method paths (``"/pkg.Service/Method"``) or whole services
            (``"pkg.Service"``); never the library's own services (health, controller,
            stdio, broker).
        max_attempts: attempts in all, the first one included: 2 to 5 (grpc's bound).
        initial_backoff: seconds before the first retry; each pause is the current
            backoff +- 20 % (grpc's jitter), so that hosts do not retry in lockstep.
        max_backoff: the backoff's ceiling, in seconds.
        multiplier: the backoff grows by this factor after each attempt (1 or more).
        codes: the status codes that are retried; only UNAVAILABLE unless given.
    """

    methods: Sequence[str]
    max_attempts: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 1.0
    multiplier: float = 2.0
    codes: frozenset[grpc.StatusCode] = field(
        default_factory=lambda: frozenset({grpc.StatusCode.UNAVAILABLE})
    )

    def __post_init__(self) -> None:
        fix = object.__setattr__  # frozen: normalise once, here
        if isinstance(self.methods, str):
            raise TypeError("methods must be a list of method paths or service names, not a str")
        fix(self, "methods", tuple(self.methods))
        fix(self, "codes", frozenset(self.codes))
        if not self.methods:
            raise ValueError("RetryPolicy needs at least one method or service in methods=")
        for method in self.methods:
            _method_name(method)  # raises for a malformed or internal name
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int):
            raise TypeError(f"max_attempts must be an int, not {attempts!r}")
        if not 2 <= attempts <= MAX_ATTEMPTS:
            raise ValueError(
                f"max_attempts must be 2 to {MAX_ATTEMPTS} (the first attempt included; "
                f"grpc allows no more), not {attempts}"
            )
        for name in ("initial_backoff", "max_backoff"):
            _seconds(getattr(self, name), name)
        if self.max_backoff < self.initial_backoff:
            raise ValueError("max_backoff must be at least initial_backoff")
        multiplier = self.multiplier
        if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)):
            raise TypeError(f"multiplier must be a number, not {multiplier!r}")
        if not (math.isfinite(multiplier) and multiplier >= 1):
            raise ValueError(f"multiplier must be 1 or more, not {multiplier!r}")
        if not self.codes:
            raise ValueError("codes must name at least one status code (UNAVAILABLE)")
        for code in self.codes:
            if not isinstance(code, grpc.StatusCode) or code is grpc.StatusCode.OK:
                raise ValueError(f"codes must be grpc.StatusCode values other than OK: {code!r}")

    def service_config(self) -> str:
        """The channel's service config (JSON) holding this policy."""
        policy = {
            "maxAttempts": self.max_attempts,
            "initialBackoff": _duration(self.initial_backoff),
            "maxBackoff": _duration(self.max_backoff),
            "backoffMultiplier": self.multiplier,
            "retryableStatusCodes": sorted(code.name for code in self.codes),
        }
        names = [_method_name(method) for method in self.methods]
        return json.dumps({"methodConfig": [{"name": names, "retryPolicy": policy}]})


def retry_options(
    policy: RetryPolicy | None, options: Iterable[tuple[str, Any]]
) -> tuple[tuple[str, Any], ...]:
    """The grpc channel options ``policy`` adds to ``options`` (none without a policy)."""
    if policy is None:
        return ()
    if not isinstance(policy, RetryPolicy):
        raise TypeError(f"retry must be a RetryPolicy, not {policy!r}")
    keys = dict(options)
    if _SERVICE_CONFIG in keys:
        raise ValueError(
            "retry= and a grpc.service_config in channel_options both configure the "
            "channel's service config; give one of them (put the retryPolicy in yours)"
        )
    if keys.get(_ENABLE_RETRIES, 1) == 0:
        raise ValueError("retry= needs grpc retries; channel_options sets grpc.enable_retries 0")
    extra: tuple[tuple[str, Any], ...] = ((_SERVICE_CONFIG, policy.service_config()),)
    if _ENABLE_RETRIES not in keys:
        extra += ((_ENABLE_RETRIES, 1),)
    return extra


def _method_name(method: str) -> dict[str, str]:
    """``/pkg.Service/Method`` or ``pkg.Service`` as a service config name entry."""
    if not isinstance(method, str):
        raise TypeError(f"methods must be strings, not {method!r}")
    parts = method.split("/")
    if method.startswith("/") and len(parts) == 3 and all(parts[1:]):
        service, entry = parts[1], {"service": parts[1], "method": parts[2]}
    elif "/" not in method and method:
        service, entry = method, {"service": method}
    else:
        raise ValueError(f"{method!r} is neither '/pkg.Service/Method' nor 'pkg.Service'")
    if service in INTERNAL_SERVICES:
        raise ValueError(f"{service} is one of the library's own services; it is never retried")
    return entry


def _seconds(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be seconds, not {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be seconds above 0, not {value!r}")


def _duration(seconds: float) -> str:
    """Seconds in the service config's duration format (``"0.25s"``)."""
    return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
