"""The pyecho servicer's answers, called directly (the RPCs ignore their context)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyvider_rpcplugin_sync._protos import tfplugin6_pb2 as tf
from pyvider_rpcplugin_sync.examples.terraform_provider import cty
from pyvider_rpcplugin_sync.examples.terraform_provider.provider import PyechoProvider

CONTEXT: Any = None


def summaries(response: Any) -> list[str]:
    return [d.summary for d in response.diagnostics if d.severity == tf.Diagnostic.ERROR]


def test_upgrade_reads_json_state_and_keeps_schema_attributes() -> None:
    raw = {"id": "i1", "path": "/p", "content": "c", "dropped_attribute": 1}
    response = PyechoProvider().UpgradeResourceState(
        tf.UpgradeResourceState.Request(
            type_name="pyecho_file", version=0, raw_state=tf.RawState(json=json.dumps(raw).encode())
        ),
        CONTEXT,
    )
    assert summaries(response) == []
    assert cty.decode(response.upgraded_state) == {"id": "i1", "path": "/p", "content": "c"}


def test_upgrade_refuses_newer_versions_flatmap_and_unknown_types() -> None:
    provider = PyechoProvider()
    state = tf.RawState(json=b"{}")
    newer = tf.UpgradeResourceState.Request(type_name="pyecho_file", version=1, raw_state=state)
    assert summaries(provider.UpgradeResourceState(newer, CONTEXT)) == [
        "cannot upgrade pyecho_file state of schema version 1"
    ]
    flatmap = tf.UpgradeResourceState.Request(
        type_name="pyecho_file", raw_state=tf.RawState(flatmap={"id": "x"})
    )
    assert summaries(provider.UpgradeResourceState(flatmap, CONTEXT)) == [
        "cannot upgrade pyecho_file state without JSON"
    ]
    other = tf.UpgradeResourceState.Request(type_name="pyecho_other", raw_state=state)
    assert summaries(provider.UpgradeResourceState(other, CONTEXT))


def test_configure_sets_the_prefix_and_refuses_an_unknown_one() -> None:
    provider = PyechoProvider()
    unknown = tf.ConfigureProvider.Request(config=cty.encode({"prefix": cty.UNKNOWN}))
    [diagnostic] = provider.ConfigureProvider(unknown, CONTEXT).diagnostics
    assert diagnostic.attribute.steps[0].attribute_name == "prefix"
    provider.ConfigureProvider(
        tf.ConfigureProvider.Request(config=cty.encode({"prefix": "> "})), CONTEXT
    )
    read = provider.ReadDataSource(
        tf.ReadDataSource.Request(
            type_name="pyecho_echo", config=cty.encode({"input": "x", "result": None})
        ),
        CONTEXT,
    )
    assert cty.decode(read.state) == {"input": "x", "result": "> x"}


def test_unknown_types_get_diagnostics() -> None:
    provider = PyechoProvider()
    config = cty.encode({})
    assert summaries(
        provider.ReadDataSource(tf.ReadDataSource.Request(type_name="nope", config=config), CONTEXT)
    ) == ["unknown data source type 'nope'"]
    assert summaries(
        provider.ValidateResourceConfig(
            tf.ValidateResourceConfig.Request(type_name="nope", config=config), CONTEXT
        )
    ) == ["unknown resource type 'nope'"]
    assert summaries(
        provider.ImportResourceState(tf.ImportResourceState.Request(type_name="nope"), CONTEXT)
    ) == ["cannot import a 'nope'"]


def test_an_empty_path_is_refused_at_validation() -> None:
    request = tf.ValidateResourceConfig.Request(
        type_name="pyecho_file", config=cty.encode({"id": None, "path": "", "content": "c"})
    )
    [diagnostic] = PyechoProvider().ValidateResourceConfig(request, CONTEXT).diagnostics
    assert diagnostic.summary == "path must not be empty"


def test_a_failed_write_is_a_diagnostic_and_changes_nothing(tmp_path: Path) -> None:
    planned = {"id": cty.UNKNOWN, "path": str(tmp_path / "no" / "such" / "dir"), "content": "c"}
    response = PyechoProvider().ApplyResourceChange(
        tf.ApplyResourceChange.Request(
            type_name="pyecho_file", prior_state=cty.encode(None), planned_state=cty.encode(planned)
        ),
        CONTEXT,
    )
    [summary] = summaries(response)
    assert summary.startswith("cannot change ")
    assert cty.decode(response.new_state) is None
