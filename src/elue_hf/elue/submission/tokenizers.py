"""The server's tokenizers for the token-length cross-check: an allow-list, each tokenizer loaded once, and the
token lengths of each (tokenizer, task) computed once.

A submission names its tokenizer by Hub id. On a server the id is looked up only in the folders the server configures
(``tokenizer_roots``, one folder per tokenizer named ``owner--name``): that list is the allow-list, and anything else is
refused with a sentence naming what is allowed. Nothing is downloaded into the web process unless ``allow_hub`` is set
(the command line, for one's own machine). A folder that does not load as a fast tokenizer is the package's
:class:`SubmissionError`, never a raw library error, and a degenerate tokenizer (a whole sentence as one or two tokens,
which would make every declared length 3) is refused.

The lengths are counted once per (tokenizer, task) without truncation, then cut at each file's ``max_seq_length``
(``min(length, max_seq_length)`` is what truncation gives, pairs included): so a submission of many files, or many
``max_seq_length`` values, tokenises a test set once. They are kept in memory and, when a folder is given (next to the
leaderboard's database), on disk as ``.npy`` files keyed by a hash of the tokenizer's own serialisation, the task and
the number of test rows.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..tasks import get_task
from .format import SubmissionError

__all__ = ["TokenizerAllowList", "TokenLengthCache", "shared_cache", "PROBE_TEXT", "MIN_PROBE_TOKENS",
           "NO_TRUNCATION", "CHUNK_ROWS"]

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

    def load(self, name) -> object:
        if not isinstance(name, str) or not _HUB_ID.fullmatch(name):
            raise SubmissionError(f"'tokenizer' must be a Hub id like 'bert-base-uncased' or 'owner/name', got "
                                  f"{str(name)[:60]!r}")
        with self._lock:
            if name not in self._loaded:
                self._loaded[name] = self._load(name)
            return self._loaded[name]

    def _load(self, name: str):
        from transformers import AutoTokenizer

        folder = self.folder(name)
        if folder is None and not self.allow_hub:
            known = self.known()
            raise SubmissionError(f"tokenizer {name!r} is not among this server's tokenizers ("
                                  + (", ".join(known[:8]) + (", ..." if len(known) > 8 else "") if known else "none")
                                  + "); name one of them, or ask the maintainers to add it")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder) if folder else name, use_fast=True,
                                                      trust_remote_code=False)
            tokenizer = _fast(tokenizer, name)
            return _not_degenerate(tokenizer, name)
        except SubmissionError:
            raise
        except Exception as err:  # a malformed tokenizer file: many library error types, one sentence
            raise SubmissionError(f"tokenizer {name!r} cannot be loaded ({type(err).__name__}: "
                                  f"{str(err).splitlines()[0][:120] if str(err) else 'malformed files'})") from None


def _count(tokenizer, task, columns: Mapping, rows: int) -> np.ndarray:
    """Each row's token count, specials included, without truncation: the Rust tokenizer itself (a copy with
    truncation and padding off), a chunk of :data:`CHUNK_ROWS` rows at a time (bounded memory, no Python lists of
    ids); equal to :func:`~elue_hf.elue.data.token_lengths` without truncation (tested)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    fields = [list(columns[name]) for name in task.text_fields]
    full = np.zeros(rows, dtype=np.int64)
    for start in range(0, rows, CHUNK_ROWS):
        chunk = [f[start:start + CHUNK_ROWS] for f in fields]
        inputs = chunk[0] if len(chunk) == 1 else list(zip(*chunk))
        full[start:start + len(chunk[0])] = [len(e) for e in backend.encode_batch(inputs)]
    return full


class TokenLengthCache:
    """Token lengths of each test set per tokenizer, counted once (see the module docstring). ``folder``: where they
    are kept on disk (None: memory only)."""

    def __init__(self, tokenizers: TokenizerAllowList, folder=None):
        self.tokenizers = tokenizers
        self.folder = Path(folder) if folder is not None else None
        self._memory: dict[tuple, np.ndarray] = {}
        self._lock = threading.Lock()
        self.computed = 0  # how many (tokenizer, task) tokenisations ran (the rest came from the cache)

    def lengths(self, name: str, task, texts: Callable[[str], Mapping], max_length: int) -> np.ndarray:
        """Each test instance's token count under tokenizer ``name``, truncated at ``max_length``."""
        tokenizer = self.tokenizers.load(name)
        task = get_task(task)
        with self._lock:  # one tokenisation at a time: a second request for the same set waits and reuses it
            full = self._full(name, tokenizer, task, texts)
        return np.minimum(full, max_length)

    def _full(self, name: str, tokenizer, task, texts) -> np.ndarray:
        key = (name, task.key)
        if key in self._memory:
            return self._memory[key]
        columns = dict(texts(task.key))
        rows = len(next(iter(columns.values()))) if columns else 0
        fingerprint = hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode("utf-8")).hexdigest()[:16]
        path = (self.folder / f"{name.replace('/', '--')}.{fingerprint}.{task.key}.{rows}.npy" if self.folder
                else None)
        full = self._read(path, rows)
        if full is None:
            full = _count(tokenizer, task, columns, rows)
            self.computed += 1
            self._write(path, full)
        self._memory[key] = full
        return full

    @staticmethod
    def _read(path: Path | None, rows: int) -> np.ndarray | None:
        if path is None or not path.is_file():
            return None
        try:
            full = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None
        return full if full.shape == (rows,) and full.dtype.kind == "i" else None

    @staticmethod
    def _write(path: Path | None, full: np.ndarray) -> None:
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + f".{threading.get_ident()}.partial")
            with open(partial, "wb") as handle:
                np.save(handle, full, allow_pickle=False)
            partial.replace(path)
        except OSError:  # a read-only folder: the memory cache still holds it
            pass


_SHARED: dict[tuple, TokenLengthCache] = {}
_SHARED_LOCK = threading.Lock()


def shared_cache(roots=(), folder=None, allow_hub: bool = False) -> TokenLengthCache:
    """One :class:`TokenLengthCache` per (server folders, cache folder) for the life of the process: what the web
    process and the CLI use, so a tokenizer is loaded and a test set tokenised once, not once per upload."""
    key = (tuple(str(r) for r in roots), str(folder) if folder is not None else None, bool(allow_hub))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = TokenLengthCache(TokenizerAllowList(roots, allow_hub), folder)
        return _SHARED[key]
