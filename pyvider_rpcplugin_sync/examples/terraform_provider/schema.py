"""The pyecho provider's schemas, as tfplugin6 ``Schema`` messages.

- provider ``pyecho``: optional ``prefix`` put in front of every echo.
- data source ``pyecho_echo``: ``input`` -> computed ``result`` (prefix + input).
- data source ``pyecho_crash``: its read raises, to show how a provider bug
  reaches Terraform (the Python traceback, then a failed run).
- resource ``pyecho_file``: a text file at ``path`` holding ``content``, with a
  computed ``id``; changing ``path`` replaces it.
"""

from __future__ import annotations

from typing import Final

from pyvider_rpcplugin_sync._protos import tfplugin6_pb2 as tf

from .cty import type_json

PROVIDER_ADDRESS: Final = "registry.terraform.io/pyvider/pyecho"
ECHO: Final = "pyecho_echo"
CRASH: Final = "pyecho_crash"
FILE: Final = "pyecho_file"

_STRING = type_json("string")


def _attribute(name: str, description: str, *, mode: str) -> tf.Schema.Attribute:
    return tf.Schema.Attribute(
        name=name,
        type=_STRING,
        description=description,
        required=mode == "required",
        optional=mode == "optional",
        computed=mode == "computed",
    )


def _schema(description: str, *attributes: tf.Schema.Attribute) -> tf.Schema:
    return tf.Schema(
        version=0, block=tf.Schema.Block(description=description, attributes=attributes)
    )


PROVIDER_SCHEMA: Final = _schema(
    "Echoes strings and manages text files; an example served by pyvider_rpcplugin_sync.",
    _attribute("prefix", "Put in front of every echo result.", mode="optional"),
)

DATA_SOURCE_SCHEMAS: Final = {
    ECHO: _schema(
        "Echoes its input, after the provider's prefix.",
        _attribute("input", "The string to echo.", mode="required"),
        _attribute("result", "The provider's prefix followed by input.", mode="computed"),
    ),
    CRASH: _schema(
        "Raises an exception when read: what a bug in a Python provider looks like.",
        _attribute("message", "The exception's message.", mode="required"),
    ),
}

RESOURCE_SCHEMAS: Final = {
    FILE: _schema(
        "A text file on the machine that runs the provider.",
        _attribute("id", "A random identifier chosen at creation.", mode="computed"),
        _attribute("path", "Where the file lives; changing it replaces the file.", mode="required"),
        _attribute("content", "The file's text (UTF-8).", mode="required"),
    ),
}


def attribute_names(schema: tf.Schema) -> list[str]:
    return [attribute.name for attribute in schema.block.attributes]
