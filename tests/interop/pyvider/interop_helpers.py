"""Helpers of the pyvider-rpcplugin interop tests (``tests/interop/test_pyvider.py``).

Loaded by path (this directory is deliberately not a package and not put on
``sys.path``: a ``pyvider`` directory there would shadow the real namespace
package ``pyvider``).

- Leak checks: every process a test starts carries ``MARKER_VAR=<uuid>`` in its
  environment; processes still carrying it are found by scanning ``/proc``.
- ``run_kv_host``: runs ``kv_host.py`` (pyvider's client) and parses its JSON line.
- ``tls_probe``: one health check over TLS as a foreign client, to tell whether
  a plugin really requires and verifies the host's certificate.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import os
import select
import signal
import ssl
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
KV_HOST = HERE / "kv_host.py"
PYVIDER_KV_PLUGIN = HERE / "kv_plugin.py"
SYNC_DEFAULT_KV_PLUGIN = HERE / "sync_kv_plugin.py"
OUR_KV_PLUGIN = (sys.executable, "-m", "pyvider_rpcplugin_sync.examples.kv_plugin")

MARKER_VAR = "PYVIDER_INTEROP_MARKER"
# Variables of either library (and the Go tests) that must not leak in from
# the developer's shell: the tests set what they need explicitly.
_FOREIGN_PREFIXES = ("PLUGIN_", "PYVIDER_CLIENT_", "BASIC_PLUGIN", "KV_", "SUPPORTED_PROTOCOL")
# pytest's own variable; pyvider's server decides from it whether to exit.
_DROPPED = ("PYTEST_CURRENT_TEST",)


# --- environment and leak checks ---------------------------------------------------


def clean_environ(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default os.environ) without plugin-related variables."""
    source = os.environ if base is None else base
    return {
        k: v for k, v in source.items() if not k.startswith(_FOREIGN_PREFIXES) and k not in _DROPPED
    }


def foreign_variables(base: Mapping[str, str] | None = None) -> list[str]:
    source = os.environ if base is None else base
    return [k for k in source if k.startswith(_FOREIGN_PREFIXES)]


def marked_pids(marker: str) -> list[int]:
    """Live processes whose environment carries ``MARKER_VAR=marker`` (zombies have none)."""
    needle = f"{MARKER_VAR}={marker}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or not ours to read
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry.name))
    return pids


def kill_and_wait(pids: Iterable[int], timeout: float = 5.0) -> None:
    """SIGKILL ``pids`` and wait for each to be gone (pidfd, no polling)."""
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except OSError:  # already gone
            continue
        try:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(fd, signal.SIGKILL)
            select.select([fd], [], [], timeout)
        finally:
            os.close(fd)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)  # reap it if it happens to be our child


# --- pyvider's client as a host -----------------------------------------------------


@dataclass
class HostRun:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    result: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        tail = "\n".join(self.stderr.splitlines()[-40:])
        return (
            f"kv_host exited {self.returncode}\nargv: {self.argv}\n"
            f"--- stdout ---\n{self.stdout}\n--- stderr (tail) ---\n{tail}"
        )

    def expect_ok(self) -> dict[str, Any]:
        assert self.returncode == 0 and self.result.get("ok") is True, self.describe()
        return self.result

    def expect_start_failure(self) -> dict[str, Any]:
        assert self.returncode == 1, self.describe()
        assert self.result.get("ok") is False, self.describe()
        assert self.result.get("stage") == "start", self.describe()
        return self.result


def run_kv_host(
    host_args: Sequence[str],
    plugin_cmd: Sequence[str],
    *,
    marker: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 45.0,
) -> HostRun:
    """Run kv_host.py (pyvider's client) with a clean environment and ``marker``."""
    argv = [sys.executable, str(KV_HOST), *host_args, "--", *plugin_cmd]
    full_env = clean_environ()
    full_env.update({"PYTHONUNBUFFERED": "1", MARKER_VAR: marker})
    full_env.update(env or {})
    proc = subprocess.Popen(
        argv,
        env=full_env,
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        raise AssertionError(
            f"kv_host did not finish in {timeout:.0f} s\nargv: {argv}\n"
            f"--- stdout ---\n{stdout}\n--- stderr ---\n{stderr[-4000:]}"
        ) from None
    run = HostRun(argv, proc.returncode, stdout, stderr)
    lines = stdout.strip().splitlines()
    assert lines, run.describe()
    try:
        run.result = json.loads(lines[-1])
    except json.JSONDecodeError:
        raise AssertionError(f"kv_host printed no JSON line\n{run.describe()}") from None
    return run


# --- TLS ------------------------------------------------------------------------


def cert_pem_from_field(cert_field: str) -> bytes:
    """Handshake field 6 (RawStd base64 DER) as PEM."""
    der = base64.b64decode(cert_field + "=" * (-len(cert_field) % 4), validate=True)
    return ssl.DER_cert_to_PEM_cert(der).encode("ascii")


def cert_curve(cert_field: str) -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec

    cert = x509.load_pem_x509_certificate(cert_pem_from_field(cert_field))
    key = cert.public_key()
    return key.curve.name if isinstance(key, ec.EllipticCurvePublicKey) else type(key).__name__


def foreign_identity() -> tuple[bytes, bytes]:
    """(cert_pem, key_pem): a self-signed P-256 client certificate nobody trusts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def tls_probe(
    network: str,
    address: str,
    cert_field: str,
    *,
    identity: tuple[bytes, bytes] | None = None,
    timeout: float = 5.0,
) -> str | None:
    """Health-check the plugin as a foreign TLS client that trusts the plugin's cert.

    ``identity=None`` presents no client certificate. Returns None when the
    plugin answered (it let the foreign client in), else the gRPC error.
    """
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    extra: dict[str, bytes] = {}
    if identity is not None:
        extra = {"certificate_chain": identity[0], "private_key": identity[1]}
    credentials = grpc.ssl_channel_credentials(
        root_certificates=cert_pem_from_field(cert_field), **extra
    )
    target = f"unix:{address}" if network == "unix" else address
    options = [("grpc.ssl_target_name_override", "localhost")]
    with grpc.secure_channel(target, credentials, options=options) as channel:
        try:
            health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="plugin"), timeout=timeout
            )
        except grpc.RpcError as exc:
            return f"{exc.code().name}: {exc.details()}"
    return None
