"""The ``pyecho_file`` resource: plan, apply, read and import of a text file.

Each function takes and returns cty objects (``cty.Object``, None for "no
object"); OSError from the file system reaches the caller, which turns it
into a diagnostic. Relative paths resolve against the provider's working
directory, which Terraform sets to the configuration's directory.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Any

from .cty import UNKNOWN, Object


def plan(prior: Object | None, proposed: Object | None) -> tuple[Object | None, list[str]]:
    """(planned state, attributes whose change forces a replacement)."""
    if proposed is None:
        return None, []  # destroy
    if prior is None:
        return {**proposed, "id": UNKNOWN}, []  # create: the id is known after apply
    planned = {**proposed, "id": prior["id"]}
    replace = ["path"] if proposed["path"] != prior["path"] else []
    return planned, replace


def apply(prior: Object | None, planned: Object | None) -> Object | None:
    """Make the file match ``planned``; return the new state."""
    if planned is None:
        assert prior is not None
        _remove(prior["path"])
        return None
    _write(planned["path"], planned["content"])
    identifier = prior["id"] if prior is not None else uuid.uuid4().hex
    return {**planned, "id": identifier}


def read(current: Object) -> Object | None:
    """The state as the file is now; None when someone removed it."""
    try:
        content = Path(current["path"]).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return {**current, "content": content}


def import_state(path: str) -> Object:
    """The state of an existing file, for ``terraform import pyecho_file.x PATH``."""
    content = Path(path).read_text(encoding="utf-8")
    return {"id": uuid.uuid4().hex, "path": path, "content": content}


def _write(path: Any, content: Any) -> None:
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_text(content, encoding="utf-8")
        os.replace(temporary, target)  # readers never see a half-written file
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _remove(path: Any) -> None:
    with contextlib.suppress(FileNotFoundError):  # already gone: the goal of a delete
        os.unlink(path)
