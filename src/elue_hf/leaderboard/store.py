"""Where leaderboard entries live: a SQLite database by default, a Hub dataset repository when configured.

:class:`SQLiteStore` — one file, WAL journal, every write one ``BEGIN IMMEDIATE`` transaction (an entry and all its
points appear together or not at all, also when the writing process is killed), a versioned schema migrated in a
transaction on open, a fresh connection per operation (safe across threads and processes).

:class:`HubStore` — the way Hub leaderboards keep results: one JSON file per entry (``entries/<entry_id>.json``) in a
dataset repository, each added by its own commit (writers never conflict), mirrored into a local SQLite cache that
:meth:`HubStore.sync` refreshes. :func:`open_store` picks it when ``ELUE_RESULTS_REPO`` (or ``results_repo=``) is set.
Seeded reference rows stay local (they are package data, not results).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .records import EntryRecord, PointRecord, RecordError

__all__ = [
    "SCHEMA_VERSION",
    "JOB_STATES",
    "VerificationJob",
    "MIGRATIONS",
    "StoreError",
    "DuplicateEntryError",
    "SQLiteStore",
    "HubStore",
    "open_store",
    "default_db_path",
    "RESULTS_REPO_ENV",
    "DB_ENV",
]

logger = logging.getLogger(__name__)

RESULTS_REPO_ENV = "ELUE_RESULTS_REPO"
DB_ENV = "ELUE_LEADERBOARD_DB"

#: Schema migrations, applied in order inside one transaction; ``MIGRATIONS[i]`` takes the schema from version i to i+1.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (  # v1: entries, their per-task scores and operating points
        "CREATE TABLE schema_version (version INTEGER NOT NULL)",
        "INSERT INTO schema_version (version) VALUES (0)",
        """CREATE TABLE entries (
            entry_id TEXT PRIMARY KEY,
            model_name TEXT NOT NULL,
            source TEXT NOT NULL CHECK (source IN ('submission', 'paper', 'reference')),
            description TEXT NOT NULL DEFAULT '',
            citation TEXT NOT NULL DEFAULT '',
            params INTEGER,
            elue_score REAL,
            partial_elue_score REAL,
            provisional INTEGER NOT NULL DEFAULT 0,
            verified INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL DEFAULT '',
            submitter TEXT NOT NULL DEFAULT '',
            extra TEXT NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE task_scores (
            entry_id TEXT NOT NULL REFERENCES entries(entry_id) ON DELETE CASCADE,
            task TEXT NOT NULL,
            score REAL NOT NULL,
            PRIMARY KEY (entry_id, task)
        )""",
        """CREATE TABLE points (
            point_id INTEGER PRIMARY KEY AUTOINCREMENT,
            entry_id TEXT NOT NULL REFERENCES entries(entry_id) ON DELETE CASCADE,
            task TEXT NOT NULL,
            label TEXT NOT NULL,
            performance REAL NOT NULL,
            mflops REAL,
            params INTEGER,
            residual REAL,
            reference_performance REAL,
            flops_source TEXT NOT NULL,
            metrics TEXT NOT NULL DEFAULT '{}',
            note TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX points_by_entry ON points (entry_id)",
    ),
    (  # v2: duplicate detection by content digest; max_seq_length recorded with every point
        "ALTER TABLE entries ADD COLUMN digest TEXT",
        "CREATE UNIQUE INDEX entries_by_digest ON entries (digest) WHERE digest IS NOT NULL",
        "ALTER TABLE points ADD COLUMN max_seq_length INTEGER",
        "CREATE INDEX points_by_task ON points (task)",
    ),
    (  # v3: FLOPs tiers (self-reported / consistent / verified); older rows: recomputed from modules = consistent
        "ALTER TABLE entries ADD COLUMN flops_tier TEXT CHECK (flops_tier IN ('self-reported', 'consistent', "
        "'verified'))",
        "UPDATE entries SET flops_tier = CASE WHEN verified = 1 THEN 'consistent' ELSE 'self-reported' END "
        "WHERE source = 'submission'",
        "ALTER TABLE points ADD COLUMN flops_tier TEXT",
        "UPDATE points SET flops_tier = CASE flops_source WHEN 'modules' THEN 'consistent' "
        "WHEN 'self-reported' THEN 'self-reported' END",
    ),
    (  # v4: the verification queue (a server re-run of a named model), like the Open LLM Leaderboard's requests
        """CREATE TABLE verification_jobs (
            entry_id TEXT PRIMARY KEY REFERENCES entries(entry_id) ON DELETE CASCADE,
            state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'verified', 'failed')),
            submission TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            report TEXT NOT NULL DEFAULT '{}'
        )""",
        "CREATE INDEX jobs_by_state ON verification_jobs (state, created_at)",
    ),
)
#: States of a verification job: waiting, being re-run, and the two outcomes.
JOB_STATES = ("pending", "running", "verified", "failed")
SCHEMA_VERSION = len(MIGRATIONS)

_ENTRY_COLUMNS = ("entry_id", "model_name", "source", "description", "citation", "params", "elue_score",
                  "partial_elue_score", "provisional", "verified", "created_at", "submitter", "extra", "digest",
                  "flops_tier")
_POINT_COLUMNS = ("task", "label", "performance", "mflops", "params", "residual", "reference_performance",
                  "flops_source", "metrics", "note", "max_seq_length", "flops_tier")


@dataclass(frozen=True)
class VerificationJob:
    entry_id: str
    state: str
    submission: str  # server path of the kept submission zip
    attempts: int
    created_at: str
    updated_at: str
    report: dict


class StoreError(RuntimeError):
    """The store cannot be opened, read or written (the message says which and why)."""


class DuplicateEntryError(StoreError):
    """An entry with this id or the same submission digest is already stored."""

    def __init__(self, message: str, existing_id: str):
        super().__init__(message)
        self.existing_id = existing_id


def default_db_path() -> Path:
    """``$ELUE_LEADERBOARD_DB``, else ``elue_hf_outputs/leaderboard/leaderboard.db`` under the working directory."""
    return Path(os.environ.get(DB_ENV) or Path("elue_hf_outputs") / "leaderboard" / "leaderboard.db")


def _entry_row(entry: EntryRecord) -> tuple:
    return (
        entry.entry_id, entry.model_name, entry.source, entry.description, entry.citation, entry.params,
        entry.elue_score, entry.partial_elue_score, int(entry.provisional), int(entry.verified), entry.created_at,
        entry.submitter, json.dumps(entry.extra, sort_keys=True), entry.digest, entry.flops_tier,
    )


def _point_row(entry_id: str, p: PointRecord) -> tuple:
    return (entry_id, p.task, p.label, p.performance, p.mflops, p.params, p.residual, p.reference_performance,
            p.flops_source, json.dumps(dict(p.metrics), sort_keys=True), p.note, p.max_seq_length, p.flops_tier)


class SQLiteStore:
    """Leaderboard entries in one SQLite file (see the module docstring for the guarantees)."""

    kind = "sqlite"

    def __init__(self, path, timeout: float = 30.0):
        self.path = Path(path)
        self.timeout = float(timeout)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the folder of the leaderboard database {self.path}: {err}") from None
        self._migrate()

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r})"

    def describe(self) -> str:
        return f"SQLite database {self.path}"

    def public_description(self) -> str:
        """What the web page may show (no server paths)."""
        return "SQLite database"

    # ------------------------------------------------------------------------------------------ connections

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
            return conn
        except sqlite3.Error as err:
            raise StoreError(f"cannot open the leaderboard database {self.path}: {err}") from None

    @contextmanager
    def _transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """One transaction: ``BEGIN IMMEDIATE`` (write) or a read snapshot; rolled back on any error."""
        with closing(self._connect()) as conn:
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _migrate(self) -> None:
        with closing(self._connect()) as conn:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            except sqlite3.DatabaseError as err:
                raise StoreError(f"{self.path} is not a leaderboard database: {err}") from None
            if str(mode).lower() != "wal":
                raise StoreError(f"{self.path}: could not switch the journal to WAL (got {mode!r})")
        try:
            with self._transaction(write=True) as conn:
                version = self._read_version(conn)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path} has leaderboard schema v{version}, newer than this elue-hf understands "
                        f"(v{SCHEMA_VERSION}); upgrade elue-hf"
                    )
                for target in range(version, SCHEMA_VERSION):
                    for statement in MIGRATIONS[target]:
                        conn.execute(statement)
                    conn.execute("UPDATE schema_version SET version = ?", (target + 1,))
        except sqlite3.DatabaseError as err:
            raise StoreError(f"cannot migrate the leaderboard database {self.path}: {err}") from None

    @staticmethod
    def _read_version(conn: sqlite3.Connection) -> int:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not exists:
            other = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' LIMIT 1").fetchone()
            if other:
                raise StoreError(f"the database already holds other tables (e.g. {other[0]!r}); it is not a "
                                 "leaderboard database")
            return 0
        rows = conn.execute("SELECT version FROM schema_version").fetchall()
        if len(rows) != 1:
            raise StoreError(f"corrupt schema_version table ({len(rows)} rows)")
        return int(rows[0][0])

    def schema_version(self) -> int:
        with self._transaction(write=False) as conn:
            return self._read_version(conn)

    # ------------------------------------------------------------------------------------------------ writes

    def _insert_points(self, conn: sqlite3.Connection, entry: EntryRecord) -> None:
        placeholders = ", ".join("?" * (1 + len(_POINT_COLUMNS)))
        conn.executemany(
            f"INSERT INTO points (entry_id, {', '.join(_POINT_COLUMNS)}) VALUES ({placeholders})",
            [_point_row(entry.entry_id, p) for p in entry.points],
        )

    def _insert_entry(self, conn: sqlite3.Connection, entry: EntryRecord, ignore_existing: bool) -> bool:
        verb = "INSERT OR IGNORE" if ignore_existing else "INSERT"
        cursor = conn.execute(
            f"{verb} INTO entries ({', '.join(_ENTRY_COLUMNS)}) VALUES ({', '.join('?' * len(_ENTRY_COLUMNS))})",
            _entry_row(entry),
        )
        if cursor.rowcount == 0:
            return False
        conn.executemany("INSERT INTO task_scores (entry_id, task, score) VALUES (?, ?, ?)",
                         [(entry.entry_id, t, s) for t, s in entry.task_scores.items()])
        self._insert_points(conn, entry)
        return True

    def add_entry(self, entry: EntryRecord) -> EntryRecord:
        """Store ``entry`` with all its points in one transaction; :class:`DuplicateEntryError` if its id or
        digest is already there."""
        try:
            self._store_new(entry, keep=True)
        except (sqlite3.Error, OverflowError) as err:
            raise StoreError(f"could not store entry {entry.entry_id} in {self.path}: {err}") from None
        return entry

    def check_insertable(self, entry: EntryRecord) -> None:
        """Insert ``entry`` in a transaction that is always rolled back: a :class:`StoreError` says why it could not
        be stored (a clash, a value SQLite refuses); nothing is written either way."""
        try:
            self._store_new(entry, keep=False)
        except (sqlite3.Error, OverflowError, ValueError, TypeError) as err:
            raise StoreError(f"entry {entry.entry_id} cannot be stored: {err}") from None

    def _store_new(self, entry: EntryRecord, keep: bool) -> None:
        """Insert one new entry in one transaction; committed when ``keep``, rolled back otherwise."""
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                clash = self._clash(conn, entry)
                if clash is not None:
                    raise clash
                self._insert_entry(conn, entry, ignore_existing=False)
                conn.execute("COMMIT" if keep else "ROLLBACK")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    @staticmethod
    def _clash(conn: sqlite3.Connection, entry: EntryRecord) -> DuplicateEntryError | None:
        row = conn.execute("SELECT entry_id FROM entries WHERE entry_id = ?", (entry.entry_id,)).fetchone()
        if row:
            return DuplicateEntryError(f"entry {entry.entry_id} is already stored", row[0])
        if entry.digest:
            row = conn.execute("SELECT entry_id, model_name FROM entries WHERE digest = ?", (entry.digest,)).fetchone()
            if row:
                return DuplicateEntryError(
                    f"the same results were already submitted as entry {row[0]} ({row[1]})", row[0])
        return None

    def ensure_entries(self, entries: Iterable[EntryRecord]) -> int:
        """Insert the entries not stored yet (by id or digest), all in one transaction; returns how many were added."""
        added = 0
        try:
            with self._transaction(write=True) as conn:
                for entry in entries:
                    added += self._insert_entry(conn, entry, ignore_existing=True)
        except (sqlite3.Error, OverflowError) as err:
            raise StoreError(f"could not add entries to {self.path}: {err}") from None
        return added

    def delete_entry(self, entry_id: str) -> bool:
        """Remove one entry and its points (moderation); True if it existed."""
        with self._transaction(write=True) as conn:
            return conn.execute("DELETE FROM entries WHERE entry_id = ?", (entry_id,)).rowcount > 0

    # ------------------------------------------------------------------------------------------------- reads

    def _load(self, where: str = "", args: tuple = ()) -> list[EntryRecord]:
        try:
            with self._transaction(write=False) as conn:  # one snapshot for entries, scores and points
                conn.row_factory = sqlite3.Row
                rows = conn.execute(f"SELECT * FROM entries {where} ORDER BY created_at, entry_id", args).fetchall()
                ids = [r["entry_id"] for r in rows]
                scores: dict[str, dict] = {i: {} for i in ids}
                points: dict[str, list] = {i: [] for i in ids}
                for s in conn.execute("SELECT entry_id, task, score FROM task_scores"):
                    if s["entry_id"] in scores:
                        scores[s["entry_id"]][s["task"]] = s["score"]
                for p in conn.execute("SELECT * FROM points ORDER BY point_id"):
                    if p["entry_id"] in points:
                        points[p["entry_id"]].append(p)
        except sqlite3.Error as err:
            raise StoreError(f"cannot read the leaderboard database {self.path}: {err}") from None
        try:
            return [self._record(r, scores[r["entry_id"]], points[r["entry_id"]]) for r in rows]
        except RecordError as err:
            raise StoreError(f"{self.path} holds an invalid entry: {err}") from None

    @staticmethod
    def _record(row: sqlite3.Row, scores: dict, points: list) -> EntryRecord:
        return EntryRecord(
            entry_id=row["entry_id"], model_name=row["model_name"], source=row["source"],
            description=row["description"], citation=row["citation"], params=row["params"],
            elue_score=row["elue_score"], partial_elue_score=row["partial_elue_score"], task_scores=scores,
            provisional=bool(row["provisional"]), flops_tier=row["flops_tier"], created_at=row["created_at"],
            digest=row["digest"], submitter=row["submitter"], extra=json.loads(row["extra"]),
            points=tuple(
                PointRecord(task=p["task"], label=p["label"], performance=p["performance"], mflops=p["mflops"],
                            params=p["params"], residual=p["residual"],
                            reference_performance=p["reference_performance"], flops_source=p["flops_source"],
                            metrics=json.loads(p["metrics"]), max_seq_length=p["max_seq_length"], note=p["note"],
                            flops_tier=p["flops_tier"])
                for p in points
            ),
        )

    def entries(self) -> list[EntryRecord]:
        """Every entry (a consistent snapshot), oldest first."""
        return self._load()

    def get_entry(self, entry_id: str) -> EntryRecord | None:
        found = self._load("WHERE entry_id = ?", (entry_id,))
        return found[0] if found else None

    def find_digest(self, digest: str) -> EntryRecord | None:
        found = self._load("WHERE digest = ?", (digest,))
        return found[0] if found else None

    def entry_ids(self) -> set[str]:
        with self._transaction(write=False) as conn:
            return {r[0] for r in conn.execute("SELECT entry_id FROM entries")}

    def count(self) -> int:
        with self._transaction(write=False) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    # ------------------------------------------------------------------------------------------ verification queue

    def enqueue_verification(self, entry_id: str, submission: str, now: str) -> bool:
        """Queue a re-run of a stored entry (idempotent: an entry is queued once); True if newly queued."""
        with self._transaction(write=True) as conn:
            return conn.execute(
                "INSERT OR IGNORE INTO verification_jobs (entry_id, state, submission, created_at, updated_at) "
                "VALUES (?, 'pending', ?, ?, ?)", (entry_id, str(submission), now, now)).rowcount > 0

    def claim_verification(self, now: str, max_attempts: int = 3) -> VerificationJob | None:
        """Take the oldest job to run, in one transaction: a pending one, or one left ``running`` by a worker that
        died (only one worker runs at a time, so a running job seen at claim time is orphaned). A job that was
        claimed ``max_attempts`` times is marked failed instead of being run again."""
        with self._transaction(write=True) as conn:
            conn.execute("UPDATE verification_jobs SET state = 'failed', updated_at = ?, report = ? WHERE state IN "
                         "('pending', 'running') AND attempts >= ?",
                         (now, json.dumps({"error": f"gave up after {max_attempts} attempts"}), max_attempts))
            row = conn.execute("SELECT entry_id FROM verification_jobs WHERE state IN ('pending', 'running') "
                               "ORDER BY state = 'pending', created_at, rowid LIMIT 1").fetchone()
            if row is None:
                return None
            conn.execute("UPDATE verification_jobs SET state = 'running', attempts = attempts + 1, updated_at = ? "
                         "WHERE entry_id = ?", (now, row[0]))
            return self._job(conn, row[0])

    def finish_verification(self, entry_id: str, verified: bool, report: dict, now: str) -> None:
        """Record a job's outcome; a verified entry and all its points move to the ``verified`` tier, in the same
        transaction (so a kill never leaves one without the other)."""
        state = "verified" if verified else "failed"
        with self._transaction(write=True) as conn:
            conn.execute("UPDATE verification_jobs SET state = ?, updated_at = ?, report = ? WHERE entry_id = ?",
                         (state, now, json.dumps(report, sort_keys=True, default=float), entry_id))
            if verified:
                row = conn.execute("SELECT extra FROM entries WHERE entry_id = ?", (entry_id,)).fetchone()
                extra = {**json.loads(row[0]), "verification": {k: report[k] for k in ("throughput", "machine", "model")
                                                                if k in report}}
                conn.execute("UPDATE entries SET flops_tier = 'verified', verified = 1, extra = ? WHERE entry_id = ?",
                             (json.dumps(extra, sort_keys=True, default=float), entry_id))
                conn.execute("UPDATE points SET flops_tier = 'verified' WHERE entry_id = ?", (entry_id,))

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

    def integrity_check(self) -> list[str]:
        """SQLite's integrity and foreign-key checks plus ours (every entry has its points); empty when healthy."""
        problems = []
        with self._transaction(write=False) as conn:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if ok != "ok":
                problems.append(f"integrity_check: {ok}")
            problems += [f"foreign key violation: {tuple(r)}" for r in conn.execute("PRAGMA foreign_key_check")]
            orphans = conn.execute(
                "SELECT entry_id FROM entries WHERE source = 'submission' AND entry_id NOT IN "
                "(SELECT DISTINCT entry_id FROM points)").fetchall()
            problems += [f"submission {r[0]} has no points" for r in orphans]
        return problems


_ENTRY_FILE = re.compile(r"entries/([A-Za-z0-9][A-Za-z0-9_.\-]{0,79})\.json")


class HubStore:
    """Entries as JSON files in a Hub dataset repository, mirrored in a local SQLite cache.

    ``api`` is a ``huggingface_hub.HfApi`` (created with ``token`` when omitted). Reads serve the cache and re-sync
    from the Hub at most every ``sync_interval`` seconds; a failed sync keeps serving the cache and records the error
    in ``last_sync_error``. A write commits to the Hub first and then to the cache; if the process dies in between,
    the next sync brings the entry back.
    """

    kind = "hub"
    max_entry_bytes = 4 * 2**20

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
        self.cache = SQLiteStore(cache_path)
        self.last_sync_error: str | None = None
        self.skipped_files: dict[str, str] = {}
        self._repo_ready = False
        self._last_sync = -float("inf")
        self._lock = threading.Lock()

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

    def sync(self) -> int:
        """Copy entries present on the Hub but missing from the cache; returns how many were added."""
        with self._lock:
            files = self.api.list_repo_files(self.repo_id, repo_type="dataset")
            known = self.cache.entry_ids()
            fresh = []
            for name in sorted(files):
                match = _ENTRY_FILE.fullmatch(name)
                if not match or match.group(1) in known or name in self.skipped_files:
                    continue
                try:
                    entry = self._read_remote(name)
                    if entry.entry_id != match.group(1):
                        raise RecordError(f"holds entry_id {entry.entry_id!r}")
                    if entry.source != "submission":
                        raise RecordError("only submissions are stored on the Hub")
                except (RecordError, OSError) as err:
                    self.skipped_files[name] = str(err)
                    logger.warning("skipping %s in %s: %s", name, self.repo_id, err)
                    continue
                fresh.append((name, entry))
            added = self._cache_entries(fresh)
            self._last_sync = time.monotonic()
            self.last_sync_error = None
            return added

    def _cache_entries(self, fresh: list[tuple[str, EntryRecord]]) -> int:
        """Add synced entries to the cache in one transaction; if that fails, one by one, quarantining (in
        ``skipped_files``) each file the cache refuses, so one bad remote file never blocks later syncs."""
        try:
            return self.cache.ensure_entries(entry for _, entry in fresh)
        except StoreError:
            pass
        added = 0
        for name, entry in fresh:
            try:
                added += self.cache.ensure_entries([entry])
            except StoreError as err:
                self.skipped_files[name] = f"quarantined: {err}"
                logger.warning("quarantined %s in %s: %s", name, self.repo_id, err)
        return added

    def _read_remote(self, name: str) -> EntryRecord:
        local = Path(self.api.hf_hub_download(self.repo_id, name, repo_type="dataset"))
        if local.stat().st_size > self.max_entry_bytes:
            raise RecordError(f"larger than {self.max_entry_bytes} bytes")
        return EntryRecord.from_json(local.read_bytes())

    def _maybe_sync(self, force: bool = False) -> None:
        if not force and time.monotonic() - self._last_sync < self.sync_interval:
            return
        try:
            self.sync()
        except Exception as err:  # the Hub is unreachable: keep serving the cache, say why
            self.last_sync_error = f"{type(err).__name__}: {err}"
            self._last_sync = time.monotonic()
            logger.warning("could not sync the leaderboard from %s: %s", self.repo_id, self.last_sync_error)

    def add_entry(self, entry: EntryRecord) -> EntryRecord:
        if entry.source != "submission":
            raise StoreError("only submissions are written to the Hub results repo (seeded rows stay local)")
        self._maybe_sync(force=True)
        existing = self.cache.get_entry(entry.entry_id) or (entry.digest and self.cache.find_digest(entry.digest))
        if existing:
            raise DuplicateEntryError(
                f"the same results were already submitted as entry {existing.entry_id} ({existing.model_name})",
                existing.entry_id)
        from huggingface_hub import CommitOperationAdd

        try:  # validate before anything reaches the Hub: the JSON reads back, the cache accepts the row
            if EntryRecord.from_json(entry.to_json()) != entry:
                raise RecordError("does not survive its JSON form unchanged")
        except RecordError as err:
            raise StoreError(f"entry {entry.entry_id} is not valid: {err}") from None
        self.cache.check_insertable(entry)
        try:
            self._ensure_repo()
            self.api.create_commit(
                self.repo_id,
                operations=[CommitOperationAdd(path_in_repo=f"entries/{entry.entry_id}.json",
                                               path_or_fileobj=entry.to_json().encode("utf-8"))],
                commit_message=f"Add ELUE entry {entry.model_name} ({entry.entry_id})",
                repo_type="dataset",
            )
        except Exception as err:
            raise StoreError(f"could not write the entry to the Hub dataset {self.repo_id}: "
                             f"{type(err).__name__}: {err}") from err
        self.cache.add_entry(entry)
        return entry

    def ensure_entries(self, entries: Iterable[EntryRecord]) -> int:
        """Seed rows (reference curve, published tables): kept in the local cache only."""
        return self.cache.ensure_entries(entries)

    # The verification queue lives in this replica's cache (one worker per Space); a verified entry's JSON on the Hub
    # is rewritten with its new tier so other replicas see it when they first sync it.

    def enqueue_verification(self, entry_id: str, submission: str, now: str) -> bool:
        return self.cache.enqueue_verification(entry_id, submission, now)

    def claim_verification(self, now: str, max_attempts: int = 3):
        return self.cache.claim_verification(now, max_attempts)

    def verification_jobs(self, state: str | None = None):
        return self.cache.verification_jobs(state)

    def finish_verification(self, entry_id: str, verified: bool, report: dict, now: str) -> None:
        self.cache.finish_verification(entry_id, verified, report, now)
        if not verified:
            return
        from huggingface_hub import CommitOperationAdd

        entry = self.cache.get_entry(entry_id)
        try:
            self.api.create_commit(
                self.repo_id, repo_type="dataset", commit_message=f"Verified ELUE entry {entry_id}",
                operations=[CommitOperationAdd(path_in_repo=f"entries/{entry_id}.json",
                                               path_or_fileobj=entry.to_json().encode("utf-8"))])
        except Exception as err:  # the cache has it; the Hub copy catches up on the next verification write
            logger.warning("could not write the verified tier of %s to %s: %s", entry_id, self.repo_id, err)

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


def open_store(db=None, results_repo: str | None = None, token: str | None = None, api=None):
    """The configured store: a :class:`HubStore` when ``results_repo`` or ``$ELUE_RESULTS_REPO`` is set (``db`` is
    then its cache), else a :class:`SQLiteStore` at ``db`` / ``$ELUE_LEADERBOARD_DB`` / the default path."""
    repo = results_repo or os.environ.get(RESULTS_REPO_ENV)
    if repo:
        return HubStore(repo, cache_path=db, api=api, token=token)
    return SQLiteStore(db or default_db_path())
