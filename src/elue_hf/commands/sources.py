"""Where a command's ``--model`` / ``--tokenizer`` comes from: a local folder or a Hub id, with one-sentence errors
(a missing folder, a folder without the expected files, a Hub id that cannot be loaded offline) instead of the
tracebacks transformers and PEFT raise for them."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Sequence

__all__ = ["is_local", "check_source", "load_from", "TOKENIZER_FILES"]

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_local(name: str) -> bool:
    """A path (it exists, starts with ``.``, ``/`` or ``~``, or cannot be a Hub id), not a Hub repo id."""
    return os.path.exists(name) or not _HUB_ID.match(name) or name.startswith((".", "~"))


def check_source(name: str, flag: str, needs: Sequence[str] = ("config.json",), what: str = "model",
                 hint: str = "") -> Path | str:
    """The local folder ``name`` (``FileNotFoundError`` if missing, ``ValueError`` if it holds none of ``needs``),
    or ``name`` itself when it is a Hub id."""
    if not is_local(name):
        return name
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{flag} {name}: no such folder")
    if needs and not any((folder / f).exists() for f in needs):
        raise ValueError(f"{flag} {name}: the folder has no {what} files ({', '.join(needs)}){hint}")
    return folder


def load_from(loader: Callable, name: str, flag: str, needs: Sequence[str] = ("config.json",), what: str = "model",
              hint: str = ""):
    """``loader(source)`` after :func:`check_source`; a Hub id that cannot be loaded ends in one sentence."""
    source = check_source(name, flag, needs, what, hint)
    try:
        return loader(source)
    except OSError:
        if isinstance(source, Path):
            raise
        raise ValueError(f"{flag} {name}: not a local folder, and no such {what} could be loaded from the Hub "
                         "(offline, not cached, or a typo)") from None
