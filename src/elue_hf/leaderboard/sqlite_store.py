"""The SQLite leaderboard store (the default, and the Hub store's local cache).

:class:`SQLiteStore` — one file, WAL journal, every write one ``BEGIN IMMEDIATE`` transaction (an entry and all its
points appear together or not at all, also when the writing process is killed), a versioned schema migrated in a
transaction on open, a fresh connection per operation (safe across threads and processes). It also holds the
verification queue (table ``verification_jobs``; its methods are in :mod:`.sqlite_queue`).
:mod:`elue_hf.leaderboard.store` is the public entry point.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Iterable, Iterator

from .errors import DuplicateEntryError, StoreError
from .jobs import JOB_STATES, VerificationJob, lease_hours_from, worker_name
from .records import EntryRecord, PointRecord, RecordError
from .sqlite_queue import SQLiteQueue

__all__ = [
    "SCHEMA_VERSION",
    "JOB_STATES",
    "VerificationJob",
    "MIGRATIONS",
    "StoreError",
    "DuplicateEntryError",
    "SQLiteStore",
    "default_db_path",
    "worker_name",
    "DB_ENV",
]

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
    (  # v5: for the Hub store's cache: the blob of each Hub file last read (or quarantined, with why), and whether a
        # job's state was written to the Hub (a job changed here and not pushed yet has synced = 0)
        "ALTER TABLE verification_jobs ADD COLUMN synced INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE hub_files (
            path TEXT PRIMARY KEY,
            blob_id TEXT NOT NULL,
            problem TEXT
        )""",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)

_ENTRY_COLUMNS = ("entry_id", "model_name", "source", "description", "citation", "params", "elue_score",
                  "partial_elue_score", "provisional", "verified", "created_at", "submitter", "extra", "digest",
                  "flops_tier")
_POINT_COLUMNS = ("task", "label", "performance", "mflops", "params", "residual", "reference_performance",
                  "flops_source", "metrics", "note", "max_seq_length", "flops_tier")


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


class SQLiteStore(SQLiteQueue):
    """Leaderboard entries in one SQLite file (see the module docstring for the guarantees)."""

    kind = "sqlite"

    def __init__(self, path, timeout: float = 30.0, lease_hours: float | None = None):
        self.path = Path(path)
        self.timeout = float(timeout)
        self.worker = worker_name()  # who holds the claims this object makes
        self.lease = timedelta(hours=lease_hours_from(lease_hours))  # how long a claimed job stays its worker's
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
        self._insert_children(conn, entry)
        return True

    def _insert_children(self, conn: sqlite3.Connection, entry: EntryRecord) -> None:
        conn.executemany("INSERT INTO task_scores (entry_id, task, score) VALUES (?, ?, ?)",
                         [(entry.entry_id, t, s) for t, s in entry.task_scores.items()])
        self._insert_points(conn, entry)

    def _replace_entry(self, conn: sqlite3.Connection, entry: EntryRecord) -> None:
        """Overwrite a stored entry's row, scores and points with ``entry`` (same id), keeping its verification job."""
        conn.execute("DELETE FROM task_scores WHERE entry_id = ?", (entry.entry_id,))
        conn.execute("DELETE FROM points WHERE entry_id = ?", (entry.entry_id,))
        assignments = ", ".join(f"{column} = ?" for column in _ENTRY_COLUMNS[1:])
        conn.execute(f"UPDATE entries SET {assignments} WHERE entry_id = ?", (*_entry_row(entry)[1:], entry.entry_id))
        self._insert_children(conn, entry)

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
                return self._load_in(conn, where, args)
        except sqlite3.Error as err:
            raise StoreError(f"cannot read the leaderboard database {self.path}: {err}") from None

    def _load_in(self, conn: sqlite3.Connection, where: str = "", args: tuple = ()) -> list[EntryRecord]:
        """The entries selected by ``where``, read inside the caller's transaction."""
        read = conn.cursor()
        read.row_factory = sqlite3.Row
        rows = read.execute(f"SELECT * FROM entries {where} ORDER BY created_at, entry_id", args).fetchall()
        ids = [r["entry_id"] for r in rows]
        scores: dict[str, dict] = {i: {} for i in ids}
        points: dict[str, list] = {i: [] for i in ids}
        only = f"WHERE entry_id IN (SELECT entry_id FROM entries {where})" if where else ""
        for s in read.execute(f"SELECT entry_id, task, score FROM task_scores {only}", args if where else ()):
            if s["entry_id"] in scores:
                scores[s["entry_id"]][s["task"]] = s["score"]
        for p in read.execute(f"SELECT * FROM points {only} ORDER BY point_id", args if where else ()):
            if p["entry_id"] in points:
                points[p["entry_id"]].append(p)
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

