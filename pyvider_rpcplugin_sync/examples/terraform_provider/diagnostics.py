"""tfplugin6 diagnostics: how a provider reports errors Terraform shows to the user."""

from __future__ import annotations

from pyvider_rpcplugin_sync._protos import tfplugin6_pb2 as tf


def error(summary: str, detail: str = "", *, attribute: str | None = None) -> tf.Diagnostic:
    path = attribute_path(attribute) if attribute is not None else None
    return tf.Diagnostic(
        severity=tf.Diagnostic.ERROR, summary=summary, detail=detail, attribute=path
    )


def attribute_path(name: str) -> tf.AttributePath:
    return tf.AttributePath(steps=[tf.AttributePath.Step(attribute_name=name)])
