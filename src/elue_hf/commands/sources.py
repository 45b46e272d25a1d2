"""Where a command's ``--model`` / ``--tokenizer`` comes from: a local folder or a Hub id, with one-sentence errors
(a missing folder, a folder without the expected files, a Hub id that cannot be loaded offline) instead of the
tracebacks transformers and PEFT raise for them."""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import urlparse

__all__ = ["is_local", "check_source", "check_hub_id", "hub_reachable", "load_from", "TOKENIZER_FILES"]

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                   "sentencepiece.bpe.model")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def is_local(name: str) -> bool:
    """A path (it exists, starts with ``.``, ``/`` or ``~``, or cannot be a Hub id), not a Hub repo id."""
    return os.path.exists(name) or not _HUB_ID.match(name) or name.startswith((".", "~"))


def check_source(name: str, flag: str, needs: Sequence[str] = ("config.json",), what: str = "model",
                 hint: str = "") -> Path | str:
    """The local folder ``name`` (``FileNotFoundError`` if missing, ``ValueError`` if it holds none of ``needs``),
    or ``name`` itself when it is a Hub id that can be loaded (see :func:`check_hub_id`)."""
    if not is_local(name):
        check_hub_id(name, flag, needs, what)
        return name
    folder = Path(name).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{flag} {name}: no such folder")
    if needs and not any((folder / f).exists() for f in needs):
        raise ValueError(f"{flag} {name}: the folder has no {what} files ({', '.join(needs)}){hint}")
    return folder


def _cached(repo_id: str, needs: Sequence[str]) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return any(isinstance(try_to_load_from_cache(repo_id, f), str) for f in needs)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub endpoint opens within ``timeout`` seconds (always True behind a proxy,
    which only the HTTP client knows how to use)."""
    from huggingface_hub import constants

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return True
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def check_hub_id(name: str, flag: str, needs: Sequence[str] = ("config.json",), what: str = "model") -> None:
    """One sentence instead of transformers' tracebacks (and its minute of retries) for a Hub id that cannot be
    loaded: offline (``HF_HUB_OFFLINE=1``) and not in the local cache, or the Hub unreachable and nothing cached.
    Unreachable with a cached copy: this process goes offline (huggingface_hub's own switch) and uses the cache."""
    from huggingface_hub import constants

    cached = _cached(name, needs)
    fix = (f"download it once where the Hub is reachable (`hf download {name}`), or give a local folder")
    if constants.HF_HUB_OFFLINE:
        if not cached:
            raise ValueError(f"{flag} {name}: not a local folder, and no such {what} is in the local Hugging Face "
                             f"cache while Hub access is off (HF_HUB_OFFLINE=1): {fix}")
        return
    if hub_reachable():
        return
    if not cached:
        raise ValueError(f"{flag} {name}: not a local folder, the Hub ({constants.ENDPOINT}) cannot be reached and no "
                         f"such {what} is in the local Hugging Face cache: {fix}")
    constants.HF_HUB_OFFLINE = True
    print(f"{flag} {name}: the Hub cannot be reached; using the cached copy (offline)", file=sys.stderr)


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
