"""A SharedPlugin's running plugin and the early signs of its death (Linux /proc, pidfd)."""

from __future__ import annotations

import logging
import os
import select
import weakref
from typing import Any, cast

import grpc
from grpc_health.v1 import health_pb2

from .._constants import HEALTH_SERVICE, HEALTH_SERVICE_NAME
from .platform import open_proc_stat, pidfd_open, stat_of_fd
from .process import PluginProcess

logger = logging.getLogger("pyvider_rpcplugin_sync.shared")

# After the plugin's connection broke: how long a call waits for the process to exit.
_DEATH_WAIT = 0.5


class Live:
    """A running plugin, and the early signs of its death, cheap enough to check per call.

    - ``/proc/<pid>/stat`` (kept open): PF_EXITING is set as soon as the process starts
      to exit, before its sockets close; the exit itself (``waitid``) comes later;
    - a health Watch stream, the canary: it ends when the plugin's connection does.
    """

    def __init__(self, plugin: PluginProcess[Any], name: str) -> None:
        self.plugin = plugin
        self.suspect = False  # the canary died: the connection broke
        self._stat = open_proc_stat(plugin.pid or 0)
        self._use_stat = self._stat >= 0
        self._canary = self._watch(name)

    def running(self) -> bool:
        """False once the process began to exit (or cannot be checked that way)."""
        if not self._use_stat:
            return not self.exited()
        stat = stat_of_fd(self._stat)
        return stat is not None and not stat.exiting  # None: reaped

    def exited(self) -> bool:
        """Whether the process has exited (asks the kernel, without reaping it)."""
        return self.plugin.pid is None or self.plugin.wait_exit(0) is not None

    def await_exit(self) -> None:
        """When the process shows signs of death, wait (bounded) for it to exit."""
        if self.running() and not self.suspect:
            return
        fd = pidfd_open(self.plugin.pid or 0)
        if fd is None:  # reaped already, or no pidfd: the reaper thread tells
            self.plugin.wait_exit(_DEATH_WAIT)
            return
        try:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            poller.poll(_DEATH_WAIT * 1000)
        finally:
            os.close(fd)

    def close(self, grace: float | None) -> None:
        """Close the plugin; the canary first, or the plugin's stop would wait for it."""
        canary, self._canary = self._canary, None
        if canary is not None:
            canary.cancel()
        self.plugin.close(grace)

    def trust_only_exit(self) -> None:
        """The signs were wrong (it lives on): from now on only its exit counts."""
        self.suspect = self._use_stat = False
        self._canary = None  # the fd stays open: other threads may be reading it

    def _watch(self, name: str) -> Any:
        ref = weakref.ref(self)

        def ended(call: Any) -> None:
            live = ref()
            if live is not None and call.code() != grpc.StatusCode.UNIMPLEMENTED:
                live.suspect = True

        try:
            call = self.plugin.channel.unary_stream(
                f"/{HEALTH_SERVICE}/Watch",
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )(health_pb2.HealthCheckRequest(service=HEALTH_SERVICE_NAME))
            # grpc's call objects are futures too (its stubs type only the iterator side).
            cast("grpc.Future[Any]", call).add_done_callback(ended)
        except Exception:  # no canary: deaths are still seen, a little later
            logger.debug("no health Watch on plugin %s", name, exc_info=True)
            return None
        return call

    def __del__(self) -> None:
        if self._stat >= 0:
            os.close(self._stat)


def exit_code(plugin: PluginProcess[Any]) -> int | None:
    """The exit code of a plugin that exited, even before its watcher thread ran."""
    return plugin.wait_exit(0)
