"""The pure parts of the example Terraform host: complete objects from a schema, cty msgpack."""

from __future__ import annotations

import msgpack
import pytest

from pyvider_rpcplugin_sync._protos import tfplugin5_pb2 as tf5
from pyvider_rpcplugin_sync.examples.terraform_host import UNKNOWN, full_object, pack, unpack

pytestmark = pytest.mark.timeout(10)

Nested = tf5.Schema.NestedBlock


def block(attributes: tuple[str, ...], **nested: tuple[int, tf5.Schema.Block]) -> tf5.Schema.Block:
    return tf5.Schema.Block(
        attributes=[tf5.Schema.Attribute(name=name, type=b'"string"') for name in attributes],
        block_types=[
            Nested(type_name=name, nesting=mode, block=inner)
            for name, (mode, inner) in nested.items()
        ],
    )


RULE = block(("port",))
SCHEMA = block(
    ("name", "id"),
    rule=(Nested.LIST, RULE),
    tag=(Nested.SET, RULE),
    labels=(Nested.MAP, RULE),
    timeouts=(Nested.SINGLE, block(("create",))),
)


def test_missing_attributes_are_null_and_missing_blocks_empty() -> None:
    assert full_object(SCHEMA, {"name": "x"}) == {
        "name": "x",
        "id": None,
        "rule": [],
        "tag": [],
        "labels": {},
        "timeouts": None,
    }


def test_nested_blocks_are_completed_too() -> None:
    value = full_object(
        SCHEMA,
        {"rule": [{"port": "80"}], "labels": {"a": {}}, "timeouts": {}},
    )
    assert value["rule"] == [{"port": "80"}]
    assert value["labels"] == {"a": {"port": None}}
    assert value["timeouts"] == {"create": None}


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(ValueError, match="no such attribute or block: colour, size"):
        full_object(SCHEMA, {"size": 1, "colour": "red"})


def test_unknown_values_round_trip_as_cty_extension_0() -> None:
    packed = pack({"id": UNKNOWN, "n": 3, "s": None})
    assert msgpack.unpackb(packed, raw=False, ext_hook=lambda code, data: (code, data)) == {
        "id": (0, b"\x00"),
        "n": 3,
        "s": None,
    }
    assert unpack(packed) == {"id": UNKNOWN, "n": 3, "s": None}
    refined = msgpack.packb({"id": msgpack.ExtType(12, b"\x81\x01\xc3")})
    assert unpack(refined) == {"id": UNKNOWN}  # a refined unknown is still unknown
    assert unpack(b"") is None


def test_other_extensions_are_refused() -> None:
    with pytest.raises(ValueError, match="unexpected msgpack extension type 5"):
        unpack(msgpack.packb(msgpack.ExtType(5, b"")))
