"""Token lengths of the server's test sets per (tokenizer, task): counted once, kept on disk, and never counted by a
web server.

A test set is tokenised once per (tokenizer, task), without truncation, and each file's lengths are that count cut at
its ``max_seq_length``; so a submission of many files, or many uploads, cost one tokenisation. The counts are kept in
memory and, when a folder is given (``token-lengths/`` next to the leaderboard's database), as ``.npy`` files named
``<owner--name>.<tokenizer hash>.<task>.<test-set hash>.npy``: the tokenizer hash covers every file of the tokenizer's
server folder (:func:`~.tokenizers.files_fingerprint`) and the test-set hash the bytes of ``test_full.tsv``, so editing
either makes a new key and the old file is never read again.

Two ways to use the cache:

- ``compute=True`` (the command line, a Python caller): a missing count is computed in this process and saved;
- ``compute=False`` (the web app): a missing count is never computed here. The cache calls ``when_cold`` (the app
  starts ``elue-hf leaderboard-prepare`` in a separate process) and raises :class:`LengthsNotReady`, a one-sentence
  refusal asking to try again in a minute; the web process never loads a tokenizer.

:func:`prepare` fills the cache for every allowed tokenizer and every test set the server holds (what
``elue-hf leaderboard-prepare`` runs, at the app's start-up or by the operator). A tokenizer that cannot be loaded, or
is degenerate, gets a ``<owner--name>.<tokenizer hash>.refused.txt`` file holding the refusal, which the web app
repeats to submitters.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from ..data import SPLIT_FILES, read_elue_tsv, task_dir
from ..tasks import TASK_KEYS, TASKS, ElueTask, get_task
from .format import SubmissionError
from .tokenizers import TokenizerAllowList, count_lengths, files_fingerprint, serialisation_fingerprint

__all__ = ["LengthsNotReady", "ServerTexts", "TokenLengthCache", "shared_cache", "prepare", "PREPARE_LOCK"]

#: Lock file that serialises :func:`prepare` runs sharing one folder (the app's job, the operator's command).
PREPARE_LOCK = ".prepare.lock"


class LengthsNotReady(SubmissionError):
    """The lengths a submission needs are not counted yet and this process does not count them (the web app)."""


def _stat_signature(paths) -> tuple:
    return tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in paths)


class _Fingerprints:
    """Hashes of files, recomputed only when a file's size or modification time changes (a server hashes its
    tokenizer folders and test sets once, not once per upload)."""

    def __init__(self):
        self._known: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def of(self, key: str, paths: list[Path], compute: Callable[[], str]) -> str:
        signature = _stat_signature(paths)
        with self._lock:
            known = self._known.get(key)
            if known is not None and known[0] == signature:
                return known[1]
        value = compute()
        with self._lock:
            self._known[key] = (signature, value)
        return value


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


class ServerTexts:
    """The text columns of the test sets in an ELUE data folder (``<Task>/test_full.tsv``): ``texts(task)`` gives a
    task's columns, :meth:`fingerprint` a hash of its file (read in blocks, the texts never held)."""

    def __init__(self, data_dir):
        self.data_dir = Path(data_dir)
        self._hashes = _Fingerprints()

    def path(self, task: ElueTask) -> Path:
        return task_dir(self.data_dir, task) / SPLIT_FILES["test_full"]

    def tasks(self) -> list[ElueTask]:
        """The tasks whose test set this folder holds."""
        held = []
        for task in (TASKS[key] for key in TASK_KEYS):
            try:
                if self.path(task).is_file():
                    held.append(task)
            except FileNotFoundError:  # no folder for the task
                continue
        return held

    def fingerprint(self, task: ElueTask) -> str:
        path = self.path(task)
        return self._hashes.of(str(path), [path], lambda: _file_hash(path))

    def __call__(self, task) -> dict:
        task = get_task(task)  # a name from a caller, or the task itself
        columns = read_elue_tsv(self.path(task), task, "test_full")
        return {name: columns[name] for name in task.text_fields}


def _texts_fingerprint(texts, task: ElueTask) -> str:
    """The test set's hash: the file's for :class:`ServerTexts`, else a hash of the columns (in-memory test sets)."""
    if hasattr(texts, "fingerprint"):
        return texts.fingerprint(task)
    digest = hashlib.sha256()
    for name, column in sorted(dict(texts(task.key)).items()):
        digest.update(name.encode() + b"\0" + "\0".join(map(str, column)).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]


class TokenLengthCache:
    """Token lengths of each test set per tokenizer, counted once (see the module docstring). ``folder``: where they
    are kept on disk (None: memory only); ``compute``: count a missing set in this process (False: the web app,
    which raises :class:`LengthsNotReady` after calling ``when_cold(name, task)``)."""

    def __init__(self, tokenizers: TokenizerAllowList, folder=None, compute: bool = True,
                 when_cold: Callable[[str, ElueTask], None] | None = None):
        if not compute and (tokenizers.allow_hub or folder is None):
            raise ValueError("a cache that never counts needs server tokenizer folders and a cache folder")
        self.tokenizers = tokenizers
        self.folder = Path(folder) if folder is not None else None
        self.compute = compute
        self.when_cold = when_cold
        self._memory: dict[tuple, np.ndarray] = {}
        self._hashes = _Fingerprints()
        self._lock = threading.Lock()
        self.computed = 0  # how many (tokenizer, task) tokenisations ran here (the rest came from the cache)

    def lengths(self, name: str, task: ElueTask, texts: Callable[[str], Mapping], max_length: int) -> np.ndarray:
        """Each test instance's token count under tokenizer ``name``, truncated at ``max_length``."""
        return np.minimum(self.full(name, task, texts), max_length)

    def tokenizer_fingerprint(self, name: str) -> str:
        """The hash of tokenizer ``name``'s server folder (its files; nothing is loaded), or, for a Hub tokenizer
        (``allow_hub``), of its serialisation."""
        folder = self.tokenizers.resolve(name)
        if folder is None:
            return serialisation_fingerprint(self.tokenizers.load(name))
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        return self._hashes.of(str(folder), files, lambda: files_fingerprint(folder))

    def path(self, name: str, task: ElueTask, texts) -> tuple[tuple, Path | None]:
        """The (memory key, disk file) of one (tokenizer, task); raises for a tokenizer the server does not hold."""
        stem = f"{name.replace('/', '--')}.{self.tokenizer_fingerprint(name)}"
        key = (stem, task.key, _texts_fingerprint(texts, task))
        return key, (self.folder / f"{stem}.{task.key}.{key[2]}.npy" if self.folder else None)

    def refused_path(self, name: str) -> Path | None:
        stem = f"{name.replace('/', '--')}.{self.tokenizer_fingerprint(name)}"
        return self.folder / f"{stem}.refused.txt" if self.folder else None

    def cached(self, name: str, task: ElueTask, texts) -> np.ndarray | None:
        """The counted lengths (no truncation) if memory or disk holds them, else None; never counts."""
        key, path = self.path(name, task, texts)
        full = self._memory.get(key)
        if full is None:
            full = _read(path)
            if full is not None:
                self._memory[key] = full
        return full

    def full(self, name: str, task: ElueTask, texts) -> np.ndarray:
        """Each instance's token count without truncation: from the cache, else counted here (``compute``) or
        refused (:class:`LengthsNotReady`)."""
        full = self.cached(name, task, texts)
        if full is not None:
            return full
        refused = self.refused_path(name)
        if refused is not None and refused.is_file():
            raise SubmissionError(refused.read_text(encoding="utf-8").strip())
        if not self.compute:
            if self.when_cold is not None:
                self.when_cold(name, task)
            raise LengthsNotReady(f"this server is still counting the token lengths of the {task.name} test set "
                                  f"under tokenizer {name!r} (a background job); nothing was checked or stored: "
                                  "try again in a minute")
        with self._lock:  # one tokenisation at a time: a second request for the same set waits and reuses it
            return self._count(name, task, texts)

    def _count(self, name: str, task: ElueTask, texts) -> np.ndarray:
        key, path = self.path(name, task, texts)
        if key in self._memory:
            return self._memory[key]
        try:
            tokenizer = self.tokenizers.load(name)
        except SubmissionError as err:
            _write_text(self.refused_path(name), str(err))
            raise
        full = count_lengths(tokenizer, task, dict(texts(task.key)))
        self.computed += 1
        _write(path, full)
        self._memory[key] = full
        return full


def _read(path: Path | None) -> np.ndarray | None:
    if path is None or not path.is_file():
        return None
    try:
        full = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return full if full.ndim == 1 and full.dtype.kind == "i" else None


def _partial(path: Path) -> Path:
    return path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")


def _write(path: Path | None, full: np.ndarray) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = _partial(path)
        with open(partial, "wb") as handle:
            np.save(handle, full, allow_pickle=False)
        partial.replace(path)  # atomic: a reader sees the whole file or none
    except OSError:  # a read-only folder: the memory cache still holds it
        pass


def _write_text(path: Path | None, text: str) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = _partial(path)
        partial.write_text(text + "\n", encoding="utf-8")
        partial.replace(path)
    except OSError:
        pass


_SHARED: dict[tuple, TokenLengthCache] = {}
_SHARED_LOCK = threading.Lock()


def shared_cache(roots=(), folder=None, allow_hub: bool = False) -> TokenLengthCache:
    """One counting :class:`TokenLengthCache` per (server folders, cache folder) for the life of the process: what the
    command line and Python callers use, so a tokenizer is loaded and a test set tokenised once, not once per upload."""
    key = (tuple(str(r) for r in roots), str(folder) if folder is not None else None, bool(allow_hub))
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = TokenLengthCache(TokenizerAllowList(roots, allow_hub), folder)
        return _SHARED[key]


class _FolderLock:
    """An exclusive ``flock`` on ``folder/.prepare.lock`` (waits for another run; no-op where flock is missing)."""

    def __init__(self, folder: Path):
        self.path = folder / PREPARE_LOCK
        self.handle = None

    def __enter__(self):
        try:
            import fcntl
        except ImportError:  # not POSIX: runs may overlap; each write is still atomic
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "a")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        if self.handle is not None:
            self.handle.close()  # releases the lock


def prepare(tokenizer_roots, data_dir, folder, log: Callable[[str], None] | None = None) -> list[dict]:
    """Count the lengths of every tokenizer in ``tokenizer_roots`` on every test set in ``data_dir`` into ``folder``
    (what is already there is kept). One run at a time per folder. Returns one row per (tokenizer, task):
    ``{"tokenizer", "task", "status": "cached" | "counted" | "refused", "seconds", "why"}``."""
    folder = Path(folder)
    allowed = TokenizerAllowList(tokenizer_roots)
    cache = TokenLengthCache(allowed, folder)
    texts = ServerTexts(data_dir)
    rows = []
    with _FolderLock(folder):
        for name in allowed.known():
            for task in texts.tasks():
                start, why = time.perf_counter(), ""
                if cache.cached(name, task, texts) is not None:
                    status = "cached"
                else:
                    try:
                        cache.full(name, task, texts)
                        status = "counted"
                    except SubmissionError as err:
                        status, why = "refused", str(err)
                row = {"tokenizer": name, "task": task.key, "status": status,
                       "seconds": round(time.perf_counter() - start, 2), "why": why}
                if log is not None:
                    log(f"{name} {task.name}: {status} ({row['seconds']:.1f} s){': ' + why if why else ''}")
                rows.append(row)
                if status == "refused":
                    break  # the tokenizer itself is refused: the other tasks would say the same
    return rows
