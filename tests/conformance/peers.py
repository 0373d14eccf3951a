"""The peers the conformance kit runs against, with the result expected of each.

Adding a peer is one row. ``needs`` names the fixture that provides what the
command needs (``go101_bins``: ``{name: Path}`` of the Go 1.0.1 programs;
``terraform_bin``: the terraform path; None: nothing); ``cmd`` builds the
command from that fixture's value. ``fails`` is the exact set of checks the
peer is known to fail, required and optional alike: a new failure and a fixed
one both fail the test.

``go18_bins``: the go-plugin 1.8.0 programs. A peer built by other means (OpenTofu)
needs a session fixture in ``conftest.py`` that builds or finds it, skipping
without it and failing under ``PYVIDER_REQUIRE_INTEROP=1`` (as ``go101_bins``
does), and its rows here with ``needs`` set to that fixture's name.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
BROKEN = HERE / "broken_plugin.py"
PYVIDER_KV_PLUGIN = REPO / "tests" / "interop" / "pyvider" / "kv_plugin.py"
PYVIDER_KV_HOST = REPO / "tests" / "interop" / "pyvider" / "kv_host.py"
TF_COOKIE = (
    "TF_PLUGIN_MAGIC_COOKIE=d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
)
PY = sys.executable


def _module(name: str) -> Callable[[Any], list[str]]:
    return lambda _: [PY, "-m", name]


def _broken(mode: str) -> Callable[[Any], list[str]]:
    return lambda _: [PY, str(BROKEN), mode]


def _broken_peer(mode: str, *fails: str) -> PluginPeer:
    return PluginPeer(f"broken-{mode}", _broken(mode), frozenset(fails), ("--versions", "5,6"))


def _go(name: str) -> Callable[[Any], list[str]]:
    return lambda bins: [str(bins[name])]


@dataclass(frozen=True)
class PluginPeer:
    name: str
    cmd: Callable[[Any], list[str]]
    fails: frozenset[str] = frozenset()
    args: tuple[str, ...] = ()  # extra kit arguments (--cookie, --versions, --tcp-env)
    needs: str | None = None

    @property
    def exit_code(self) -> int:
        from pyvider_rpcplugin_sync.conformance.model import EXIT_FAILED, EXIT_OK

        required_fails = self.fails - OPTIONAL
        return EXIT_FAILED if required_fails else EXIT_OK


# The optional checks (they never change the exit code).
OPTIONAL = frozenset(
    {
        "handshake.fields",
        "listener.socket_dir",
        "stdio.stream",
        "broker.stream",
        "controller.reply_first",
        "exit.code",
        "listener.socket_removed",
        "stderr.hclog",
        "stdin.closed",
        "signal.sigterm",
    }
)
# go-plugin 1.0.1: no GRPCStdio, sockets in $TMPDIR, Shutdown answered by dropping the connection.
GO_101 = frozenset({"listener.socket_dir", "stdio.stream", "controller.reply_first"})
# go-plugin 1.8.0: its Shutdown handler stops the server before it returns (no reply leaves).
GO_18 = frozenset({"controller.reply_first"})
BASIC = ("--cookie", "BASIC_PLUGIN=hello")

PLUGIN_PEERS: tuple[PluginPeer, ...] = (
    PluginPeer("ours-echo", _module("pyvider_rpcplugin_sync.examples.echo_plugin")),
    PluginPeer(
        "ours-kv-tcp",
        _module("pyvider_rpcplugin_sync.examples.kv_plugin"),
        args=(*BASIC, "--tcp-env", "PLUGIN_TRANSPORT=tcp"),
    ),
    PluginPeer(
        "ours-counter", _module("pyvider_rpcplugin_sync.examples.counter_plugin"), args=BASIC
    ),
    PluginPeer(
        "ours-terraform-provider",
        _module("pyvider_rpcplugin_sync.examples.terraform_provider"),
        args=("--cookie", TF_COOKIE, "--versions", "5,6"),
    ),
    PluginPeer("go-1.0.1-kvplugin", _go("kvplugin"), GO_101, BASIC, "go101_bins"),
    PluginPeer("go-1.0.1-counterplugin", _go("counterplugin"), GO_101, BASIC, "go101_bins"),
    PluginPeer("go-1.8.0-kvplugin", _go("kvplugin18"), GO_18, BASIC, "go18_bins"),
    PluginPeer("go-1.8.0-counterplugin", _go("counterplugin18"), GO_18, BASIC, "go18_bins"),
    # pyvider-rpcplugin 0.5.5: its own cookie message; TLS without checking the client.
    PluginPeer(
        "pyvider-0.5.5-kv",
        lambda _: [PY, str(PYVIDER_KV_PLUGIN)],
        frozenset(
            {
                "cookie.message",
                "tls.requires_client_cert",
                "tls.rejects_foreign_cert",
                "listener.socket_dir",
            }
        ),
    ),
    # The deliberately broken plugins, each caught by the check meant for it.
    _broken_peer("good"),
    _broken_peer(
        "no-controller",
        "controller.shutdown",
        "controller.reply_first",
        "exit.code",
        "listener.socket_removed",
    ),
    _broken_peer("no-stdio", "stdio.stream"),
    _broken_peer("stdout-noise", "handshake.line"),
    _broken_peer("wrong-cookie-message", "cookie.message"),
    _broken_peer("goaway-first", "controller.reply_first"),
    _broken_peer("cert-always", "handshake.no_cert"),
    _broken_peer("first-offered", "versions.order"),
    _broken_peer("dies-on-sigint", "signal.sigint_ignored"),
    _broken_peer("padded-cert", "tls.cert"),
    _broken_peer("ignores-cookie", "cookie.refuses", "cookie.message"),
    _broken_peer("no-health", "health.plugin"),
    _broken_peer(
        "wrong-address",
        "listener.address",
        "health.plugin",
        "controller.shutdown",
        "controller.reply_first",
        "exit.code",
        "tls.host_cert_accepted",
    ),
)


@dataclass(frozen=True)
class HostPeer:
    name: str
    cmd: Callable[[Any], list[str]]
    # check -> expected status ("pass", "fail", "skip", "info"); checks not named are not asserted
    expect: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    needs: str | None = None
    exit_code: int = 0
    # check -> its exact "observed" text, for the checks that only take note
    observed: Mapping[str, str] = field(default_factory=dict)


def _status(**by_check: str) -> dict[str, str]:
    return {name.replace("__", "."): status for name, status in by_check.items()}


_GOOD = _status(
    host__launched="pass",
    host__cookie="pass",
    host__versions="pass",
    host__connected="pass",
    host__shutdown="pass",
)

HOST_PEERS: tuple[HostPeer, ...] = (
    HostPeer(
        "ours-inspect",
        lambda _: [PY, "-m", "pyvider_rpcplugin_sync", "inspect", "--", "{probe}"],
        {
            **_GOOD,
            "host.client_cert": "pass",
            "host.kill_wait": "pass",
            "host.verifies_plugin_cert": "pass",
        },
        observed={"host.internal_calls": "Check, StartStream, StreamStdio"},
    ),
    HostPeer(
        "ours-kv-no-tls",
        lambda _: [
            PY,
            "-m",
            "pyvider_rpcplugin_sync",
            "kv",
            "--no-tls",
            "--",
            "{probe}",
            "put",
            "a",
            "b",
        ],
        {**_GOOD, "host.client_cert": "skip", "host.verifies_plugin_cert": "skip"},
        BASIC,
        exit_code=0,
        observed={"host.internal_calls": "Check, StartStream, StreamStdio"},
    ),
    HostPeer(
        "go-1.0.1-kvhost",
        lambda bins: [str(bins["kvhost"]), "put", "a", "b"],
        {
            **_GOOD,
            "host.client_cert": "pass",
            "host.kill_wait": "pass",
            "host.verifies_plugin_cert": "pass",
        },
        (*BASIC, "--env", "KV_PLUGIN={probe}", "--env", "KV_AUTOMTLS=1", "--env", "KV_HOST_LOG=1"),
        "go101_bins",
        exit_code=0,
        observed={
            "host.internal_calls": "StartStream",
            "host.hclog": "read as hclog: its message shown, not its JSON",
        },
    ),
    HostPeer(
        "go-1.0.1-kvhost-no-tls",
        lambda bins: [str(bins["kvhost"]), "put", "a", "b"],
        {**_GOOD, "host.client_cert": "skip", "host.verifies_plugin_cert": "skip"},
        (*BASIC, "--env", "KV_PLUGIN={probe}"),
        "go101_bins",
        observed={"host.internal_calls": "StartStream"},
    ),
    HostPeer(
        "go-1.8.0-kvhost",
        lambda bins: [str(bins["kvhost18"]), "put", "a", "b"],
        {
            **_GOOD,
            "host.client_cert": "pass",
            "host.kill_wait": "pass",
            "host.verifies_plugin_cert": "pass",
        },
        (*BASIC, "--env", "GO18_PLUGIN={probe}", "--env", "GO18_AUTOMTLS=1"),
        "go18_bins",
        observed={"host.internal_calls": "Check, StartStream, StreamStdio"},
    ),
    HostPeer(
        "go-1.8.0-kvhost-no-tls",
        lambda bins: [str(bins["kvhost18"]), "put", "a", "b"],
        {**_GOOD, "host.client_cert": "skip", "host.verifies_plugin_cert": "skip"},
        (*BASIC, "--env", "GO18_PLUGIN={probe}"),
        "go18_bins",
        observed={"host.internal_calls": "Check, StartStream, StreamStdio"},
    ),
    # Terraform 1.11: P-521 client certificate, versions 5,6, Shutdown then 2 s then SIGKILL.
    HostPeer(
        "terraform",
        lambda _: [PY, str(HERE / "tf_host.py")],
        {
            **_GOOD,
            "host.client_cert": "pass",
            "host.kill_wait": "pass",
            "host.verifies_plugin_cert": "pass",
        },
        ("--cookie", TF_COOKIE, "--versions", "6", "--probe-name", "terraform-provider-probe"),
        "terraform_bin",
        observed={"host.internal_calls": "StartStream, StreamStdio"},
    ),
    # pyvider-rpcplugin 0.5.5's client sends no PLUGIN_PROTOCOL_VERSIONS and no port range,
    # SIGTERMs 50 ms after Shutdown, and hangs on a foreign plugin certificate (killed).
    HostPeer(
        "pyvider-0.5.5-kvhost",
        lambda _: [PY, str(PYVIDER_KV_HOST), "--put", "a=b", "--", "{probe}"],
        {
            "host.launched": "pass",
            "host.cookie": "pass",
            "host.versions": "fail",
            "host.ports": "fail",
            "host.client_cert": "pass",
            "host.connected": "pass",
            "host.shutdown": "pass",
            "host.kill_wait": "fail",
            "host.verifies_plugin_cert": "pass",
        },
        ("--env", "PLUGIN_CLIENT_RETRY_ENABLED=false"),
        exit_code=1,
        observed={"host.internal_calls": "StreamStdio"},
    ),
)
