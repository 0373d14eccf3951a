"""RetryPolicy: checked once when made, and turned into grpc's service config and options."""

from __future__ import annotations

import json

import grpc
import pytest

from pyvider_rpcplugin_sync import HostConfig, RetryPolicy

pytestmark = pytest.mark.timeout(30)


def test_the_service_config_holds_grpc_retry_policy() -> None:
    policy = RetryPolicy(
        methods=["/pkg.KV/Get", "pkg.Health"],
        max_attempts=4,
        initial_backoff=0.05,
        max_backoff=2,
        multiplier=1.5,
    )
    config = json.loads(policy.service_config())
    assert config == {
        "methodConfig": [
            {
                "name": [{"service": "pkg.KV", "method": "Get"}, {"service": "pkg.Health"}],
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.05s",
                    "maxBackoff": "2s",
                    "backoffMultiplier": 1.5,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }


def test_host_config_adds_the_options_and_enables_retries() -> None:
    policy = RetryPolicy(methods=["pkg.KV"])
    options = dict(HostConfig(retry=policy).resolved_channel_options())
    assert options["grpc.enable_retries"] == 1
    assert options["grpc.service_config"] == policy.service_config()
    assert "grpc.service_config" not in dict(HostConfig().resolved_channel_options())


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"methods": "pkg.KV"}, TypeError, "not a str"),
        ({"methods": []}, ValueError, "at least one"),
        ({"methods": ["pkg.KV/Get"]}, ValueError, "neither"),
        ({"methods": ["/grpc.health.v1.Health/Check"]}, ValueError, "never retried"),
        ({"methods": ["plugin.GRPCController"]}, ValueError, "never retried"),
        ({"max_attempts": 1}, ValueError, "2 to 5"),
        ({"max_attempts": 6}, ValueError, "2 to 5"),
        ({"max_attempts": 2.0}, TypeError, "int"),
        ({"initial_backoff": 0}, ValueError, "above 0"),
        ({"max_backoff": float("inf")}, ValueError, "above 0"),
        ({"initial_backoff": 2, "max_backoff": 1}, ValueError, "at least initial_backoff"),
        ({"multiplier": 0.5}, ValueError, "1 or more"),
        ({"codes": frozenset()}, ValueError, "at least one"),
        ({"codes": frozenset({grpc.StatusCode.OK})}, ValueError, "other than OK"),
    ],
)
def test_bad_policies_are_refused(kwargs: dict[str, object], error: type, words: str) -> None:
    arguments: dict[str, object] = {"methods": ["pkg.KV"], **kwargs}
    with pytest.raises(error, match=words):
        RetryPolicy(**arguments)  # type: ignore[arg-type]


def test_a_service_config_of_ones_own_conflicts() -> None:
    own = [("grpc.service_config", "{}")]
    with pytest.raises(ValueError, match="give one of them"):
        HostConfig(retry=RetryPolicy(methods=["pkg.KV"]), channel_options=own)
    with pytest.raises(ValueError, match="enable_retries 0"):
        HostConfig(
            retry=RetryPolicy(methods=["pkg.KV"]), channel_options=[("grpc.enable_retries", 0)]
        )
    with pytest.raises(TypeError, match="RetryPolicy"):
        HostConfig(retry={"methods": ["pkg.KV"]})  # type: ignore[arg-type]
