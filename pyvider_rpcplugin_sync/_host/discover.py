"""Finding plugins: executables in a directory (go-plugin's ``Discover``), and plugin
commands that installed Python packages register under an entry-point group."""

from __future__ import annotations

import glob
import os
import sys
from importlib import metadata

from .._constants import PLUGIN_ENTRY_POINT_GROUP


def discover(pattern: str, directory: str | os.PathLike[str] = ".") -> list[str]:
    """The executable files in ``directory`` whose names match ``pattern``.

    As go-plugin's ``Discover(glob, dir)``: the directory is made absolute and the
    glob is matched inside it; beyond go-plugin, symlinks are resolved, directories
    and files this user cannot execute are left out, and the paths are sorted.
    """
    base: str = os.path.abspath(os.fspath(directory))
    found: set[str] = set()
    for path in glob.glob(os.path.join(glob.escape(base), pattern)):
        real = os.path.realpath(path)
        if os.path.isfile(real) and os.access(real, os.X_OK):
            found.add(real)
    return sorted(found)


def installed_plugins(group: str = PLUGIN_ENTRY_POINT_GROUP) -> dict[str, list[str]]:
    """The plugin commands that installed packages register, by name.

    A package registers a plugin as an entry point in ``group`` whose value is a
    module that serves it when run with ``python -m``, for example in its
    ``pyproject.toml``::

        [project.entry-points."pyvider_rpcplugin_sync.plugins"]
        kv = "mypackage.kv_plugin"

    The command is then ``[sys.executable, "-m", "mypackage.kv_plugin"]``: the same
    interpreter, so the plugin sees the packages this host sees.
    """
    commands: dict[str, list[str]] = {}
    for entry in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
        module = entry.value.split(":", 1)[0].strip()
        commands.setdefault(entry.name, [sys.executable, "-m", module])
    return commands
