"""A sync Python host that drives a Terraform provider binary, as Terraform does.

An example, not a framework: it starts a provider (any go-plugin provider built with
terraform-plugin-sdk/v2 or terraform-plugin-framework, or this library's own) with
Terraform's handshake (cookie ``TF_PLUGIN_MAGIC_COOKIE``, protocol versions 5 and 6,
AutoMTLS), reads its schema, configures it, plans and applies one resource, reads it
back, destroys it and stops the provider (``Shutdown``, as Terraform does)::

    with TerraformProvider("./terraform-provider-random") as provider:
        provider.configure({})
        planned = provider.plan_create("random_string", {"length": 16, "special": False})
        created = provider.apply(planned)
        assert provider.read(created).state["result"] == created.state["result"]
        provider.destroy(created)

Values are cty values in msgpack, as on Terraform's wire: objects with every
attribute of the schema (``None`` for null), an unknown value ("known after apply")
is the ``UNKNOWN`` sentinel. Attributes and, in protocol 5, nested blocks are
filled in from the schema; protocol 6 nested attribute types are not handled.

Command line: ``python -m pyvider_rpcplugin_sync.examples.terraform_host PROVIDER
TYPE [NAME=JSON]...`` creates, reads and destroys one resource and prints its state
as JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Final

import msgpack

from pyvider_rpcplugin_sync import HandshakeConfig, PluginProcess, RPCPluginError
from pyvider_rpcplugin_sync._protos import (
    tfplugin5_pb2,
    tfplugin5_pb2_grpc,
    tfplugin6_pb2,
    tfplugin6_pb2_grpc,
)

# Terraform's handshake: the same cookie for every provider, protocols 5 and 6.
TF_HANDSHAKE: Final = HandshakeConfig(
    magic_cookie_key="TF_PLUGIN_MAGIC_COOKIE",
    magic_cookie_value="d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
    protocol_versions=(5, 6),
)
CALL_TIMEOUT: Final = 60.0
UNKNOWN_EXT_CODES: Final = (0, 12)  # unknown, refined unknown


class _Unknown:
    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()


@dataclass(frozen=True)
class _Protocol:
    """The RPC and message names that differ between protocol 5 and 6."""

    messages: ModuleType
    stub: Any
    get_schema: str
    validate_provider: str
    validate_resource: str
    configure: str


_PROTOCOLS: Final = {
    5: _Protocol(tfplugin5_pb2, tfplugin5_pb2_grpc.ProviderStub, "GetSchema",
                 "PrepareProviderConfig", "ValidateResourceTypeConfig", "Configure"),
    6: _Protocol(tfplugin6_pb2, tfplugin6_pb2_grpc.ProviderStub, "GetProviderSchema",
                 "ValidateProviderConfig", "ValidateResourceConfig", "ConfigureProvider"),
}  # fmt: skip


class ProviderError(RPCPluginError):
    """The provider answered with error diagnostics."""


@dataclass(frozen=True)
class Planned:
    """A planned change: what ``apply`` sends back to the provider."""

    type_name: str
    config: dict[str, Any] | None
    prior: bytes  # msgpack of the prior state (nil: none)
    planned: bytes  # msgpack of the planned state, as the provider returned it
    private: bytes
    state: dict[str, Any] | None  # the planned state, decoded (UNKNOWN where not known)


@dataclass(frozen=True)
class Resource:
    """A resource's state as the provider returned it (``state`` None: destroyed)."""

    type_name: str
    state: dict[str, Any] | None
    private: bytes
    raw: bytes


def pack(value: Any) -> bytes:
    """A cty value as msgpack (``None`` is null)."""
    packed: bytes = msgpack.packb(value, default=_encode_unknown)
    return packed


def unpack(data: bytes) -> Any:
    """msgpack cty value -> Python (``UNKNOWN`` for unknown values)."""
    return msgpack.unpackb(data, ext_hook=_decode_ext, raw=False) if data else None


def _encode_unknown(value: Any) -> Any:
    if value is UNKNOWN:
        return msgpack.ExtType(0, b"\x00")
    raise TypeError(f"cannot encode {type(value).__name__} as a cty value")


def _decode_ext(code: int, data: bytes) -> Any:
    if code in UNKNOWN_EXT_CODES:
        return UNKNOWN
    raise ValueError(f"unexpected msgpack extension type {code} in a cty value")


def full_object(block: Any, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` as a complete object of ``block``: every attribute (``None`` when not
    given) and nested block (empty for list/set/map blocks, else null)."""
    names = {a.name for a in block.attributes} | {b.type_name for b in _blocks(block)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"no such attribute or block: {', '.join(unknown)}")
    result = {a.name: values.get(a.name) for a in block.attributes}
    for nested in _blocks(block):
        given = values.get(nested.type_name)
        mode = nested.NestingMode.Name(nested.nesting)
        if given is None:
            empty: dict[str, Any] = {"LIST": [], "SET": [], "MAP": {}}
            given = empty.get(mode)
        elif mode in ("LIST", "SET"):
            given = [full_object(nested.block, item) for item in given]
        elif mode == "MAP":
            given = {key: full_object(nested.block, item) for key, item in given.items()}
        else:
            given = full_object(nested.block, given)
        result[nested.type_name] = given
    return result


def _blocks(block: Any) -> Sequence[Any]:
    return list(getattr(block, "block_types", ()))  # not in this library's protocol 6 subset


def _check(diagnostics: Sequence[Any], what: str) -> None:
    errors = [d for d in diagnostics if d.severity == 1]  # Diagnostic.ERROR
    if errors:
        details = "; ".join(f"{d.summary}: {d.detail}" if d.detail else d.summary for d in errors)
        raise ProviderError(f"{what}: {details}")


class TerraformProvider:
    """One provider process, driven through Terraform's plugin protocol 5 or 6."""

    def __init__(
        self,
        binary: str,
        *,
        tls: bool = True,
        env: Mapping[str, str] | None = None,
        start_timeout: float = 60.0,
        terraform_version: str = "1.11.4",
    ) -> None:
        self._plugin = PluginProcess(
            [binary], handshake=TF_HANDSHAKE, tls=tls, env=env or {}, start_timeout=start_timeout
        )
        self.terraform_version = terraform_version
        self._schema: Any = None

    def __enter__(self) -> TerraformProvider:
        self._plugin.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the provider: ``Shutdown``, as Terraform ends every provider process."""
        self._plugin.close()

    @property
    def process(self) -> PluginProcess[Any]:
        return self._plugin

    @property
    def protocol_version(self) -> int:
        """The protocol the provider chose (5 or 6); the provider must be started."""
        version = self._plugin.negotiated_version
        if version is None:
            raise RPCPluginError("the provider is not started")
        return version

    @property
    def _protocol(self) -> _Protocol:
        return _PROTOCOLS[self.protocol_version]

    def _call(self, method: str, request: Any) -> Any:
        stub = self._plugin.make_stub(self._protocol.stub)
        return getattr(stub, method)(request, timeout=CALL_TIMEOUT)

    def schema(self) -> Any:
        """The ``GetProviderSchema.Response`` (read once; the same message in 5 and 6)."""
        if self._schema is None:
            pb = self._protocol.messages
            response = self._call(self._protocol.get_schema, pb.GetProviderSchema.Request())
            _check(response.diagnostics, "GetProviderSchema")
            self._schema = response
        return self._schema

    def resource_block(self, type_name: str) -> Any:
        schemas = self.schema().resource_schemas
        if type_name not in schemas:
            raise ValueError(f"the provider has no resource {type_name!r}: {sorted(schemas)}")
        return schemas[type_name].block

    def configure(self, config: Mapping[str, Any]) -> None:
        """Validate and configure the provider with ``config`` (provider attributes)."""
        pb, protocol = self._protocol.messages, self._protocol
        value = pb.DynamicValue(msgpack=pack(full_object(self.schema().provider.block, config)))
        validated = self._call(
            protocol.validate_provider,
            getattr(pb, protocol.validate_provider).Request(config=value),
        )
        _check(validated.diagnostics, protocol.validate_provider)
        configured = self._call(
            protocol.configure,
            getattr(pb, protocol.configure).Request(
                terraform_version=self.terraform_version, config=value
            ),
        )
        _check(configured.diagnostics, protocol.configure)

    def plan_create(self, type_name: str, config: Mapping[str, Any]) -> Planned:
        """Validate and plan a new resource. The proposed new state is the configuration
        (Terraform's rule with no prior state); the provider fills in computed values."""
        pb, protocol = self._protocol.messages, self._protocol
        values = full_object(self.resource_block(type_name), config)
        value = pb.DynamicValue(msgpack=pack(values))
        validated = self._call(
            protocol.validate_resource,
            getattr(pb, protocol.validate_resource).Request(type_name=type_name, config=value),
        )
        _check(validated.diagnostics, protocol.validate_resource)
        return self._plan(type_name, values, prior=pack(None), proposed=pack(values))

    def _plan(
        self, type_name: str, config: dict[str, Any] | None, *, prior: bytes, proposed: bytes
    ) -> Planned:
        pb = self._protocol.messages
        response = self._call(
            "PlanResourceChange",
            pb.PlanResourceChange.Request(
                type_name=type_name,
                prior_state=pb.DynamicValue(msgpack=prior),
                proposed_new_state=pb.DynamicValue(msgpack=proposed),
                config=pb.DynamicValue(msgpack=pack(config)),
            ),
        )
        _check(response.diagnostics, "PlanResourceChange")
        planned = response.planned_state.msgpack
        return Planned(type_name, config, prior, planned, response.planned_private, unpack(planned))

    def apply(self, planned: Planned) -> Resource:
        """Apply a planned change; the new state (``state`` None after a destroy)."""
        pb = self._protocol.messages
        response = self._call(
            "ApplyResourceChange",
            pb.ApplyResourceChange.Request(
                type_name=planned.type_name,
                prior_state=pb.DynamicValue(msgpack=planned.prior),
                planned_state=pb.DynamicValue(msgpack=planned.planned),
                config=pb.DynamicValue(msgpack=pack(planned.config)),
                planned_private=planned.private,
            ),
        )
        _check(response.diagnostics, "ApplyResourceChange")
        raw = response.new_state.msgpack
        return Resource(planned.type_name, unpack(raw), response.private, raw)

    def read(self, resource: Resource) -> Resource:
        """Refresh: the resource as the provider sees it now."""
        pb = self._protocol.messages
        response = self._call(
            "ReadResource",
            pb.ReadResource.Request(
                type_name=resource.type_name,
                current_state=pb.DynamicValue(msgpack=resource.raw),
                private=resource.private,
            ),
        )
        _check(response.diagnostics, "ReadResource")
        raw = response.new_state.msgpack
        return Resource(resource.type_name, unpack(raw), response.private, raw)

    def destroy(self, resource: Resource) -> Resource:
        """Plan and apply the resource's destruction (null proposed state and config)."""
        planned = self._plan(resource.type_name, None, prior=resource.raw, proposed=pack(None))
        return self.apply(planned)


def main(argv: Sequence[str]) -> int:
    if len(argv) < 2:
        print((__doc__ or "").split("\n\n")[-1].strip(), file=sys.stderr)
        return 2
    binary, type_name, *pairs = argv
    config: dict[str, Any] = {}
    for pair in pairs:
        name, _, text = pair.partition("=")
        config[name] = json.loads(text)
    with TerraformProvider(binary) as provider:
        provider.configure({})
        created = provider.apply(provider.plan_create(type_name, config))
        read = provider.read(created)
        provider.destroy(read)
    print(json.dumps({"protocol": provider.protocol_version, "state": read.state}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
