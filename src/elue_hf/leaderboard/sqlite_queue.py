"""The verification queue of a :class:`~elue_hf.leaderboard.sqlite_store.SQLiteStore` (table
``verification_jobs``): enqueue a re-run, claim a job, record its outcome. Every operation is one ``BEGIN IMMEDIATE``
transaction of the store it is mixed into (:class:`SQLiteQueue` uses the store's ``_transaction`` and ``worker``)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import sqlite3
from dataclasses import dataclass

from .records import with_verification

__all__ = ["JOB_STATES", "VerificationJob", "SQLiteQueue", "worker_name"]

logger = logging.getLogger(__name__)

#: States of a verification job: waiting, being re-run, and the two outcomes.
JOB_STATES = ("pending", "running", "verified", "failed")


@dataclass(frozen=True)
class VerificationJob:
    entry_id: str
    state: str
    submission: str  # server path of the kept submission zip
    attempts: int
    created_at: str
    updated_at: str
    report: dict


def worker_name() -> str:
    """A name for the worker of one store object (``<host>:<pid>:<random>``): the claims it makes carry it, and a
    job is finished only under the claim that names it."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def _held(row, worker: str) -> bool:
    """Whether a ``verification_jobs`` (state, report) row is ``running`` under the claim of ``worker``."""
    return row is not None and row[0] == "running" and json.loads(row[1]).get("worker") == worker


def _claim_text(row) -> str:
    if row is None:
        return "gone"
    holder = json.loads(row[1]).get("worker")
    return f"{row[0]}" + (f" under {holder}" if holder and row[0] == "running" else "")


class SQLiteQueue:
    """The queue methods of :class:`~elue_hf.leaderboard.sqlite_store.SQLiteStore`."""

    def enqueue_verification(self, entry_id: str, submission: str, now: str) -> bool:
        """Queue a re-run of a stored entry (idempotent: an entry is queued once); True if newly queued."""
        with self._transaction(write=True) as conn:
            return conn.execute(
                "INSERT OR IGNORE INTO verification_jobs (entry_id, state, submission, created_at, updated_at) "
                "VALUES (?, 'pending', ?, ?, ?)", (entry_id, str(submission), now, now)).rowcount > 0

    def claim_verification(self, now: str, max_attempts: int = 3) -> VerificationJob | None:
        """Take the oldest job to run, in one transaction: a pending one, or one left ``running`` by a worker that
        died (only one worker runs at a time, so a running job seen at claim time is orphaned). A job that was
        claimed ``max_attempts`` times is marked failed instead of being run again. The claim's report names this
        store's :attr:`worker`: only it may finish the job (:meth:`finish_verification`)."""
        with self._transaction(write=True) as conn:
            conn.execute("UPDATE verification_jobs SET state = 'failed', updated_at = ?, report = ?, synced = 0 "
                         "WHERE state IN ('pending', 'running') AND attempts >= ?",
                         (now, json.dumps({"error": f"gave up after {max_attempts} attempts"}), max_attempts))
            row = conn.execute("SELECT entry_id FROM verification_jobs WHERE state IN ('pending', 'running') "
                               "ORDER BY state = 'pending', created_at, rowid LIMIT 1").fetchone()
            if row is None:
                return None
            conn.execute("UPDATE verification_jobs SET state = 'running', attempts = attempts + 1, updated_at = ?, "
                         "report = ?, synced = 0 WHERE entry_id = ?",
                         (now, json.dumps({"worker": self.worker}), row[0]))
            return self._job(conn, row[0])

    def finish_verification(self, entry_id: str, verified: bool, report: dict, now: str,
                            worker: str | None = None) -> bool:
        """Record a job's outcome, only while the job is still ``running`` under the claim of ``worker`` (default
        :attr:`worker`); a verified entry and all its points move to the ``verified`` tier, in the same transaction
        (so a kill never leaves one without the other). The stored report names the worker. Returns False, with a
        logged warning and nothing written, when the claim was taken over (or the job is gone or already finished):
        a stale worker never overwrites the result of the worker that took its job."""
        worker = worker or self.worker
        state = "verified" if verified else "failed"
        with self._transaction(write=True) as conn:
            row = conn.execute("SELECT state, report FROM verification_jobs WHERE entry_id = ?", (entry_id,)).fetchone()
            if not _held(row, worker):
                logger.warning("discarding the %s result of %s: the job is no longer running under the claim of %s "
                               "(now %s)", state, entry_id, worker, _claim_text(row))
                return False
            conn.execute("UPDATE verification_jobs SET state = ?, updated_at = ?, report = ?, synced = 0 "
                         "WHERE entry_id = ?",
                         (state, now, json.dumps({**report, "worker": worker}, sort_keys=True, default=float),
                          entry_id))
            if verified:  # the entry now shows the re-run's figures (records.with_verification)
                (entry,) = self._load_in(conn, "WHERE entry_id = ?", (entry_id,))
                self._replace_entry(conn, with_verification(entry, report))
        return True

    def verification_jobs(self, state: str | None = None) -> list[VerificationJob]:
        """Every job (or those in ``state``), oldest first."""
        with self._transaction(write=False) as conn:
            ids = conn.execute("SELECT entry_id FROM verification_jobs" + (" WHERE state = ?" if state else "")
                               + " ORDER BY created_at, entry_id", (state,) if state else ()).fetchall()
            return [self._job(conn, r[0]) for r in ids]

    @staticmethod
    def _job(conn: sqlite3.Connection, entry_id: str) -> VerificationJob:
        row = conn.execute("SELECT entry_id, state, submission, attempts, created_at, updated_at, report FROM "
                           "verification_jobs WHERE entry_id = ?", (entry_id,)).fetchone()
        return VerificationJob(*row[:6], report=json.loads(row[6]))
