"""The verification queue of a :class:`~elue_hf.leaderboard.sqlite_store.SQLiteStore` (table
``verification_jobs``): enqueue a re-run, claim a job, record its outcome. Every operation is one ``BEGIN IMMEDIATE``
transaction of the store it is mixed into (:class:`SQLiteQueue` uses the store's ``_transaction`` and ``worker``)."""

from __future__ import annotations

import json
import logging
import sqlite3

from .jobs import VerificationJob, plan_claim
from .records import with_verification

__all__ = ["SQLiteQueue"]

logger = logging.getLogger(__name__)

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
        """Take a job, in one transaction (:func:`~.jobs.plan_claim`): the oldest pending job, else the oldest one
        left ``running`` past its lease (:attr:`lease`; its worker is taken as dead). A takeable job already claimed
        ``max_attempts`` times is marked failed instead of being run again; a job a live worker holds is never
        touched. The claim's report names this store's :attr:`worker`: only it may finish the job
        (:meth:`finish_verification`). Every worker on the database claims this way, so no two run one job."""
        with self._transaction(write=True) as conn:
            ids = conn.execute("SELECT entry_id FROM verification_jobs WHERE state IN ('pending', 'running')")
            changes, job = plan_claim([self._job(conn, r[0]) for r in ids.fetchall()], now, max_attempts,
                                      self.lease, self.worker)
            conn.executemany("UPDATE verification_jobs SET state = ?, attempts = ?, updated_at = ?, report = ?, "
                             "synced = 0 WHERE entry_id = ?",
                             [(a.state, a.attempts, a.updated_at, json.dumps(a.report, sort_keys=True), a.entry_id)
                              for _, a in changes])
            return job

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
