"""One message size default on both sides; explicit grpc options win over it."""

from __future__ import annotations

import pytest

from pyvider_rpcplugin_sync import DEFAULT_MAX_MESSAGE_SIZE, PluginServer
from pyvider_rpcplugin_sync._constants import message_size_options
from pyvider_rpcplugin_sync._host.channel import channel_options

pytestmark = pytest.mark.timeout(10)
SEND, RECEIVE = "grpc.max_send_message_length", "grpc.max_receive_message_length"


def test_the_default_limits_both_directions() -> None:
    assert dict(message_size_options(DEFAULT_MAX_MESSAGE_SIZE)) == {
        SEND: 2**31 - 1,
        RECEIVE: 2**31 - 1,
    }


@pytest.mark.parametrize("bad", [0, -1, 2**31, 1.5, True, "10"])
def test_impossible_sizes_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="max_message_size"):
        message_size_options(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_message_size"):
        PluginServer(lambda server: None, max_message_size=bad, environ={})  # type: ignore[arg-type]


def test_host_channel_options_put_the_size_first_and_extra_after() -> None:
    keepalive = ("grpc.keepalive_time_ms", 10000)
    assert channel_options(1024, [keepalive]) == ((SEND, 1024), (RECEIVE, 1024), keepalive)


def test_a_size_among_the_extra_options_replaces_max_message_size() -> None:
    extra = [(RECEIVE, 2048)]
    assert channel_options(1024, extra) == ((RECEIVE, 2048),)
