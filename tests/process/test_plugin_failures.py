"""Bad input to a plugin ends in one clear message and a non-zero exit: no hang, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from grpc_health.v1 import health_pb2, health_pb2_grpc
from plugin_harness import DEFAULT_ENV, KV_ENV, module_cmd, run_to_exit, started

from pyvider_rpcplugin_sync._protocol.handshake import decode_cert_field
from pyvider_rpcplugin_sync._transport.tls.certs import Identity, generate_identity

pytestmark = pytest.mark.timeout(60)

KV = module_cmd("pyvider_rpcplugin_sync.examples.kv_plugin")
ECHO = module_cmd("pyvider_rpcplugin_sync.examples.echo_plugin")


def assert_clean_failure(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result
    assert result.stdout == "", "nothing may reach stdout when the start fails"
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr


def test_missing_cookie() -> None:
    result = run_to_exit(KV, {"BASIC_PLUGIN": ""})
    assert_clean_failure(result, "This binary is a plugin", "BASIC_PLUGIN")


def test_wrong_cookie_never_reveals_the_expected_value() -> None:
    result = run_to_exit(KV, {"BASIC_PLUGIN": "nope"})
    assert_clean_failure(result, "This binary is a plugin")
    assert "hello" not in result.stderr


def test_no_common_version() -> None:
    result = run_to_exit(KV, {**KV_ENV, "PLUGIN_PROTOCOL_VERSIONS": "5,6"})
    assert_clean_failure(result, "no common protocol version", "[5, 6]", "[1]")


def test_old_host_without_versions_gets_the_lowest_version() -> None:
    env = {"BASIC_PLUGIN": "hello", "PLUGIN_PROTOCOL_VERSIONS": ""}
    with started(KV, env) as plugin:
        assert plugin.line.app_version == 1


def test_missing_socket_dir(tmp_path: Path) -> None:
    result = run_to_exit(KV, {**KV_ENV, "PLUGIN_UNIX_SOCKET_DIR": str(tmp_path / "absent")})
    assert_clean_failure(result, "does not exist or is not writable", "PLUGIN_UNIX_SOCKET_DIR")


def test_socket_dir_is_a_file(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    result = run_to_exit(KV, {**KV_ENV, "PLUGIN_UNIX_SOCKET_DIR": str(not_a_dir)})
    assert_clean_failure(result, "does not exist or is not writable")


def test_too_long_socket_path(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    result = run_to_exit(KV, {**KV_ENV, "PLUGIN_UNIX_SOCKET_DIR": str(deep)})
    assert_clean_failure(result, "over the 107-byte limit", "shorter")
    assert list(deep.iterdir()) == []


def test_bad_port_range() -> None:
    env = {
        **KV_ENV,
        "PLUGIN_TRANSPORT": "tcp",
        "PLUGIN_MIN_PORT": "30000",
        "PLUGIN_MAX_PORT": "20000",
    }
    assert_clean_failure(run_to_exit(KV, env), "invalid port range")


def test_unknown_transport() -> None:
    assert_clean_failure(
        run_to_exit(KV, {**KV_ENV, "PLUGIN_TRANSPORT": "udp"}), "unknown transport"
    )


def test_bad_log_level() -> None:
    assert_clean_failure(
        run_to_exit(KV, {**KV_ENV, "PLUGIN_LOG_LEVEL": "loud"}), "unknown log level"
    )


def test_garbage_client_cert() -> None:
    result = run_to_exit(KV, {**KV_ENV, "PLUGIN_CLIENT_CERT": "not a certificate"})
    assert_clean_failure(result, "PLUGIN_CLIENT_CERT is not a valid PEM certificate")


def test_tls_disabled_by_configuration_refuses_automtls() -> None:
    code = (
        "from pyvider_rpcplugin_sync import run_plugin\n"
        "from pyvider_rpcplugin_sync.examples.kv_plugin import KV_HANDSHAKE, register\n"
        "raise SystemExit(run_plugin(register, handshake=KV_HANDSHAKE, tls=False))\n"
    )
    identity = generate_identity()
    result = run_to_exit(
        [sys.executable, "-c", code], {**KV_ENV, "PLUGIN_CLIENT_CERT": identity.cert_pem.decode()}
    )
    assert_clean_failure(result, "asked for AutoMTLS", "TLS disabled")


def test_automtls_requires_the_hosts_certificate() -> None:
    host = generate_identity()
    stranger = generate_identity()
    env = {**DEFAULT_ENV, "PLUGIN_CLIENT_CERT": host.cert_pem.decode()}
    with started(ECHO, env) as plugin:
        cert_der = decode_cert_field(plugin.line.server_cert)
        assert plugin.raw_line.count(b"|") == 5 and not plugin.raw_line.endswith(b"=")
        plugin_pem = x509.load_der_x509_certificate(cert_der).public_bytes(Encoding.PEM)
        options = (("grpc.ssl_target_name_override", "localhost"),)

        def check(identity: Identity | None) -> health_pb2.HealthCheckResponse:
            creds = grpc.ssl_channel_credentials(
                root_certificates=plugin_pem,
                private_key=identity.key_pem if identity else None,
                certificate_chain=identity.cert_pem if identity else None,
            )
            with grpc.secure_channel(plugin.target, creds, options=options) as channel:
                stub = health_pb2_grpc.HealthStub(channel)
                return stub.Check(health_pb2.HealthCheckRequest(service="plugin"), timeout=5)

        assert check(host).status == health_pb2.HealthCheckResponse.SERVING
        for foreign in (stranger, None):
            with pytest.raises(grpc.RpcError) as refused:
                check(foreign)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        # The rightful host is still served after the refusals.
        assert check(host).status == health_pb2.HealthCheckResponse.SERVING
        with grpc.insecure_channel(plugin.target) as plain, pytest.raises(grpc.RpcError):
            health_pb2_grpc.HealthStub(plain).Check(
                health_pb2.HealthCheckRequest(service="plugin"), timeout=5
            )


def test_no_client_cert_means_no_cert_field() -> None:
    with started(ECHO, DEFAULT_ENV) as plugin:
        assert plugin.line.server_cert == ""
        assert plugin.raw_line.endswith(b"|grpc|")
