"""Per-identity daily limits of the submit path, atomic across threads and processes.

A :class:`SubmitQuota` keeps one row per counted action (``check``: any upload, "Validate only" or submit;
``store``: a new stored entry) in its own small SQLite file next to the leaderboard's database, so it never touches
the store's schema. :meth:`SubmitQuota.take` counts and records in one ``BEGIN IMMEDIATE`` transaction: SQLite's
write lock serialises concurrent takers, so of N uploads racing for the last slot exactly one gets it (tested with
threads and processes). A slot taken for work that then stored nothing (a duplicate) is given back
(:meth:`SubmitQuota.release`).

Identities are strings chosen by the caller: ``hf:<user>`` (the Hub's OAuth login in a Space), ``header:<value>``
(a trusted header set by a local reverse proxy), ``token:<name>`` (a submit token), ``local:<name>`` (the CLI and
Python callers, who hold the database anyway), ``anonymous`` (only where anonymous uploads are allowed: all
anonymous visitors then share one quota).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

__all__ = ["QuotaExceeded", "SubmitQuota", "quota_path", "ACTIONS"]

#: What is counted: every upload checked (validate or submit), and every new stored entry.
ACTIONS = ("check", "store")


class QuotaExceeded(ValueError):
    """The identity used its daily allowance; the message says which and when to try again."""


def quota_path(store) -> Path:
    """Where the quota of ``store`` lives: next to its SQLite file (the Hub store: next to its cache)."""
    db = getattr(store, "path", None) or store.cache.path
    return Path(db).with_name(Path(db).name + ".quota")


def _iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).replace(microsecond=0).isoformat()


class SubmitQuota:
    """Daily counters per identity and action in one SQLite file (see the module docstring)."""

    def __init__(self, path, window: timedelta = timedelta(days=1), timeout: float = 30.0):
        self.path = Path(path)
        self.window = window
        self.timeout = float(timeout)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("CREATE TABLE IF NOT EXISTS taken (id INTEGER PRIMARY KEY AUTOINCREMENT, identity TEXT NOT "
                         "NULL, action TEXT NOT NULL, at TEXT NOT NULL)")
            conn.execute("CREATE INDEX IF NOT EXISTS taken_by_identity ON taken (identity, action, at)")

    @classmethod
    def for_store(cls, store) -> "SubmitQuota":
        return cls(quota_path(store))

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        return conn

    def used(self, identity: str, action: str, now: datetime) -> int:
        """How many ``action`` slots ``identity`` holds in the window ending at ``now``."""
        with closing(self._connect()) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM taken WHERE identity = ? AND action = ? AND at > ?",
                                    (identity, action, _iso(now - self.window))).fetchone()[0])

    def take(self, identity: str, action: str, limit: int, now: datetime) -> int | None:
        """Take one ``action`` slot for ``identity`` if it holds fewer than ``limit`` in the window: count and
        record in one write transaction. Returns the slot's id (for :meth:`release`), None when ``limit`` is 0
        (no limit); raises :class:`QuotaExceeded` when the allowance is used up."""
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
        if not limit:
            return None
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows = conn.execute("SELECT at FROM taken WHERE identity = ? AND action = ? AND at > ? ORDER BY at",
                                    (identity, action, _iso(now - self.window))).fetchall()
                if len(rows) >= limit:
                    conn.execute("ROLLBACK")
                    free_at = datetime.fromisoformat(rows[0][0]) + self.window
                    raise QuotaExceeded(_exceeded(identity, action, limit, free_at))
                slot = conn.execute("INSERT INTO taken (identity, action, at) VALUES (?, ?, ?)",
                                    (identity, action, _iso(now))).lastrowid
                conn.execute("COMMIT")
                return int(slot)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def release(self, slot: int | None) -> None:
        """Give a slot back (its work stored nothing new)."""
        if slot is None:
            return
        with closing(self._connect()) as conn:
            conn.execute("DELETE FROM taken WHERE id = ?", (int(slot),))


def _exceeded(identity: str, action: str, limit: int, free_at: datetime) -> str:
    what = "uploads checked" if action == "check" else "new entries stored"
    who = "anonymous visitors together" if identity == "anonymous" else identity.split(":", 1)[-1]
    return (f"{who} already had {limit} {what} in the last 24 hours, the daily limit for one submitter; try again "
            f"after {free_at.strftime('%Y-%m-%d %H:%M')} UTC")
