"""cty values as Terraform puts them on the wire: msgpack (tfplugin6 ``DynamicValue``).

Only what the example's schemas use: objects of primitive attributes (string,
number, bool), null and unknown. Objects are msgpack maps keyed by attribute
name; an unknown value ("known after apply") is msgpack extension type 0, and
newer Terraform may send refined unknowns as extension type 12.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final, cast

import msgpack

from pyvider_rpcplugin_sync._protos import tfplugin6_pb2 as tf

UNKNOWN_EXT_CODE: Final = 0
REFINED_UNKNOWN_EXT_CODE: Final = 12


class _Unknown:
    """The one unknown value: a placeholder Terraform fills in after apply."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()

Object = dict[str, Any]


class CtyError(ValueError):
    """A DynamicValue this provider cannot read."""


def _ext_hook(code: int, data: bytes) -> Any:
    if code in (UNKNOWN_EXT_CODE, REFINED_UNKNOWN_EXT_CODE):
        return UNKNOWN
    raise CtyError(f"unexpected msgpack extension type {code} in a cty value")


def _default(value: Any) -> Any:
    if value is UNKNOWN:
        return msgpack.ExtType(UNKNOWN_EXT_CODE, b"\x00")
    raise TypeError(f"cannot encode {type(value).__name__} as a cty value")


def decode(value: tf.DynamicValue) -> Object | None:
    """An object (attribute -> value) or None for a null object."""
    if value.msgpack:
        try:
            decoded = msgpack.unpackb(value.msgpack, ext_hook=_ext_hook, raw=False)
        except (ValueError, msgpack.ExtraData) as exc:
            raise CtyError(f"malformed msgpack DynamicValue: {exc}") from exc
    elif value.json:
        try:
            decoded = json.loads(value.json)
        except ValueError as exc:
            raise CtyError(f"malformed JSON DynamicValue: {exc}") from exc
    else:
        return None  # an unset DynamicValue, e.g. no prior state
    if decoded is not None and not isinstance(decoded, dict):
        raise CtyError(f"expected a cty object, got {type(decoded).__name__}")
    return cast("Object | None", decoded)


def encode(value: Mapping[str, Any] | None) -> tf.DynamicValue:
    """``value`` (None for a null object) as a msgpack DynamicValue."""
    packed = msgpack.packb(None if value is None else dict(value), default=_default)
    return tf.DynamicValue(msgpack=packed)


def type_json(name: str) -> bytes:
    """A primitive cty type as ``Schema.Attribute.type`` expects it: ``b'"string"'``."""
    return json.dumps(name).encode()
