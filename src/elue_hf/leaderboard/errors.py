"""The errors of the leaderboard stores."""

from __future__ import annotations

__all__ = ["StoreError", "DuplicateEntryError"]


class StoreError(RuntimeError):
    """The store cannot be opened, read or written (the message says which and why)."""


class DuplicateEntryError(StoreError):
    """An entry with this id or the same submission digest is already stored."""

    def __init__(self, message: str, existing_id: str):
        super().__init__(message)
        self.existing_id = existing_id
