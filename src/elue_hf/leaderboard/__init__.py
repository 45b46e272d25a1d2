"""The ELUE leaderboard's logic: a store of entries (SQLite, or a Hub dataset), records, rankings, seed rows and
the submit pipeline. No gradio here: the web app is :mod:`elue_hf.spaces.leaderboard`.

>>> from elue_hf.leaderboard import SQLiteStore, submit_file
>>> store = SQLiteStore("leaderboard.db")
>>> outcome = submit_file(store, "submission.zip", gold="path/to/ELUE")   # validate -> score -> store -> rank
"""

from __future__ import annotations

from .ranking import Filters, rank_of
from .records import EntryRecord, PointRecord, RecordError
from .seed import seed_entries, seed_store
from .store import DuplicateEntryError, HubStore, SQLiteStore, StoreError, open_store
from .submit import SubmitError, UploadLimits, submit_file

__all__ = [
    "EntryRecord",
    "PointRecord",
    "RecordError",
    "SQLiteStore",
    "HubStore",
    "StoreError",
    "DuplicateEntryError",
    "open_store",
    "seed_store",
    "seed_entries",
    "Filters",
    "rank_of",
    "submit_file",
    "SubmitError",
    "UploadLimits",
]
