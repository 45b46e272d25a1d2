"""The Hub results store: entries and their verification queue as JSON files in a Hub dataset repository, mirrored
in a local SQLite cache.

The repository is the shared truth; each replica's cache (another Space instance, a restarted Space) converges to it:

- ``entries/<entry_id>.json``: one submission (:meth:`EntryRecord.to_json`), added by its own commit.
- ``requests/<entry_id>.json``: its verification job (:func:`request_json`): state (``pending``, ``running``,
  ``verified``, ``failed``), attempts, timestamps, the server path of the kept submission and the re-run's report,
  written by every enqueue, claim and finish (the Open LLM Leaderboard keeps its requests the same way).

:meth:`HubStore.sync` lists the repository tree and reads only files whose git blob id differs from the one the cache
last read (table ``hub_files``): new entries, changed entries and changed requests; everything one sync learns goes into
the cache in one transaction. Only a request file in state ``verified`` makes an entry ``verified``: the tier an entry
file claims is never trusted (a ``verified`` claim falls back to the tier its FLOPs source earns; see
:func:`~elue_hf.leaderboard.records.without_verification`). A malformed or oversized file is quarantined (kept in
``skipped_files`` and in the cache, not read again until it changes) and never stops later syncs.

A job changed here (enqueued, claimed, finished) is written to the cache first and then pushed; when the Hub cannot be
reached it stays marked unsynced, the next sync (or queue operation) pushes it, and until then a sync never overwrites
it with the Hub's older copy. Queue operations are serialised within a replica; run one verification worker per
results repository (a job left ``running`` is taken as orphaned by the next claim, as in :class:`SQLiteStore`).
"""

from __future__ import annotations

import json
import logging
import math
import re
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..validators import load_json, require
from .records import EntryRecord, RecordError, with_verification, without_verification
from .sqlite_store import (
    JOB_STATES,
    DuplicateEntryError,
    SQLiteStore,
    StoreError,
    VerificationJob,
    default_db_path,
)

__all__ = ["HubStore", "HubCache", "request_json", "request_from_json", "bounded_report", "MAX_REPORT_CHARS"]

logger = logging.getLogger(__name__)

_HUB_FILE = re.compile(r"(entries|requests)/([A-Za-z0-9][A-Za-z0-9_.\-]{0,79})\.json")
_REQUEST_FIELDS = ("entry_id", "state", "attempts", "created_at", "updated_at", "submission", "report")
#: A request's report is kept to this many characters of JSON (the per-file rows go first when it is longer).
MAX_REPORT_CHARS = 32_000
_MAX_ATTEMPTS_READ = 1000


# ----------------------------------------------------------------------------------------------- request files


def _finite(value):
    """``value`` as plain JSON data with every non-finite float replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def bounded_report(report: dict) -> dict:
    """A report as plain, finite JSON of at most :data:`MAX_REPORT_CHARS` characters: when longer, only its summary
    (verdict, error, throughput, machine, model) is kept, marked ``"truncated": true``."""
    plain = _finite(json.loads(json.dumps(dict(report), default=float)))
    if len(json.dumps(plain)) <= MAX_REPORT_CHARS:
        return plain
    summary = {k: plain[k] for k in ("verified", "error", "throughput", "machine", "model") if k in plain}
    summary["truncated"] = True
    if len(json.dumps(summary)) <= MAX_REPORT_CHARS:
        return summary
    return {"verified": bool(plain.get("verified")), "truncated": True}


def request_json(job: VerificationJob) -> str:
    """The request file of ``job`` (what :func:`request_from_json` reads back)."""
    data = {name: getattr(job, name) for name in _REQUEST_FIELDS}
    data["report"] = bounded_report(job.report)
    return json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n"


def _short_text(value, what: str, limit: int) -> str:
    require(isinstance(value, str) and 0 < len(value) <= limit, f"{what} must be a string of 1 to {limit} characters",
            RecordError)
    return value


def _kept_name(submission: str, entry_id: str) -> bool:
    """The server keeps a queued submission as ``<entry_id>.zip``: a request cannot point at another entry's file."""
    return Path(submission).name == f"{entry_id}.zip"


def request_from_json(raw: bytes | str, entry_id: str) -> VerificationJob:
    """A request file read back with every field type-checked; :class:`RecordError` names what is wrong."""
    data = load_json(raw, "the request", RecordError)
    require(isinstance(data, dict), "a request must be a JSON object", RecordError)
    require(set(data) == set(_REQUEST_FIELDS), f"a request has exactly the fields {list(_REQUEST_FIELDS)}, got "
            f"{sorted(data)[:12]}", RecordError)
    require(data["entry_id"] == entry_id, f"holds entry_id {str(data['entry_id'])[:90]!r}", RecordError)
    require(data["state"] in JOB_STATES, f"state must be one of {JOB_STATES}", RecordError)
    attempts = data["attempts"]
    require(type(attempts) is int and 0 <= attempts <= _MAX_ATTEMPTS_READ,
            f"attempts must be an integer from 0 to {_MAX_ATTEMPTS_READ}", RecordError)
    report = data["report"]
    require(isinstance(report, dict), "report must be an object", RecordError)
    require(len(json.dumps(report)) <= MAX_REPORT_CHARS, f"report is longer than {MAX_REPORT_CHARS} characters",
            RecordError)
    require(data["state"] != "verified" or report.get("verified") is True,
            "a verified request needs a report with \"verified\": true", RecordError)
    submission = _short_text(data["submission"], "submission", 1000)
    require(_kept_name(submission, entry_id), f"submission must be a file named {entry_id}.zip", RecordError)
    return VerificationJob(
        entry_id=entry_id, state=data["state"], attempts=attempts, report=report, submission=submission,
        created_at=_short_text(data["created_at"], "created_at", 40),
        updated_at=_short_text(data["updated_at"], "updated_at", 40),
    )


def _writable(job: VerificationJob) -> None:
    """Refuse (:class:`StoreError`) a job whose request file would not read back: every replica would quarantine it."""
    try:
        request_from_json(request_json(job), job.entry_id)
    except RecordError as err:
        raise StoreError(f"the verification job of {job.entry_id} cannot be written to the Hub: {err}") from None


def _writable_time(now) -> None:
    try:
        _short_text(now, "the time of a queue operation", 40)
    except RecordError as err:
        raise StoreError(str(err)) from None


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

    def mark_synced(self, jobs: Iterable[VerificationJob]) -> None:
        """Mark jobs as written to the Hub, each only if it has not changed since it was read."""
        with self._transaction(write=True) as conn:
            conn.executemany("UPDATE verification_jobs SET synced = 1 WHERE entry_id = ? AND state = ? AND "
                             "attempts = ? AND updated_at = ?",
                             [(j.entry_id, j.state, j.attempts, j.updated_at) for j in jobs])

    def apply(self, updates: list[_Update]) -> tuple[int, list[tuple[_Update, str]]]:
        """Bring the cache up to date with ``updates``: all in one transaction, or, when that fails, each in its own.
        Returns how many entries were new, and the updates the cache refused with why."""
        try:
            with self._transaction(write=True) as conn:
                return sum(self._apply_one(conn, u) for u in updates), []
        except (sqlite3.Error, StoreError, ValueError, TypeError, OverflowError) as err:  # RecordError: a ValueError
            if len(updates) == 1:
                return 0, [(updates[0], str(err))]
        added, refused = 0, []
        for update in updates:
            more, failed = self.apply([update])
            added += more
            refused += failed
        return added, refused

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
            self._insert_entry(conn, settled, ignore_existing=False)
        elif settled != cached:
            self._replace_entry(conn, settled)
        if job is not None:
            self._put_job(conn, job)
        conn.executemany("INSERT OR REPLACE INTO hub_files (path, blob_id, problem) VALUES (?, ?, NULL)",
                         list(blobs.items()))
        return cached is None

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


class HubStore:
    """Entries and the verification queue as JSON files in a Hub dataset repository, mirrored in a local SQLite cache
    (see the module docstring for how replicas agree).

    ``api`` is a ``huggingface_hub.HfApi`` (created with ``token`` when omitted). Reads serve the cache and re-sync
    from the Hub at most every ``sync_interval`` seconds; a failed sync keeps serving the cache and records the error
    in ``last_sync_error`` (a failed push of a job state: ``last_push_error``). A new entry is committed to the Hub
    first and then to the cache; if the process dies in between, the next sync brings the entry back.
    """

    kind = "hub"
    max_entry_bytes = 4 * 2**20
    max_request_bytes = 64 * 2**10

    def __init__(self, repo_id: str, cache_path=None, api=None, token: str | None = None, private: bool = True,
                 create_repo: bool = True, sync_interval: float = 30.0):
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
        cache_path = cache_path or default_db_path().with_name(f"hub-cache-{repo_id.replace('/', '--')}.db")
        self.cache = HubCache(cache_path)
        self.last_sync_error: str | None = None
        self.last_push_error: str | None = None
        self.skipped_files: dict[str, str] = self.cache.problems()
        self._repo_ready = False
        self._last_sync = -float("inf")
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
        """Push job states not on the Hub yet, then read every entry and request file that is new or changed on the
        Hub into the cache (one transaction); returns how many entries were new."""
        with self._lock:
            self._push_unsynced("Sync the ELUE verification queue")
            tree = self._remote_tree()
            known = self.cache.known_blobs()
            changed = {path: item for path, item in tree.items() if known.get(path) != item.blob_id}
            added, refused = self.cache.apply(self._read_updates(changed))
            for update, why in refused:
                for path, blob in update.blobs.items():
                    self._quarantine(path, blob, f"quarantined: {why}")
            self.skipped_files = self.cache.problems()  # a repaired file leaves the quarantine
            self._last_sync = time.monotonic()
            self.last_sync_error = None
            return added

    def _remote_tree(self) -> dict:
        """Hub path -> its ``RepoFile`` (path, size, blob_id), for the entry and request files of the repo."""
        return {item.path: item for item in self.api.list_repo_tree(self.repo_id, recursive=True, repo_type="dataset")
                if getattr(item, "blob_id", None) is not None and _HUB_FILE.fullmatch(item.path)}

    def _read_updates(self, changed: dict) -> list[_Update]:
        updates: dict[str, _Update] = {}
        for path in sorted(changed):
            kind, entry_id = _HUB_FILE.fullmatch(path).groups()
            try:
                record = self._read_remote(path, kind, entry_id, changed[path].size)
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

    def _read_remote(self, path: str, kind: str, entry_id: str, size: int | None):
        limit = self.max_entry_bytes if kind == "entries" else self.max_request_bytes
        if size is not None and size > limit:
            raise RecordError(f"larger than {limit} bytes")
        local = Path(self.api.hf_hub_download(self.repo_id, path, repo_type="dataset"))
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

    def _commit(self, files: dict[str, str], message: str) -> None:
        from huggingface_hub import CommitOperationAdd

        self._ensure_repo()
        self.api.create_commit(
            self.repo_id, repo_type="dataset", commit_message=message,
            operations=[CommitOperationAdd(path_in_repo=path, path_or_fileobj=text.encode("utf-8"))
                        for path, text in files.items()])

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
        try:
            self._commit({f"entries/{entry.entry_id}.json": entry.to_json()},
                         f"Add ELUE entry {entry.model_name} ({entry.entry_id})")
        except Exception as err:
            raise StoreError(f"could not write the entry to the Hub dataset {self.repo_id}: "
                             f"{type(err).__name__}: {err}") from err
        self.cache.add_entry(entry)
        return entry

    def ensure_entries(self, entries: Iterable[EntryRecord]) -> int:
        """Seed rows (reference curve, published tables): kept in the local cache only."""
        return self.cache.ensure_entries(entries)

    # ---------------------------------------------------------------------------------- verification queue

    def _push_unsynced(self, message: str) -> bool:
        """Write every job changed here and not on the Hub yet in one commit: its request file, and for a verified
        job the entry file with its new tier (informative: readers trust the request). On failure the jobs stay
        unsynced for the next try; returns whether everything is on the Hub."""
        jobs = self.cache.unsynced_jobs()
        if not jobs:
            return True
        files = {}
        for job in jobs:
            files[f"requests/{job.entry_id}.json"] = request_json(job)
            if job.state == "verified":
                files[f"entries/{job.entry_id}.json"] = self.cache.get_entry(job.entry_id).to_json()
        try:
            self._commit(files, message)
        except Exception as err:  # the cache keeps the states; the next sync or queue operation pushes them
            self.last_push_error = f"{type(err).__name__}: {err}"
            logger.warning("could not write %d verification job(s) to %s: %s", len(jobs), self.repo_id,
                           self.last_push_error)
            return False
        self.cache.mark_synced(jobs)
        self.last_push_error = None
        return True

    def enqueue_verification(self, entry_id: str, submission: str, now: str) -> bool:
        """Queue a re-run (idempotent); its request file is committed now, or by a later sync if the Hub fails."""
        _writable(VerificationJob(entry_id, "pending", str(submission), 0, now, now, {}))
        with self._lock:
            queued = self.cache.enqueue_verification(entry_id, submission, now)
            if queued:
                self._push_unsynced(f"Queue the verification of {entry_id}")
            return queued

    def claim_verification(self, now: str, max_attempts: int = 3) -> VerificationJob | None:
        """Sync, then take the oldest job as :meth:`SQLiteStore.claim_verification` does, and record the claim on the
        Hub (a restarted replica finds the job ``running`` there and takes it again, attempts counted)."""
        _writable_time(now)
        with self._lock:
            self._maybe_sync(force=True)
            job = self.cache.claim_verification(now, max_attempts)
            label = f"{job.entry_id} running (attempt {job.attempts})" if job else "expired jobs failed"
            self._push_unsynced(f"Verification of {label}")
            return job

    def finish_verification(self, entry_id: str, verified: bool, report: dict, now: str) -> None:
        """Record the outcome in the cache (tier and job in one transaction), then on the Hub: the request file and, if
        verified, the entry file in one commit. A failed commit loses nothing: the next sync pushes it."""
        _writable_time(now)
        with self._lock:
            self.cache.finish_verification(entry_id, verified, bounded_report(report), now)
            self._push_unsynced(f"Verification of {entry_id}: {'verified' if verified else 'failed'}")

    def verification_jobs(self, state: str | None = None) -> list[VerificationJob]:
        self._maybe_sync()
        return self.cache.verification_jobs(state)

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
