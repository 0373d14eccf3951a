"""Reattach configurations: how to reach a plugin that is already running.

The wire is in docs/protocol.md, "Reattach".

Pure parsing, formatting and checks, no I/O. The JSON shape is go-plugin's
``ReattachConfig`` as Terraform serialises it in ``TF_REATTACH_PROVIDERS``::

    {"registry.terraform.io/acme/x": {"Protocol": "grpc", "ProtocolVersion": 6,
     "Pid": 123, "Test": true, "Addr": {"Network": "unix", "String": "/tmp/plugin1"}}}

Malformed input raises ``ValueError`` naming the offending key, like ``json.loads``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from .._constants import NETWORK_TCP, NETWORK_UNIX, PROTOCOL_GRPC, PROTOCOL_NETRPC
from .._errors import HandshakeError, ProtocolVersionError

TF_REATTACH_PROVIDERS = "TF_REATTACH_PROVIDERS"


@dataclass(frozen=True)
class ReattachConfig:
    """Where a running plugin listens, and whether a host may shut it down.

    ``test=True`` means the plugin belongs to someone else (a debugger, a test
    harness): closing the host then neither calls ``Shutdown`` nor waits for it.
    """

    network: str
    address: str
    protocol: str = PROTOCOL_GRPC
    protocol_version: int | None = None
    pid: int | None = None
    test: bool = False

    def __post_init__(self) -> None:
        if self.network not in (NETWORK_UNIX, NETWORK_TCP):
            raise ValueError(f"reattach network must be 'unix' or 'tcp', not {self.network!r}")
        if not self.address:
            raise ValueError("reattach address must not be empty")
        if self.pid is not None and (_not_int(self.pid) or self.pid < 0):
            raise ValueError(f"reattach pid must be a non-negative int, not {self.pid!r}")
        version = self.protocol_version
        if version is not None and (_not_int(version) or version < 0):
            raise ValueError(f"reattach protocol version must be an int, not {version!r}")

    @property
    def target(self) -> str:
        """The gRPC target: ``unix:<path>`` or ``host:port``."""
        return f"unix:{self.address}" if self.network == NETWORK_UNIX else self.address

    # --- go-plugin's JSON shape -------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReattachConfig:
        """Parse go-plugin's shape: Protocol, ProtocolVersion, Addr, Pid, Test."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a reattach config must be a JSON object, not {type(data).__name__}")
        addr = data.get("Addr")
        if not isinstance(addr, Mapping):
            raise ValueError("reattach config needs an 'Addr' object with 'Network' and 'String'")
        addr = cast("Mapping[str, object]", addr)
        network, address = addr.get("Network"), addr.get("String")
        if not isinstance(network, str) or not isinstance(address, str):
            raise ValueError("reattach 'Addr' needs string 'Network' and 'String' fields")
        protocol = data.get("Protocol") or PROTOCOL_NETRPC  # go-plugin: empty means netrpc
        if not isinstance(protocol, str):
            raise ValueError(f"reattach 'Protocol' must be a string, not {protocol!r}")
        test = data.get("Test", False)
        if not isinstance(test, bool):
            raise ValueError(f"reattach 'Test' must be true or false, not {test!r}")
        return cls(
            network=network,
            address=address,
            protocol=protocol,
            # Go writes 0 for "unset" (omitted before 1.4.1).
            protocol_version=_optional_int(data.get("ProtocolVersion"), "ProtocolVersion"),
            pid=_optional_int(data.get("Pid"), "Pid"),
            test=test,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "Protocol": self.protocol,
            "ProtocolVersion": self.protocol_version or 0,
            "Addr": {"Network": self.network, "String": self.address},
            "Pid": self.pid or 0,
            "Test": self.test,
        }

    @classmethod
    def from_json(cls, text: str | bytes) -> ReattachConfig:
        return cls.from_dict(_load(text))

    def to_json(self) -> str:
        import json  # imported on use: most hosts never reattach

        return json.dumps(self.to_dict())


def reattach_version(config: ReattachConfig, accepted: Iterable[int]) -> int:
    """The protocol version to use with ``config``: its own, else the host's highest.

    Raises like a failed handshake when the protocol is not gRPC or the version
    is not one the host accepts.
    """
    versions = sorted(set(accepted))
    if config.protocol != PROTOCOL_GRPC:
        raise HandshakeError(
            f'unsupported plugin protocol "{config.protocol}". Supported: [{PROTOCOL_GRPC}]',
            hint="this library speaks only go-plugin's gRPC protocol, not net/rpc",
        )
    if config.protocol_version is None:
        return versions[-1]
    if config.protocol_version not in versions:
        raise ProtocolVersionError(
            f"reattach protocol version {config.protocol_version} is not one of {versions}",
            hint="reattach with a host that accepts the plugin's protocol version",
        )
    return config.protocol_version


def parse_tf_reattach_providers(text: str | bytes) -> dict[str, ReattachConfig]:
    """``TF_REATTACH_PROVIDERS``: provider address -> config."""
    data = _load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{TF_REATTACH_PROVIDERS} must be a JSON object keyed by provider address")
    configs: dict[str, ReattachConfig] = {}
    entries = cast("dict[str, Any]", data)  # JSON object keys are strings
    for name, entry in entries.items():
        try:
            configs[name] = ReattachConfig.from_dict(entry)
        except ValueError as exc:
            raise ValueError(f"{TF_REATTACH_PROVIDERS}[{name!r}]: {exc}") from None
    return configs


def format_tf_reattach_providers(configs: Mapping[str, ReattachConfig]) -> str:
    """The inverse of ``parse_tf_reattach_providers``."""
    import json

    return json.dumps({name: config.to_dict() for name, config in configs.items()})


def _load(text: str | bytes) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError as exc:
        raise ValueError(f"reattach config is not valid JSON: {exc}") from None


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def _optional_int(value: object, key: str) -> int | None:
    if value is None:
        return None
    if _not_int(value):
        raise ValueError(f"reattach {key!r} must be an integer, not {value!r}")
    assert isinstance(value, int)
    return value or None
