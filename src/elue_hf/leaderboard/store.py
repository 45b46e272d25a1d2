"""Where leaderboard entries live: a SQLite database by default, a Hub dataset repository when configured.

:class:`SQLiteStore` (:mod:`.sqlite_store`) — one file, WAL journal, every write one ``BEGIN IMMEDIATE`` transaction,
a versioned schema migrated on open, and the verification queue (:mod:`.sqlite_queue`).

:class:`HubStore` (:mod:`.hub_store`) — the way Hub leaderboards keep results: one JSON file per entry
(``entries/<entry_id>.json``) and one per verification job (``requests/<entry_id>.json``) in a dataset repository,
mirrored into a local SQLite cache that :meth:`HubStore.sync` brings up to date. :func:`open_store` picks it when
``ELUE_RESULTS_REPO`` (or ``results_repo=``) is set. Seeded reference rows stay local (they are package data, not
results).
"""

from __future__ import annotations

import os

from .hub_store import HubStore
from .sqlite_store import (
    DB_ENV,
    JOB_STATES,
    MIGRATIONS,
    SCHEMA_VERSION,
    DuplicateEntryError,
    SQLiteStore,
    StoreError,
    VerificationJob,
    default_db_path,
)

# The public names of the two stores, re-exported here (the module everything imports).
__all__ = ["SCHEMA_VERSION", "JOB_STATES", "VerificationJob", "MIGRATIONS", "StoreError", "DuplicateEntryError",
           "SQLiteStore", "HubStore", "open_store", "default_db_path", "RESULTS_REPO_ENV", "DB_ENV"]

RESULTS_REPO_ENV = "ELUE_RESULTS_REPO"


def open_store(db=None, results_repo: str | None = None, token: str | None = None, api=None, lease_hours=None):
    """The configured store: a :class:`HubStore` when ``results_repo`` or ``$ELUE_RESULTS_REPO`` is set (``db`` is
    then its cache), else a :class:`SQLiteStore` at ``db`` / ``$ELUE_LEADERBOARD_DB`` / the default path.
    ``lease_hours``: how long a claimed verification job stays its worker's (default ``$ELUE_VERIFY_LEASE_HOURS``,
    else 6)."""
    repo = results_repo or os.environ.get(RESULTS_REPO_ENV)
    if repo:
        return HubStore(repo, cache_path=db, api=api, token=token, lease_hours=lease_hours)
    return SQLiteStore(db or default_db_path(), lease_hours=lease_hours)
