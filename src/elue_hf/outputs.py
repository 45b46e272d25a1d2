"""Where a command or a saving function writes: an existing non-empty folder (or file) is refused unless the caller
says ``overwrite``, so an earlier run's model is never replaced by accident."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["refuse_existing"]


def refuse_existing(path: str | os.PathLike, name: str, overwrite: bool = False, fix: str = "pass --overwrite") -> Path:
    """``path`` as a ``Path``; ``ValueError`` (one sentence naming ``name`` and the ``fix``) when it is a non-empty
    folder or an existing file and ``overwrite`` is false. With ``overwrite``, files are written over in place."""
    path = Path(path)
    taken = path.is_file() or (path.is_dir() and any(path.iterdir()))
    if taken and not overwrite:
        kind = "file" if path.is_file() else "folder, not empty"
        raise ValueError(f"{name} {path} already exists ({kind}): {fix} to write over it, or choose another path")
    return path
