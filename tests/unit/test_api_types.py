"""The public API's types and checks: durations, the keyword options, the error tree."""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

import pytest

from pyvider_rpcplugin_sync import (
    HostConfig,
    HostOptions,
    PluginProcess,
    PluginServer,
    PluginStartError,
    RPCPluginError,
    SharedPlugin,
    StartTimeout,
)
from pyvider_rpcplugin_sync._seconds import optional_seconds, seconds

pytestmark = pytest.mark.timeout(30)

CMD = [sys.executable, "-c", "raise SystemExit(3)"]
BAD = [-1, -0.5, math.nan, math.inf, True, "5", None]


def test_host_options_are_the_host_config_fields_but_stub() -> None:
    # A field added to HostConfig must be added to HostOptions, or the hosts' keyword
    # options would not type-check for it.
    fields = {f.name for f in dataclasses.fields(HostConfig) if f.init}
    assert set(HostOptions.__annotations__) == fields - {"stub"}


@pytest.mark.parametrize("name", ["start_timeout", "connect_timeout"])
@pytest.mark.parametrize("value", [*BAD, 0])
def test_a_bound_that_must_be_positive_refuses_others(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        HostConfig(**{name: value})


@pytest.mark.parametrize("name", ["shutdown_grace", "drain_timeout"])
@pytest.mark.parametrize("value", BAD)
def test_a_grace_refuses_negative_and_non_numbers(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        HostConfig(**{name: value})


def test_zero_grace_and_whole_numbers_are_seconds() -> None:
    config = HostConfig(shutdown_grace=0, drain_timeout=0, start_timeout=3)
    assert (config.shutdown_grace, config.drain_timeout, config.start_timeout) == (0.0, 0.0, 3.0)
    assert isinstance(config.start_timeout, float)


def test_hosts_refuse_a_negative_timeout_before_anything_starts() -> None:
    options: dict[str, Any] = {"start_timeout": -1}
    with pytest.raises(ValueError, match="start_timeout"):
        PluginProcess(CMD, **options)
    with pytest.raises(ValueError, match="shutdown_grace"):
        SharedPlugin(CMD, shutdown_grace=-2)
    plugin = PluginProcess(CMD)  # never started
    with pytest.raises(ValueError, match="grace"):
        plugin.close(grace=-1)
    with pytest.raises(ValueError, match="timeout"):
        plugin.wait_exit(-1)
    with pytest.raises(ValueError, match="timeout"):
        plugin.ping(timeout=0)
    plugin.close()


def test_the_plugin_server_refuses_a_negative_grace() -> None:
    with pytest.raises(ValueError, match="stop_grace"):
        PluginServer(lambda server: None, stop_grace=-1)
    server = PluginServer(lambda server: None)  # never started
    with pytest.raises(ValueError, match="grace"):
        server.stop(grace=-1)
    with pytest.raises(ValueError, match="timeout"):
        server.wait(timeout=math.nan)


def test_seconds_messages_say_what_is_taken() -> None:
    with pytest.raises(ValueError, match=r"start_timeout must be seconds \(above 0\), not 0"):
        seconds("start_timeout", 0, zero=False)
    with pytest.raises(ValueError, match="grace must be a number of seconds, not 'x'"):
        seconds("grace", "x")
    assert optional_seconds("timeout", None) is None
    assert optional_seconds("timeout", 2) == 2.0


def test_start_timeout_is_also_a_timeout_error() -> None:
    exc = StartTimeout("no line", hint="raise start_timeout", returncode=None, stderr_tail="x")
    assert isinstance(exc, TimeoutError)
    assert isinstance(exc, PluginStartError) and isinstance(exc, RPCPluginError)
    assert str(exc).startswith("no line (hint: raise start_timeout)")
    assert exc.stderr_tail == "x" and exc.hint == "raise start_timeout"
    with pytest.raises(TimeoutError):
        raise exc


def test_public_attributes_are_of_public_types() -> None:
    import pyvider_rpcplugin_sync as api
    from pyvider_rpcplugin_sync.examples import echo_plugin
    from pyvider_rpcplugin_sync.testing import serve_in_process

    with serve_in_process(echo_plugin.register) as plugin:
        line = plugin.host.handshake_line
        assert type(line) is api.HandshakeLine and "HandshakeLine" in api.__all__
        assert line.network == plugin.host.network
        assert not hasattr(plugin.server, "stdio")  # the stdio queue is the server's own


def test_the_public_broker_is_what_go_plugin_users_call() -> None:
    """Session plumbing (attach, announcements, knocks) stays private to the library."""
    from pyvider_rpcplugin_sync import Broker

    public = {name for name in dir(Broker) if not name.startswith("_")}
    assert public == {"accept_and_serve", "close", "closed", "dial", "next_id"}
