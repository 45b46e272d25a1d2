"""The ELUE leaderboard: a store of entries (SQLite, or a Hub dataset), rankings, the gradio app and its CLI.

>>> from elue_hf.leaderboard import SQLiteStore, build_app, submit_file
>>> store = SQLiteStore("leaderboard.db")
>>> outcome = submit_file(store, "submission.zip", gold="path/to/ELUE")   # validate -> score -> store -> rank
>>> build_app(store, gold="path/to/ELUE").launch()                       # or: elue-hf leaderboard --db ...

The app (gradio, pandas) loads on first use of ``Leaderboard`` / ``build_app`` / ``app_from_env``.
"""

from __future__ import annotations

from .ranking import Filters, rank_of
from .records import EntryRecord, PointRecord, RecordError
from .seed import seed_entries, seed_store
from .store import DuplicateEntryError, HubStore, SQLiteStore, StoreError, open_store
from .submit import SubmitError, UploadLimits, submit_file

_APP = ("Leaderboard", "build_app", "app_from_env")


def __getattr__(name):
    if name in _APP:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    *_APP,
]
