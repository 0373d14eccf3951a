"""Reattach configs: go-plugin's JSON shape and Terraform's TF_REATTACH_PROVIDERS."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyvider_rpcplugin_sync import HandshakeError, ProtocolVersionError
from pyvider_rpcplugin_sync._protocol.reattach import (
    ReattachConfig,
    format_tf_reattach_providers,
    parse_tf_reattach_providers,
    reattach_version,
)

pytestmark = pytest.mark.timeout(60)

TERRAFORM = """{"registry.terraform.io/acme/x": {"Protocol": "grpc", "ProtocolVersion": 6,
  "Pid": 123, "Test": true, "Addr": {"Network": "unix", "String": "/tmp/plugin1"}}}"""


def test_terraform_example() -> None:
    configs = parse_tf_reattach_providers(TERRAFORM)
    assert configs == {
        "registry.terraform.io/acme/x": ReattachConfig(
            network="unix",
            address="/tmp/plugin1",
            protocol="grpc",
            protocol_version=6,
            pid=123,
            test=True,
        )
    }
    assert configs["registry.terraform.io/acme/x"].target == "unix:/tmp/plugin1"


def test_go_defaults() -> None:
    config = ReattachConfig.from_dict({"Addr": {"Network": "tcp", "String": "127.0.0.1:1234"}})
    assert config.protocol == "netrpc"  # go-plugin: an empty protocol means net/rpc
    assert config.protocol_version is None
    assert config.pid is None
    assert config.test is False
    assert config.target == "127.0.0.1:1234"
    zeros = {
        "Protocol": "grpc",
        "ProtocolVersion": 0,
        "Pid": 0,
        "Addr": {"Network": "unix", "String": "/s"},
    }
    assert ReattachConfig.from_dict(zeros).pid is None
    assert ReattachConfig.from_dict(zeros).protocol_version is None


def test_to_dict_is_go_plugins_shape() -> None:
    config = ReattachConfig(network="unix", address="/s", protocol_version=5, pid=9)
    assert config.to_dict() == {
        "Protocol": "grpc",
        "ProtocolVersion": 5,
        "Addr": {"Network": "unix", "String": "/s"},
        "Pid": 9,
        "Test": False,
    }
    assert ReattachConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("[]", "JSON object"),
        ("{}", "'Addr'"),
        ('{"Addr": {"Network": "unix"}}', "'String'"),
        ('{"Addr": {"Network": "pipe", "String": "x"}}', "'unix' or 'tcp'"),
        ('{"Addr": {"Network": "unix", "String": ""}}', "empty"),
        ('{"Addr": {"Network": "unix", "String": "/s"}, "Pid": "12"}', "'Pid'"),
        ('{"Addr": {"Network": "unix", "String": "/s"}, "Pid": -1}', "non-negative"),
        ('{"Addr": {"Network": "unix", "String": "/s"}, "Pid": true}', "'Pid'"),
        ('{"Addr": {"Network": "unix", "String": "/s"}, "Test": "yes"}', "'Test'"),
        ('{"Addr": {"Network": "unix", "String": "/s"}, "Protocol": 1}', "'Protocol'"),
        ('{"Addr": {"Network": "unix", "String": "/s"}, "ProtocolVersion": 1.5}', "Version"),
    ],
)
def test_malformed_configs(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ReattachConfig.from_json(text)


def test_malformed_provider_map_names_the_provider() -> None:
    with pytest.raises(ValueError, match="acme/broken"):
        parse_tf_reattach_providers('{"acme/broken": {"Addr": 3}}')
    with pytest.raises(ValueError, match="JSON object"):
        parse_tf_reattach_providers("[1]")


def test_reattach_version() -> None:
    grpc_v6 = ReattachConfig(network="unix", address="/s", protocol_version=6)
    assert reattach_version(grpc_v6, (5, 6)) == 6
    with pytest.raises(ProtocolVersionError):
        reattach_version(grpc_v6, (5,))
    unknown = ReattachConfig(network="unix", address="/s")
    assert reattach_version(unknown, (5, 6)) == 6
    with pytest.raises(HandshakeError, match="netrpc"):
        reattach_version(ReattachConfig(network="unix", address="/s", protocol="netrpc"), (1,))


configs = st.builds(
    ReattachConfig,
    network=st.sampled_from(["unix", "tcp"]),
    address=st.text(min_size=1),
    protocol=st.sampled_from(["grpc", "netrpc"]),
    protocol_version=st.one_of(st.none(), st.integers(1, 2**31)),
    pid=st.one_of(st.none(), st.integers(1, 2**22)),
    test=st.booleans(),
)


@given(st.dictionaries(st.text(), configs, max_size=4))
def test_provider_map_round_trips(mapping: dict[str, ReattachConfig]) -> None:
    assert parse_tf_reattach_providers(format_tf_reattach_providers(mapping)) == mapping


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=10,
    )
)
def test_any_json_parses_or_raises_value_error(data: object) -> None:
    with contextlib.suppress(ValueError):
        parse_tf_reattach_providers(json.dumps(data))
