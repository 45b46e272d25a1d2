"""The web app's token lengths: read from the cache next to the store, counted by a separate process.

Counting the lengths of a large test set (IMDb: 25,000 reviews) under a tokenizer costs about 20 s of CPU and a few
hundred MB; the web process never does it. At start-up the app runs ``elue-hf leaderboard-prepare`` in a subprocess
(:class:`PrepareJob`), which fills ``token-lengths/`` next to the store for every allowed tokenizer and test set
(:func:`elue_hf.elue.submission.lengths.prepare`); the app's :class:`~elue_hf.elue.submission.lengths.TokenLengthCache`
only reads that folder. An upload that needs lengths not counted yet is refused with one sentence ("try again in a
minute") and, if no job is running, starts one. Operators can run the same command before starting the server.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Mapping

from ..elue.submission.lengths import TokenLengthCache
from ..elue.submission.tokenizers import TokenizerAllowList

logger = logging.getLogger(__name__)

__all__ = ["LENGTHS_FOLDER", "lengths_folder", "folder_for_db", "PrepareJob", "web_lengths"]

LENGTHS_FOLDER = "token-lengths"


def folder_for_db(db) -> Path:
    """Where the token lengths are cached for a store whose database (or Hub cache) is ``db``."""
    return Path(db).parent / LENGTHS_FOLDER


def lengths_folder(store) -> Path | None:
    """Where the token lengths of the server's test sets are cached: next to the store's database (or the Hub
    store's cache); None (memory only) for a store without a file."""
    database = getattr(store, "path", None) or getattr(getattr(store, "cache", None), "path", None)
    return folder_for_db(database) if database else None


class PrepareJob:
    """``elue-hf leaderboard-prepare`` in a subprocess (its output in ``<folder>/prepare.log``); at most one at a time
    from this process, and a new one at most every ``retry_after`` seconds (a job that keeps failing is not
    restarted by every upload)."""

    def __init__(self, data_dir, tokenizer_roots, folder, retry_after: float = 60.0):
        self.data_dir = Path(data_dir)
        self.tokenizer_roots = [Path(r) for r in tokenizer_roots]
        self.folder = Path(folder)
        self.retry_after = float(retry_after)
        self.process: subprocess.Popen | None = None
        self._started = -float("inf")
        self._lock = threading.Lock()

    def command(self) -> list[str]:
        roots = [arg for root in self.tokenizer_roots for arg in ("--tokenizer-dir", str(root))]
        return [sys.executable, "-m", "elue_hf.cli", "leaderboard-prepare", "--data-dir", str(self.data_dir),
                "--lengths-dir", str(self.folder), *roots]

    def running(self) -> bool:
        with self._lock:
            return self.process is not None and self.process.poll() is None

    def start(self) -> bool:
        """Start the job unless one is running or one started less than ``retry_after`` seconds ago; True if
        started."""
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                return False
            if time.monotonic() - self._started < self.retry_after:
                return False
            self.folder.mkdir(parents=True, exist_ok=True)
            with open(self.folder / "prepare.log", "ab") as log:
                self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log,
                                                stderr=subprocess.STDOUT, start_new_session=True, env=os.environ.copy())
            self._started = time.monotonic()
            logger.info("counting token lengths in process %d (log: %s)", self.process.pid,
                        self.folder / "prepare.log")
            return True

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the running job (tests, scripts); its exit code, or None when none was started."""
        process = self.process
        return None if process is None else process.wait(timeout)


def web_lengths(store, gold, tokenizer_roots, start: bool = True) -> tuple[TokenLengthCache | None, PrepareJob | None]:
    """The web app's (cache that never counts, job that counts) for ``store``; ``(None, None)`` when there is nothing
    to count here (no tokenizer folders, gold given as labels without texts) or no folder to count into (the length
    check then counts in the process, as the command line does). ``start``: start the job now."""
    folder = lengths_folder(store)
    roots = list(tokenizer_roots)
    if not roots or gold is None or isinstance(gold, Mapping) or folder is None:
        return None, None
    job = PrepareJob(gold, roots, folder)
    cache = TokenLengthCache(TokenizerAllowList(roots), folder, compute=False, when_cold=lambda name, task: job.start())
    if start:
        job.start()
    return cache, job
