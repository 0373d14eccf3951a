"""The pyecho provider: a tfplugin6 ``Provider`` servicer.

Terraform starts one provider process per command phase (validate, plan,
apply), so nothing here outlives a process except what the resource itself
stores (its file) and what Terraform keeps in its state.
"""

from __future__ import annotations

import json
import logging
import threading

import grpc

from pyvider_rpcplugin_sync import HandshakeConfig
from pyvider_rpcplugin_sync._protos import tfplugin6_pb2 as tf
from pyvider_rpcplugin_sync._protos import tfplugin6_pb2_grpc as tf_grpc

from . import cty, file_resource
from .diagnostics import attribute_path, error
from .schema import (
    CRASH,
    DATA_SOURCE_SCHEMAS,
    ECHO,
    FILE,
    PROVIDER_SCHEMA,
    RESOURCE_SCHEMAS,
    attribute_names,
)

logger = logging.getLogger(__name__)

# Terraform's go-plugin handshake (the cookie is public, in Terraform's source).
TF_HANDSHAKE = HandshakeConfig(
    magic_cookie_key="TF_PLUGIN_MAGIC_COOKIE",
    magic_cookie_value="d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2",
    protocol_versions=(6,),
)

_CAPABILITIES = tf.ServerCapabilities(plan_destroy=False, get_provider_schema_optional=False)


class PyechoProvider(tf_grpc.ProviderServicer):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._prefix = ""

    # --- schema and configuration ------------------------------------------------

    def GetMetadata(
        self, request: tf.GetMetadata.Request, context: grpc.ServicerContext
    ) -> tf.GetMetadata.Response:
        return tf.GetMetadata.Response(
            server_capabilities=_CAPABILITIES,
            data_sources=[
                tf.GetMetadata.DataSourceMetadata(type_name=name) for name in DATA_SOURCE_SCHEMAS
            ],
            resources=[
                tf.GetMetadata.ResourceMetadata(type_name=name) for name in RESOURCE_SCHEMAS
            ],
        )

    def GetProviderSchema(
        self, request: tf.GetProviderSchema.Request, context: grpc.ServicerContext
    ) -> tf.GetProviderSchema.Response:
        return tf.GetProviderSchema.Response(
            provider=PROVIDER_SCHEMA,
            resource_schemas=RESOURCE_SCHEMAS,
            data_source_schemas=DATA_SOURCE_SCHEMAS,
            server_capabilities=_CAPABILITIES,
        )

    def ValidateProviderConfig(
        self, request: tf.ValidateProviderConfig.Request, context: grpc.ServicerContext
    ) -> tf.ValidateProviderConfig.Response:
        return tf.ValidateProviderConfig.Response()

    def ConfigureProvider(
        self, request: tf.ConfigureProvider.Request, context: grpc.ServicerContext
    ) -> tf.ConfigureProvider.Response:
        config = cty.decode(request.config) or {}
        prefix = config.get("prefix")
        if prefix is cty.UNKNOWN:
            return tf.ConfigureProvider.Response(
                diagnostics=[error("prefix must be known before apply", attribute="prefix")]
            )
        with self._lock:
            self._prefix = prefix or ""
        logger.info("configured by Terraform %s", request.terraform_version)
        return tf.ConfigureProvider.Response()

    def StopProvider(
        self, request: tf.StopProvider.Request, context: grpc.ServicerContext
    ) -> tf.StopProvider.Response:
        return tf.StopProvider.Response()  # every call here is short: nothing to cancel

    # --- data sources -----------------------------------------------------------

    def ValidateDataResourceConfig(
        self, request: tf.ValidateDataResourceConfig.Request, context: grpc.ServicerContext
    ) -> tf.ValidateDataResourceConfig.Response:
        if request.type_name not in DATA_SOURCE_SCHEMAS:
            return tf.ValidateDataResourceConfig.Response(
                diagnostics=[error(f"unknown data source type {request.type_name!r}")]
            )
        return tf.ValidateDataResourceConfig.Response()

    def ReadDataSource(
        self, request: tf.ReadDataSource.Request, context: grpc.ServicerContext
    ) -> tf.ReadDataSource.Response:
        config = cty.decode(request.config) or {}
        if request.type_name == ECHO:
            with self._lock:
                prefix = self._prefix
            state = {"input": config["input"], "result": prefix + config["input"]}
            return tf.ReadDataSource.Response(state=cty.encode(state))
        if request.type_name == CRASH:
            _fail(config["message"])
        return tf.ReadDataSource.Response(
            diagnostics=[error(f"unknown data source type {request.type_name!r}")]
        )

    # --- the managed resource ---------------------------------------------------

    def ValidateResourceConfig(
        self, request: tf.ValidateResourceConfig.Request, context: grpc.ServicerContext
    ) -> tf.ValidateResourceConfig.Response:
        if request.type_name != FILE:
            return tf.ValidateResourceConfig.Response(
                diagnostics=[error(f"unknown resource type {request.type_name!r}")]
            )
        config = cty.decode(request.config) or {}
        if config.get("path") == "":
            return tf.ValidateResourceConfig.Response(
                diagnostics=[error("path must not be empty", attribute="path")]
            )
        return tf.ValidateResourceConfig.Response()

    def UpgradeResourceState(
        self, request: tf.UpgradeResourceState.Request, context: grpc.ServicerContext
    ) -> tf.UpgradeResourceState.Response:
        schema = RESOURCE_SCHEMAS.get(request.type_name)
        if schema is None or request.version > schema.version:
            return tf.UpgradeResourceState.Response(
                diagnostics=[
                    error(
                        f"cannot upgrade {request.type_name} state of schema version "
                        f"{request.version}",
                        "the state was written by a newer provider",
                    )
                ]
            )
        if not request.raw_state.json:
            # Only SDKv1-era state is flatmap; protocol 6 providers never wrote it.
            return tf.UpgradeResourceState.Response(
                diagnostics=[error(f"cannot upgrade {request.type_name} state without JSON")]
            )
        raw = json.loads(request.raw_state.json)
        # The JSON state holds every attribute; keep those of the current schema.
        state = {name: raw.get(name) for name in attribute_names(schema)}
        return tf.UpgradeResourceState.Response(upgraded_state=cty.encode(state))

    def PlanResourceChange(
        self, request: tf.PlanResourceChange.Request, context: grpc.ServicerContext
    ) -> tf.PlanResourceChange.Response:
        planned, replace = file_resource.plan(
            cty.decode(request.prior_state), cty.decode(request.proposed_new_state)
        )
        return tf.PlanResourceChange.Response(
            planned_state=cty.encode(planned),
            requires_replace=[attribute_path(name) for name in replace],
        )

    def ApplyResourceChange(
        self, request: tf.ApplyResourceChange.Request, context: grpc.ServicerContext
    ) -> tf.ApplyResourceChange.Response:
        prior = cty.decode(request.prior_state)
        try:
            new_state = file_resource.apply(prior, cty.decode(request.planned_state))
        except OSError as exc:
            return tf.ApplyResourceChange.Response(
                new_state=cty.encode(prior),  # nothing changed
                diagnostics=[error(f"cannot change {exc.filename or 'the file'}", str(exc))],
            )
        return tf.ApplyResourceChange.Response(new_state=cty.encode(new_state))

    def ReadResource(
        self, request: tf.ReadResource.Request, context: grpc.ServicerContext
    ) -> tf.ReadResource.Response:
        current = cty.decode(request.current_state)
        try:
            new_state = file_resource.read(current) if current is not None else None
        except OSError as exc:
            return tf.ReadResource.Response(
                new_state=request.current_state,
                diagnostics=[error(f"cannot read {exc.filename or 'the file'}", str(exc))],
            )
        return tf.ReadResource.Response(new_state=cty.encode(new_state), private=request.private)

    def ImportResourceState(
        self, request: tf.ImportResourceState.Request, context: grpc.ServicerContext
    ) -> tf.ImportResourceState.Response:
        if request.type_name != FILE:
            return tf.ImportResourceState.Response(
                diagnostics=[error(f"cannot import a {request.type_name!r}")]
            )
        try:
            state = file_resource.import_state(request.id)
        except OSError as exc:
            return tf.ImportResourceState.Response(
                diagnostics=[error(f"cannot import {request.id}", str(exc))]
            )
        imported = tf.ImportResourceState.ImportedResource(type_name=FILE, state=cty.encode(state))
        return tf.ImportResourceState.Response(imported_resources=[imported])


def _fail(message: str) -> None:
    raise RuntimeError(message)


def register(server: grpc.Server) -> None:
    tf_grpc.add_ProviderServicer_to_server(PyechoProvider(), server)
