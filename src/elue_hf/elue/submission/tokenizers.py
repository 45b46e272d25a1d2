"""The server's tokenizers for the token-length cross-check: an allow-list, each tokenizer loaded once, a
fingerprint of each tokenizer's files, and the counting itself (:mod:`.lengths` caches what is counted).

A submission names its tokenizer by Hub id. On a server the id is looked up only in the folders the server configures
(``tokenizer_roots``, one folder per tokenizer named ``owner--name``): that list is the allow-list, and anything else is
refused with a sentence naming what is allowed. Nothing is downloaded into the web process unless ``allow_hub`` is set
(the command line, for one's own machine). A folder that does not load as a fast tokenizer is the package's
:class:`SubmissionError`, never a raw library error, and a degenerate tokenizer (a whole sentence as one or two tokens,
which would make every declared length 3) is refused.

A test set's lengths are counted without truncation (:func:`count_lengths`) and cut at each file's
``max_seq_length`` later (``min(length, max_seq_length)`` is what truncation gives, pairs included).
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import Mapping

import numpy as np

from ..tasks import ElueTask
from .format import SubmissionError

__all__ = ["TokenizerAllowList", "files_fingerprint", "count_lengths", "PROBE_TEXT", "MIN_PROBE_TOKENS",
           "NO_TRUNCATION", "CHUNK_ROWS", "serialisation_fingerprint"]

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]{0,95}(/[A-Za-z0-9][\w.\-]{0,95})?")
#: A sentence any real tokenizer splits into several tokens; fewer than MIN_PROBE_TOKENS (specials excluded) is refused.
PROBE_TEXT = "The quick brown fox jumps over the lazy dog, twice."
MIN_PROBE_TOKENS = 4
#: Lengths are counted up to this many tokens (longer than any ``max_seq_length`` a submission may declare).
NO_TRUNCATION = 1_000_000
#: Test rows tokenised at once (their token ids are Python lists: a whole IMDb test set at once took 1.7 GB).
CHUNK_ROWS = 1024


def _fast(tokenizer, name: str):
    if not getattr(tokenizer, "is_fast", False):
        raise SubmissionError(f"tokenizer {name!r} is not a fast (Rust) tokenizer")
    return tokenizer


def _not_degenerate(tokenizer, name: str):
    pieces = tokenizer(PROBE_TEXT, add_special_tokens=False)["input_ids"]
    if len(pieces) < MIN_PROBE_TOKENS:
        raise SubmissionError(f"tokenizer {name!r} splits a 10-word sentence into {len(pieces)} token(s): it cannot "
                              "give meaningful token lengths")
    return tokenizer


class TokenizerAllowList:
    """The tokenizers a server accepts: folders under ``roots`` (``owner--name`` or ``owner/name``), plus any Hub id
    when ``allow_hub``. Each is loaded once (thread-safe)."""

    def __init__(self, roots=(), allow_hub: bool = False):
        self.roots = [Path(r) for r in roots]
        self.allow_hub = bool(allow_hub)
        self._loaded: dict[str, object] = {}
        self._lock = threading.Lock()

    def folder(self, name: str) -> Path | None:
        for root in self.roots:
            for folder in (root / name.replace("/", "--"), root / name):
                if folder.is_dir():
                    return folder
        return None

    def known(self) -> list[str]:
        """The ids the server's folders hold (for the refusal)."""
        return sorted({p.name.replace("--", "/") for r in self.roots if r.is_dir() for p in r.iterdir() if p.is_dir()})

    def resolve(self, name) -> Path | None:
        """The server folder holding tokenizer ``name`` (None: a Hub id, only when ``allow_hub``); raises
        :class:`SubmissionError` for a malformed id or one the server does not hold. Loads nothing."""
        if not isinstance(name, str) or not _HUB_ID.fullmatch(name):
            raise SubmissionError(f"'tokenizer' must be a Hub id like 'bert-base-uncased' or 'owner/name', got "
                                  f"{str(name)[:60]!r}")
        folder = self.folder(name)
        if folder is None and not self.allow_hub:
            known = self.known()
            raise SubmissionError(f"tokenizer {name!r} is not among this server's tokenizers ("
                                  + (", ".join(known[:8]) + (", ..." if len(known) > 8 else "") if known else "none")
                                  + "); name one of them, or ask the maintainers to add it")
        return folder

    def load(self, name) -> object:
        folder = self.resolve(name)
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._load(name, folder)
            return self._loaded[name]

    def _load(self, name: str, folder: Path | None):
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder) if folder else name, use_fast=True,
                                                      trust_remote_code=False)
            tokenizer = _fast(tokenizer, name)
            return _not_degenerate(tokenizer, name)
        except SubmissionError:
            raise
        except Exception as err:  # a malformed tokenizer file: many library error types, one sentence
            text = str(err).replace(str(folder), f"<tokenizers>/{folder.name}") if folder else str(err)
            raise SubmissionError(f"tokenizer {name!r} cannot be loaded ({type(err).__name__}: "
                                  f"{text.splitlines()[0][:120] if text else 'malformed files'})") from None


def files_fingerprint(folder: Path) -> str:
    """A hash of every file under ``folder`` (relative names and bytes, in name order): editing, adding or removing a
    tokenizer file changes it."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def serialisation_fingerprint(tokenizer) -> str:
    """A hash of a loaded fast tokenizer's own serialisation (for a Hub tokenizer, which has no server folder)."""
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode("utf-8")).hexdigest()[:16]


def count_lengths(tokenizer, task: ElueTask, columns: Mapping) -> np.ndarray:
    """Each row's token count, specials included, without truncation: the Rust tokenizer itself (a copy with
    truncation and padding off), a chunk of :data:`CHUNK_ROWS` rows at a time (bounded memory, no Python lists of
    ids); equal to :func:`~elue_hf.elue.data.token_lengths` without truncation (tested)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    fields = [list(columns[name]) for name in task.text_fields]
    rows = len(fields[0])
    full = np.zeros(rows, dtype=np.int64)
    for start in range(0, rows, CHUNK_ROWS):
        chunk = [f[start:start + CHUNK_ROWS] for f in fields]
        inputs = chunk[0] if len(chunk) == 1 else list(zip(*chunk))
        full[start:start + len(chunk[0])] = [len(e) for e in backend.encode_batch(inputs)]
    return full
