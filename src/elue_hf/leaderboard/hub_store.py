"""The Hub results store: entries and their verification queue as JSON files in a Hub dataset repository, mirrored
in a local SQLite cache.

The repository is the shared truth; each replica's cache (another Space instance, a restarted Space) converges to it:

- ``entries/<entry_id>.json``: one submission (:meth:`EntryRecord.to_json`), added by its own commit.
- ``requests/<entry_id>.json``: its verification job (:func:`~.hub_queue.request_json`): state (``pending``,
  ``running``, ``verified``, ``failed``), attempts, timestamps, the server path of the kept submission and the
  re-run's report, written by every enqueue, claim and finish (the Open LLM Leaderboard keeps its requests the same
  way).

:meth:`HubStore.sync` reads the commit at the head of the repository and lists its tree, reads only files whose git blob
id differs from the one the cache last read (table ``hub_files``): new entries, changed entries and changed requests,
and drops what the cache read from files now gone (a moderator deleted an entry or its request); everything one sync
learns goes into the cache in one transaction. Only a request file in state ``verified`` makes an entry ``verified``:
the tier an entry file claims is never trusted (a ``verified`` claim falls back to the tier its FLOPs source earns; see
:func:`~elue_hf.leaderboard.records.without_verification`). A malformed or oversized file is quarantined (kept in
``skipped_files`` and in the cache, not read again until it changes) and never stops later syncs.

How the queue's writes keep replicas from claiming the same job is told in :mod:`.hub_queue`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Iterable

from .hub_queue import HubQueue, request_from_json
from .jobs import lease_hours_from
from .records import EntryRecord, RecordError, entry_id_for, with_verification, without_verification
from .sqlite_store import (
    DuplicateEntryError,
    SQLiteStore,
    StoreError,
    VerificationJob,
    default_db_path,
    worker_name,
)

__all__ = ["HubStore", "HubCache", "git_blob_id", "settled_entry"]

logger = logging.getLogger(__name__)

_HUB_FILE = re.compile(r"(entries|requests)/([A-Za-z0-9][A-Za-z0-9_.\-]{0,79})\.json")


# --------------------------------------------------------------------------------------------------- Hub files


def git_blob_id(data: bytes) -> str:
    """The git blob id the Hub lists for a file not in LFS: sha1 of ``blob <size>\\0<bytes>``."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def _paths_of(entry_id: str) -> tuple[str, str]:
    """The entry file and the request file of an entry."""
    return f"entries/{entry_id}.json", f"requests/{entry_id}.json"


def settled_entry(entry: EntryRecord, job: VerificationJob | None) -> EntryRecord:
    """What the cache shows for an entry: its tier as the entry file earns it, raised to ``verified`` only by a
    ``verified`` job."""
    base = without_verification(entry)
    return with_verification(base, job.report) if job is not None and job.state == "verified" else base


# ------------------------------------------------------------------------------------------------------ cache


@dataclass
class _Update:
    """What one sync read for one entry id: its entry file and/or request file, and their blob ids."""

    entry_id: str
    entry: EntryRecord | None = None
    job: VerificationJob | None = None
    blobs: dict[str, str] = field(default_factory=dict)


class HubCache(SQLiteStore):
    """A Hub store's local mirror: a :class:`SQLiteStore` that also knows which blob of each Hub file it holds."""

    def known_blobs(self) -> dict[str, str]:
        """Hub path -> the blob id last read (or quarantined)."""
        with self._transaction(write=False) as conn:
            return dict(conn.execute("SELECT path, blob_id FROM hub_files"))

    def problems(self) -> dict[str, str]:
        """Quarantined Hub path -> why."""
        with self._transaction(write=False) as conn:
            return dict(conn.execute("SELECT path, problem FROM hub_files WHERE problem IS NOT NULL"))

    def quarantine(self, path: str, blob_id: str, problem: str) -> None:
        with self._transaction(write=True) as conn:
            conn.execute("INSERT OR REPLACE INTO hub_files (path, blob_id, problem) VALUES (?, ?, ?)",
                         (path, blob_id, problem))

    def unsynced_jobs(self) -> list[VerificationJob]:
        with self._transaction(write=False) as conn:
            ids = conn.execute("SELECT entry_id FROM verification_jobs WHERE synced = 0 ORDER BY rowid").fetchall()
            return [self._job(conn, r[0]) for r in ids]

    def record_pushed(self, changes: Iterable[tuple[VerificationJob, VerificationJob]], blobs: dict[str, str]) -> None:
        """After a commit: each job moves from its state before to the one written, marked synced, only if the cache
        still holds the state before (a job changed meanwhile stays unsynced); the written files' blobs are known."""
        with self._transaction(write=True) as conn:
            conn.executemany(
                "UPDATE verification_jobs SET state = ?, attempts = ?, updated_at = ?, report = ?, synced = 1 "
                "WHERE entry_id = ? AND state = ? AND attempts = ? AND updated_at = ?",
                [(after.state, after.attempts, after.updated_at, json.dumps(after.report, sort_keys=True),
                  before.entry_id, before.state, before.attempts, before.updated_at) for before, after in changes])
            self._know(conn, blobs)

    def record_blobs(self, blobs: dict[str, str]) -> None:
        with self._transaction(write=True) as conn:
            self._know(conn, blobs)

    def drop(self, entry_id: str) -> bool:
        """Forget an entry deleted from the Hub here: its row (with points and job) and its files' blobs."""
        with self._transaction(write=True) as conn:
            self._unknow(conn, _paths_of(entry_id))
            return conn.execute("DELETE FROM entries WHERE entry_id = ?", (entry_id,)).rowcount > 0

    def discard(self, entry_id: str, current: VerificationJob | None, blobs: dict[str, str]) -> None:
        """Drop this cache's unpushed state of a job for the Hub's: ``current`` (its request as read at the head, with
        the blob ids ``blobs``), or none when the Hub's request does not read; the entry's tier follows, all in one
        transaction."""
        with self._transaction(write=True) as conn:
            conn.execute("UPDATE verification_jobs SET synced = 1 WHERE entry_id = ?", (entry_id,))
            if current is not None:
                self._apply_one(conn, _Update(entry_id, job=current, blobs=dict(blobs)))
            else:
                self._forget(conn, [f"requests/{entry_id}.json"])

    @staticmethod
    def _unknow(conn: sqlite3.Connection, paths: Iterable[str]) -> None:
        conn.executemany("DELETE FROM hub_files WHERE path = ?", [(p,) for p in paths])

    @staticmethod
    def _know(conn: sqlite3.Connection, blobs: dict[str, str]) -> None:
        conn.executemany("INSERT OR REPLACE INTO hub_files (path, blob_id, problem) VALUES (?, ?, NULL)",
                         list(blobs.items()))

    def apply(self, updates: list[_Update], gone: Iterable[str] = ()) -> tuple[int, list[tuple[_Update, str]]]:
        """Bring the cache up to date with ``updates`` and the Hub files ``gone``: all in one transaction, or, when
        that fails, the deletions in one and each update in its own. Returns how many entries were new, and the
        updates the cache refused with why."""
        gone = sorted(gone)
        try:
            with self._transaction(write=True) as conn:
                self._forget(conn, gone)
                return sum(self._apply_one(conn, u) for u in updates), []
        except (sqlite3.Error, StoreError, ValueError, TypeError, OverflowError) as err:  # RecordError: a ValueError
            if len(updates) == 1 and not gone:
                return 0, [(updates[0], str(err))]
        if gone:
            with self._transaction(write=True) as conn:
                self._forget(conn, gone)
        added, refused = 0, []
        for update in updates:
            more, failed = self.apply([update])
            added += more
            refused += failed
        return added, refused

    def _forget(self, conn: sqlite3.Connection, gone: list[str]) -> None:
        """Files deleted from the Hub: a gone entry file drops the entry it brought (a submission, with its points and
        job); a gone request file drops a job already on the Hub (an unpushed one is kept, and pushed again) and the
        tier it gave. Local rows (seeded, or never read from the Hub) have no blob here and are never touched."""
        for path in gone:
            kind, entry_id = _HUB_FILE.fullmatch(path).groups()
            if kind == "entries":  # its request file, if still there, is read again should the entry come back
                self._unknow(conn, _paths_of(entry_id))
                conn.execute("DELETE FROM entries WHERE entry_id = ? AND source = 'submission'", (entry_id,))
                continue
            self._unknow(conn, (path,))
            if conn.execute("DELETE FROM verification_jobs WHERE entry_id = ? AND synced = 1", (entry_id,)).rowcount:
                for cached in self._load_in(conn, "WHERE entry_id = ?", (entry_id,)):
                    if settled_entry(cached, None) != cached:  # the tier its request gave goes with it
                        self._replace_entry(conn, settled_entry(cached, None))

    def _apply_one(self, conn: sqlite3.Connection, update: _Update) -> bool:
        cached = self._load_in(conn, "WHERE entry_id = ?", (update.entry_id,))
        cached = cached[0] if cached else None
        if cached is not None and cached.source != "submission":
            raise StoreError(f"entry {update.entry_id} clashes with a local {cached.source} row")
        row = conn.execute("SELECT synced FROM verification_jobs WHERE entry_id = ?", (update.entry_id,)).fetchone()
        blobs = dict(update.blobs)
        job = update.job
        if job is not None and row is not None and not row[0]:  # our newer state is not on the Hub yet: keep it
            job = None
            blobs.pop(f"requests/{update.entry_id}.json")
        entry = update.entry or cached
        if entry is None:  # a request whose entry this cache does not hold (yet): read it again next time
            return False
        settled = settled_entry(entry, job or (self._job(conn, update.entry_id) if row else None))
        if cached is None:
            self._displace_copy(conn, settled)
            self._insert_entry(conn, settled, ignore_existing=False)
        elif settled != cached:
            self._replace_entry(conn, settled)
        if job is not None:
            self._put_job(conn, job)
        self._know(conn, blobs)
        return cached is None

    def _displace_copy(self, conn: sqlite3.Connection, entry: EntryRecord) -> None:
        """Two Hub entry files with one digest: the entry keyed by it (:func:`~.records.entry_id_for`) is the
        original and stays, whichever was read first; the other is quarantined (so every replica, fresh or not, keeps
        the same one). A copy arriving after the original is refused by the digest's unique index (and quarantined)."""
        if not entry.digest or entry.entry_id != entry_id_for(entry.digest):
            return
        row = conn.execute("SELECT entry_id FROM entries WHERE digest = ? AND entry_id != ? AND source = 'submission'",
                           (entry.digest, entry.entry_id)).fetchone()
        if row is None:
            return
        copy_path = _paths_of(row[0])[0]
        blob = conn.execute("SELECT blob_id FROM hub_files WHERE path = ?", (copy_path,)).fetchone()
        conn.execute("DELETE FROM entries WHERE entry_id = ?", (row[0],))
        if blob is not None:
            conn.execute("UPDATE hub_files SET problem = ? WHERE path = ?",
                         (f"quarantined: copies the digest of entry {entry.entry_id}", copy_path))
        logger.warning("entry %s copies the digest of entry %s: kept %s", row[0], entry.entry_id, entry.entry_id)

    @staticmethod
    def _put_job(conn: sqlite3.Connection, job: VerificationJob) -> None:
        conn.execute(
            "INSERT INTO verification_jobs (entry_id, state, submission, attempts, created_at, updated_at, report, "
            "synced) VALUES (?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (entry_id) DO UPDATE SET state = excluded.state, "
            "submission = excluded.submission, attempts = excluded.attempts, created_at = excluded.created_at, "
            "updated_at = excluded.updated_at, report = excluded.report, synced = 1",
            (job.entry_id, job.state, job.submission, job.attempts, job.created_at, job.updated_at,
             json.dumps(job.report, sort_keys=True)))


# ------------------------------------------------------------------------------------------------------ store


class HubStore(HubQueue):
    """Entries and the verification queue as JSON files in a Hub dataset repository, mirrored in a local SQLite cache
    (see the module docstring for how replicas agree).

    ``api`` is a ``huggingface_hub.HfApi`` (created with ``token`` when omitted). Reads serve the cache and re-sync
    from the Hub at most every ``sync_interval`` seconds; a failed sync keeps serving the cache and records the error
    in ``last_sync_error`` (a failed push of a job state: ``last_push_error``). A new entry is committed to the Hub
    first and then to the cache; if the process dies in between, the next sync brings the entry back.
    ``lease_hours`` (default ``$ELUE_VERIFY_LEASE_HOURS``, else :data:`DEFAULT_LEASE_HOURS`): how long a claimed job
    stays its worker's; it must be longer than a re-run may take. ``worker`` names this replica in the claims it
    makes. A queue write that finds the repository changed since this replica read it is re-read and retried,
    ``conflict_retries`` times at most.
    """

    kind = "hub"
    max_entry_bytes = 4 * 2**20
    max_request_bytes = 64 * 2**10

    def __init__(self, repo_id: str, cache_path=None, api=None, token: str | None = None, private: bool = True,
                 create_repo: bool = True, sync_interval: float = 30.0, lease_hours: float | None = None,
                 conflict_retries: int = 5):
        if not isinstance(repo_id, str) or not re.fullmatch(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+", repo_id):
            raise StoreError(f"results repo must look like 'owner/name', got {repo_id!r}")
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        self.repo_id = repo_id
        self.api = api
        self.private = private
        self.create_repo = create_repo
        self.sync_interval = float(sync_interval)
        self.lease = timedelta(hours=lease_hours_from(lease_hours))
        self.conflict_retries = int(conflict_retries)
        self.worker = worker_name()  # who holds the claims this replica makes
        cache_path = cache_path or default_db_path().with_name(f"hub-cache-{repo_id.replace('/', '--')}.db")
        self.cache = HubCache(cache_path)
        self.last_sync_error: str | None = None
        self.last_push_error: str | None = None
        self.skipped_files: dict[str, str] = self.cache.problems()
        self._repo_ready = False
        self._last_sync = -float("inf")
        self._head: str | None = None  # the commit the cache reflects (None: read the Hub before the next write)
        self._head_blobs: dict[str, str] = {}  # Hub path -> blob id, at the commit the cache reflects
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"HubStore({self.repo_id!r}, cache={str(self.cache.path)!r})"

    def describe(self) -> str:
        return f"Hub dataset {self.repo_id} (local cache {self.cache.path})"

    def public_description(self) -> str:
        """What the web page may show (no server paths)."""
        return f"Hub dataset {self.repo_id}"

    def _ensure_repo(self) -> None:
        if self._repo_ready or not self.create_repo:
            return
        self.api.create_repo(self.repo_id, repo_type="dataset", private=self.private, exist_ok=True)
        self._repo_ready = True

    # ------------------------------------------------------------------------------------------------ sync

    def sync(self) -> int:
        """Read every entry and request file that is new, changed or gone on the Hub into the cache (one
        transaction), then push job states not on the Hub yet; returns how many entries were new."""
        with self._lock:
            added = self._read_hub()
            self._push_unsynced("Sync the ELUE verification queue")
            return added

    def _read_hub(self) -> int:
        """Bring the cache to the Hub's current commit, which becomes the parent of this replica's next queue write."""
        head = self.api.repo_info(self.repo_id, repo_type="dataset").sha
        tree = self._remote_tree(head)
        known = self.cache.known_blobs()
        changed = {path: item for path, item in tree.items() if known.get(path) != item.blob_id}
        added, refused = self.cache.apply(self._read_updates(changed, head), set(known) - set(tree))
        for update, why in refused:
            for path, blob in update.blobs.items():
                self._quarantine(path, blob, f"quarantined: {why}")
        self.skipped_files = self.cache.problems()  # a repaired (or deleted) file leaves the quarantine
        self._head, self._head_blobs = head, {path: item.blob_id for path, item in tree.items()}
        self._last_sync = time.monotonic()
        self.last_sync_error = None
        return added

    def _remote_tree(self, head: str) -> dict:
        """Hub path -> its ``RepoFile`` (path, size, blob_id), for the entry and request files at commit ``head``."""
        return {item.path: item for item in self.api.list_repo_tree(self.repo_id, recursive=True, repo_type="dataset",
                                                                    revision=head)
                if getattr(item, "blob_id", None) is not None and _HUB_FILE.fullmatch(item.path)}

    def _read_updates(self, changed: dict, head: str) -> list[_Update]:
        updates: dict[str, _Update] = {}
        for path in sorted(changed):
            kind, entry_id = _HUB_FILE.fullmatch(path).groups()
            try:
                record = self._read_remote(path, kind, entry_id, changed[path].size, head)
            except (ValueError, TypeError) as err:  # RecordError and anything else the content causes, not I/O
                self._quarantine(path, changed[path].blob_id, str(err))
                continue
            update = updates.setdefault(entry_id, _Update(entry_id))
            if kind == "entries":
                update.entry = record
            else:
                update.job = record
            update.blobs[path] = changed[path].blob_id
        return list(updates.values())

    def _read_remote(self, path: str, kind: str, entry_id: str, size: int | None, head: str):
        limit = self.max_entry_bytes if kind == "entries" else self.max_request_bytes
        if size is not None and size > limit:
            raise RecordError(f"larger than {limit} bytes")
        local = Path(self.api.hf_hub_download(self.repo_id, path, repo_type="dataset", revision=head))
        if local.stat().st_size > limit:
            raise RecordError(f"larger than {limit} bytes")
        if kind == "requests":
            return request_from_json(local.read_bytes(), entry_id)
        entry = EntryRecord.from_json(local.read_bytes())
        if entry.entry_id != entry_id:
            raise RecordError(f"holds entry_id {entry.entry_id!r}")
        if entry.source != "submission":
            raise RecordError("only submissions are stored on the Hub")
        return entry

    def _quarantine(self, path: str, blob_id: str, why: str) -> None:
        self.skipped_files[path] = why
        self.cache.quarantine(path, blob_id, why)
        logger.warning("skipping %s in %s: %s", path, self.repo_id, why)

    def _maybe_sync(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_sync < self.sync_interval:
            return
        try:
            self.sync()
        except Exception as err:  # the Hub is unreachable: keep serving the cache, say why
            self.last_sync_error = f"{type(err).__name__}: {err}"
            self._last_sync = time.monotonic()
            logger.warning("could not sync the leaderboard from %s: %s", self.repo_id, self.last_sync_error)

    # ----------------------------------------------------------------------------------------------- writes

    def _commit(self, files: dict[str, str], message: str, parent: str | None = None, deletions: Iterable[str] = ()):
        """One commit; with ``parent`` it is refused (HTTP 412) if the branch moved past that commit. Afterwards the
        cache no longer reflects the branch head: the next queue write reads the Hub first."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        self._ensure_repo()
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=text.encode("utf-8"))
                      for path, text in files.items()]
        operations += [CommitOperationDelete(path_in_repo=path) for path in deletions]
        self._head = None
        return self.api.create_commit(self.repo_id, repo_type="dataset", commit_message=message,
                                      operations=operations, **({"parent_commit": parent} if parent else {}))

    def _commit_on(self, head: str, files: dict[str, str], message: str, deletions: Iterable[str] = ()) -> dict:
        """Commit on top of ``head`` (the commit the cache reflects); returns the blob ids of the files written."""
        self._commit(files, message, parent=head, deletions=deletions)
        return {path: git_blob_id(text.encode("utf-8")) for path, text in files.items()}

    def _without_conflict(self, write):
        """``write(head)`` on the commit the cache reflects; when the Hub changed since (HTTP 412), read it again and
        retry, :attr:`conflict_retries` times at most."""
        for _ in range(self.conflict_retries):
            if self._head is None:
                self._read_hub()
            try:
                return write(self._head)
            except Exception as err:
                if getattr(getattr(err, "response", None), "status_code", None) != 412:
                    raise
                logger.info("%s changed since it was read; reading it again", self.repo_id)
        raise StoreError(f"the Hub dataset {self.repo_id} kept changing: {self.conflict_retries} tries refused")

    def add_entry(self, entry: EntryRecord) -> EntryRecord:
        if entry.source != "submission":
            raise StoreError("only submissions are written to the Hub results repo (seeded rows stay local)")
        if without_verification(entry) != entry:
            raise StoreError(f"entry {entry.entry_id} claims the verified tier; only a finished verification job "
                             "makes an entry verified")
        self._maybe_sync(force=True)
        existing = self.cache.get_entry(entry.entry_id) or (entry.digest and self.cache.find_digest(entry.digest))
        if existing:
            raise DuplicateEntryError(
                f"the same results were already submitted as entry {existing.entry_id} ({existing.model_name})",
                existing.entry_id)
        try:  # validate before anything reaches the Hub: the JSON reads back, the cache accepts the row
            if EntryRecord.from_json(entry.to_json()) != entry:
                raise RecordError("does not survive its JSON form unchanged")
        except RecordError as err:
            raise StoreError(f"entry {entry.entry_id} is not valid: {err}") from None
        self.cache.check_insertable(entry)
        path, text = f"entries/{entry.entry_id}.json", entry.to_json()
        try:
            self._commit({path: text}, f"Add ELUE entry {entry.model_name} ({entry.entry_id})")
        except Exception as err:
            raise StoreError(f"could not write the entry to the Hub dataset {self.repo_id}: "
                             f"{type(err).__name__}: {err}") from err
        self.cache.add_entry(entry)
        self.cache.record_blobs({path: git_blob_id(text.encode("utf-8"))})  # so its deletion is seen too
        return entry

    def ensure_entries(self, entries: Iterable[EntryRecord]) -> int:
        """Seed rows (reference curve, published tables): kept in the local cache only."""
        return self.cache.ensure_entries(entries)

    def delete_entry(self, entry_id: str) -> bool:
        """Moderation: delete the entry file and its request file from the Hub in one commit, then the cached row
        (with its points and job); True if there was anything to delete. Other replicas drop it on their next sync.
        A row only this cache holds (a seeded row) is deleted from the cache alone."""
        with self._lock:
            try:
                self._read_hub()
                gone = self._without_conflict(lambda head: self._delete_files(head, entry_id))
            except Exception as err:
                raise StoreError(f"could not delete entry {entry_id} from the Hub dataset {self.repo_id}: "
                                 f"{type(err).__name__}: {err}") from err
            return self.cache.drop(entry_id) or bool(gone)

    def _delete_files(self, head: str, entry_id: str) -> list[str]:
        paths = [path for path in _paths_of(entry_id) if path in self._head_blobs]
        if paths:
            self._commit_on(head, {}, f"Delete ELUE entry {entry_id}", deletions=paths)
        return paths

    # ------------------------------------------------------------------------------------------------ reads

    def entries(self) -> list[EntryRecord]:
        self._maybe_sync()
        return self.cache.entries()

    def get_entry(self, entry_id: str) -> EntryRecord | None:
        return self.cache.get_entry(entry_id)

    def find_digest(self, digest: str) -> EntryRecord | None:
        self._maybe_sync()
        return self.cache.find_digest(digest)

    def count(self) -> int:
        self._maybe_sync()
        return self.cache.count()
