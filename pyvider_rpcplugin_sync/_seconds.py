"""Durations given by users: seconds as a real number, checked once where they are taken.

Pure: a ``ValueError`` that names the option and says what it takes, so that a
negative grace or a NaN timeout fails when it is given, not as a hang or an
instant timeout later.
"""

from __future__ import annotations

import math


def seconds(name: str, value: object, *, zero: bool = True) -> float:
    """``value`` as float seconds: finite, 0 or more (above 0 unless ``zero``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number of seconds, not {value!r}")
    if value < 0 or (value == 0 and not zero):
        least = "0 or more" if zero else "above 0"
        raise ValueError(f"{name} must be seconds ({least}), not {value!r}")
    return float(value)


def optional_seconds(name: str, value: object, *, zero: bool = True) -> float | None:
    """``seconds``, or None (no bound) for None."""
    return None if value is None else seconds(name, value, zero=zero)
