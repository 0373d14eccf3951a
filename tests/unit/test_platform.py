"""The POSIX fallbacks are chosen at run time, and PYVIDER_RPCPLUGIN_POSIX_FALLBACKS forces them."""

from __future__ import annotations

import os
import sys

import pytest

from pyvider_rpcplugin_sync._constants import ENV_POSIX_FALLBACKS
from pyvider_rpcplugin_sync._host.platform import (
    open_proc_stat,
    own_group_options,
    pidfd_open,
    posix_fallbacks_forced,
)

pytestmark = pytest.mark.timeout(10)


def test_forced_fallbacks_use_only_posix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_POSIX_FALLBACKS, "1")
    assert posix_fallbacks_forced()
    assert pidfd_open(os.getpid()) is None
    assert open_proc_stat(os.getpid()) == -1
    assert own_group_options() == {"start_new_session": True}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux mechanisms")
def test_linux_mechanisms_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_POSIX_FALLBACKS, raising=False)
    assert not posix_fallbacks_forced()
    fd = pidfd_open(os.getpid())
    stat = open_proc_stat(os.getpid())
    try:
        assert fd is not None and stat >= 0
        assert os.pread(stat, 64, 0).startswith(f"{os.getpid()} (".encode())
    finally:
        if fd is not None:
            os.close(fd)
        if stat >= 0:
            os.close(stat)
    assert own_group_options() == {"process_group": 0}
