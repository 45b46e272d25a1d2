"""Leaderboard storage: SQLite (WAL, transactions, versioned schema, concurrency, crash safety) and the Hub store."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import threading
from pathlib import Path
from unittest.mock import patch

import pytest
from tests.helpers.leaderboard import failing_point_insert
from huggingface_hub import HfApi
from huggingface_hub.errors import OfflineModeIsEnabled

from elue_hf.leaderboard.records import EntryRecord, PointRecord, RecordError
from elue_hf.leaderboard.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    DuplicateEntryError,
    HubStore,
    SQLiteStore,
    StoreError,
    open_store,
)


def make_entry(i: int, digest: bool = True, tasks=("sst-2", "mrpc")) -> EntryRecord:
    points = tuple(
        PointRecord(task=t, label=f"k={k}", performance=80.0 + i * 0.01 + k, mflops=100.0 * k, params=1_000_000 * k,
                    residual=0.5 * k, reference_performance=80.0, metrics={"acc": 80.0 + k}, max_seq_length=128)
        for t in tasks for k in (1, 2, 3)
    )
    return EntryRecord(
        entry_id=f"sub-{i:05d}", model_name=f"model {i}", source="submission", params=3_000_000,
        partial_elue_score=0.5, task_scores={t: 1.0 for t in tasks}, verified=True,
        created_at=f"2024-01-01T00:00:{i % 60:02d}+00:00", digest=f"{i:064x}" if digest else None, points=points,
    )


# ------------------------------------------------------------------------------------------------ SQLite basics


def test_new_database_is_wal_and_at_the_current_schema(tmp_path):
    store = SQLiteStore(tmp_path / "sub" / "lb.db")
    assert store.schema_version() == SCHEMA_VERSION == len(MIGRATIONS)
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.count() == 0 and store.entries() == [] and store.integrity_check() == []


def test_entries_round_trip_exactly(tmp_path):
    store = SQLiteStore(tmp_path / "lb.db")
    entries = [make_entry(i) for i in range(3)]
    for e in entries:
        store.add_entry(e)
    assert store.entries() == entries
    assert store.get_entry("sub-00001") == entries[1]
    assert store.find_digest(entries[2].digest) == entries[2]
    assert store.get_entry("nope") is None and store.find_digest("f" * 64) is None
    assert SQLiteStore(store.path).entries() == entries  # reopening changes nothing


def test_duplicates_are_refused_and_change_nothing(tmp_path):
    store = SQLiteStore(tmp_path / "lb.db")
    first = store.add_entry(make_entry(1))
    with pytest.raises(DuplicateEntryError, match="already stored") as err:
        store.add_entry(first)
    assert err.value.existing_id == first.entry_id
    same_results = EntryRecord.from_dict({**make_entry(1).to_dict(), "entry_id": "sub-other"})
    with pytest.raises(DuplicateEntryError, match="already submitted as entry sub-00001"):
        store.add_entry(same_results)
    assert store.count() == 1
    assert store.ensure_entries([make_entry(1), make_entry(2)]) == 1  # seeding skips what exists
    assert store.ensure_entries([make_entry(1), make_entry(2)]) == 0
    assert store.count() == 2


def test_delete_removes_points_too(tmp_path):
    store = SQLiteStore(tmp_path / "lb.db")
    store.add_entry(make_entry(1))
    assert store.delete_entry("sub-00001") and not store.delete_entry("sub-00001")
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM points").fetchone()[0] == 0
        assert conn.execute("SELECT COUNT(*) FROM task_scores").fetchone()[0] == 0


def test_migrates_a_version_1_database_keeping_its_rows(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # what elue-hf with schema v1 wrote
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = 1")
        conn.execute("INSERT INTO entries (entry_id, model_name, source, created_at) "
                     "VALUES ('sub-old', 'old model', 'submission', '2023-01-01')")
        conn.execute("INSERT INTO points (entry_id, task, label, performance, flops_source) "
                     "VALUES ('sub-old', 'sst-2', 'k=1', 81.5, 'self-reported')")
    store = SQLiteStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    old = store.get_entry("sub-old")
    assert old.model_name == "old model" and old.digest is None
    assert old.points[0].performance == 81.5 and old.points[0].max_seq_length is None
    store.add_entry(make_entry(7))  # the v2 columns work
    assert store.find_digest(make_entry(7).digest).entry_id == "sub-00007"


def test_refuses_newer_schema_foreign_databases_and_garbage(tmp_path):
    store = SQLiteStore(tmp_path / "lb.db")
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="schema v99, newer than this elue-hf understands"):
        SQLiteStore(store.path)
    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE customers (id INTEGER)")
    with pytest.raises(StoreError, match="not a leaderboard database"):
        SQLiteStore(tmp_path / "other.db")
    (tmp_path / "garbage.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="garbage.db: file is not a database"):
        SQLiteStore(tmp_path / "garbage.db")


def test_record_validation_names_the_problem():
    with pytest.raises(RecordError, match="entry_id"):
        make_entry(1).__class__(entry_id="../x", model_name="m", source="submission")
    with pytest.raises(RecordError, match="source must be one of"):
        EntryRecord(entry_id="x", model_name="m", source="hacker")
    with pytest.raises(RecordError, match="must be finite"):
        PointRecord(task="sst-2", label="a", performance=float("nan"))
    with pytest.raises(RecordError, match="unknown task|Unknown ELUE task|task"):
        PointRecord(task="cola", label="a", performance=1.0)
    with pytest.raises(RecordError, match="unknown entry fields"):
        EntryRecord.from_dict({**make_entry(1).to_dict(), "__class__": "os.system"})
    with pytest.raises(RecordError, match="not a valid JSON number"):
        EntryRecord.from_json(make_entry(1).to_json().replace('"elue_score": null', '"elue_score": NaN'))
    assert EntryRecord.from_json(make_entry(3).to_json()) == make_entry(3)


# ---------------------------------------------------------------------------------------- concurrency and crashes


def _writer(path: str, worker: int, per_worker: int) -> None:
    store = SQLiteStore(path, timeout=60)
    for j in range(per_worker):
        store.add_entry(make_entry(worker * 1000 + j))


def test_parallel_submitters_lose_nothing(tmp_path):
    """Separate processes (and threads) writing at once: every entry lands, with all its points."""
    path = tmp_path / "lb.db"
    SQLiteStore(path)
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(path), w, 5)) for w in range(6)]
    threads = [threading.Thread(target=_writer, args=(str(path), 100 + w, 5)) for w in range(3)]
    for worker in (*procs, *threads):
        worker.start()
    for worker in (*procs, *threads):
        worker.join(120)
    assert all(p.exitcode == 0 for p in procs)
    store = SQLiteStore(path)
    entries = store.entries()
    assert len(entries) == 9 * 5
    assert {e.entry_id for e in entries} == {f"sub-{w * 1000 + j:05d}" for w in (*range(6), 100, 101, 102)
                                             for j in range(5)}
    assert all(len(e.points) == 6 for e in entries)
    assert store.integrity_check() == []


def _die_mid_write(path: str, ready) -> None:
    store = SQLiteStore(path)
    original = SQLiteStore._insert_points

    def stall(self, conn, entry):
        original(self, conn, entry)  # the entry row and half of what it needs are written, not committed
        ready.set()
        threading.Event().wait(600)

    SQLiteStore._insert_points = stall
    store.add_entry(make_entry(42))


def test_a_writer_killed_mid_submission_leaves_the_store_consistent(tmp_path):
    path = tmp_path / "lb.db"
    store = SQLiteStore(path)
    store.add_entry(make_entry(1))
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    proc = ctx.Process(target=_die_mid_write, args=(str(path), ready))
    proc.start()
    assert ready.wait(60), "the writer never reached the middle of its transaction"
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    after = SQLiteStore(path)
    assert after.get_entry("sub-00042") is None
    assert [e.entry_id for e in after.entries()] == ["sub-00001"]
    assert after.integrity_check() == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM points WHERE entry_id = 'sub-00042'").fetchone()[0] == 0
    after.add_entry(make_entry(43))  # the dead writer's lock is gone
    assert after.count() == 2


def test_a_failing_write_rolls_back_everything(tmp_path):
    store = SQLiteStore(tmp_path / "lb.db")
    with patch.object(SQLiteStore, "_insert_points", failing_point_insert("disk I/O error (simulated)")):
        with pytest.raises(StoreError, match="could not store entry sub-00005"):
            store.add_entry(make_entry(5))
    assert store.count() == 0 and store.integrity_check() == []
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM points").fetchone()[0] == 0


# ------------------------------------------------------------------------------------------------- Hub store


class FakeHub:
    """In-memory stand-in for the Hub endpoints HubStore uses (patched onto HfApi)."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, bytes] = {}
        self.commits: list[dict] = []
        self.repos: list[tuple] = []
        self.fail_commit = False

    def create_repo(self, api, repo_id, *, repo_type=None, private=None, exist_ok=False, **kw):
        self.repos.append((repo_id, repo_type, private, exist_ok))
        from huggingface_hub import RepoUrl

        return RepoUrl(f"https://huggingface.co/datasets/{repo_id}")

    def create_commit(self, api, repo_id, operations, *, commit_message, repo_type=None, **kw):
        if self.fail_commit:
            raise ConnectionError("Hub unreachable (simulated)")
        ops = list(operations)
        self.commits.append({"repo_id": repo_id, "repo_type": repo_type, "message": commit_message,
                             "paths": [op.path_in_repo for op in ops]})
        for op in ops:
            self.files[op.path_in_repo] = op.path_or_fileobj
        return None

    def list_repo_files(self, api, repo_id, *, repo_type=None, **kw):
        assert repo_type == "dataset"
        return list(self.files)

    def hf_hub_download(self, api, repo_id, filename, *, repo_type=None, **kw):
        target = self.root / repo_id.replace("/", "--") / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.files[filename])
        return str(target)

    def patches(self):
        def bind(name):
            method = getattr(self, name)
            return patch.object(HfApi, name, lambda api, *a, **kw: method(api, *a, **kw))

        return [bind(n) for n in ("create_repo", "create_commit", "list_repo_files", "hf_hub_download")]


@pytest.fixture
def hub(tmp_path):
    fake = FakeHub(tmp_path / "downloads")
    patches = fake.patches()
    for p in patches:
        p.start()
    yield fake
    for p in patches:
        p.stop()


def test_hub_store_writes_one_json_file_per_entry_in_one_commit(tmp_path, hub):
    store = HubStore("org/elue-results", cache_path=tmp_path / "cache.db", sync_interval=0)
    entry = make_entry(1)
    store.add_entry(entry)
    assert hub.repos == [("org/elue-results", "dataset", True, True)]
    assert len(hub.commits) == 1 and hub.commits[0]["paths"] == ["entries/sub-00001.json"]
    assert hub.commits[0]["repo_type"] == "dataset"
    assert EntryRecord.from_json(hub.files["entries/sub-00001.json"]) == entry
    assert store.entries() == [entry]
    replica = HubStore("org/elue-results", cache_path=tmp_path / "replica.db", sync_interval=0)
    assert replica.entries() == [entry]  # another Space replica sees it after a sync
    with pytest.raises(DuplicateEntryError):
        replica.add_entry(EntryRecord.from_dict({**entry.to_dict(), "entry_id": "sub-copy"}))
    assert len(hub.commits) == 1


def test_hub_store_failed_commit_stores_nothing(tmp_path, hub):
    store = HubStore("org/elue-results", cache_path=tmp_path / "cache.db", sync_interval=0)
    hub.fail_commit = True
    with pytest.raises(StoreError, match="could not write the entry to the Hub dataset org/elue-results"):
        store.add_entry(make_entry(1))
    assert store.cache.count() == 0 and hub.files == {}


def test_hub_store_recovers_an_entry_committed_before_a_crash(tmp_path, hub):
    store = HubStore("org/elue-results", cache_path=tmp_path / "cache.db", sync_interval=0)
    with patch.object(SQLiteStore, "add_entry", side_effect=StoreError("killed after the Hub commit")):
        with pytest.raises(StoreError):
            store.add_entry(make_entry(1))
    assert "entries/sub-00001.json" in hub.files and store.cache.count() == 0
    assert [e.entry_id for e in store.entries()] == ["sub-00001"]  # the next sync brings it back


def test_hub_store_skips_tampered_files(tmp_path, hub):
    good = make_entry(1)
    hub.files["entries/sub-00001.json"] = good.to_json().encode()
    hub.files["entries/sub-bad.json"] = b"{not json"
    hub.files["entries/sub-wrongid.json"] = make_entry(2).to_json().encode()
    hub.files["entries/sub-paper.json"] = EntryRecord.from_dict(
        {**make_entry(3).to_dict(), "entry_id": "sub-paper", "source": "paper"}).to_json().encode()
    hub.files["README.md"] = b"# results"
    store = HubStore("org/elue-results", cache_path=tmp_path / "cache.db", sync_interval=0)
    assert store.entries() == [good]
    assert set(store.skipped_files) == {"entries/sub-bad.json", "entries/sub-wrongid.json", "entries/sub-paper.json"}
    assert "only submissions" in store.skipped_files["entries/sub-paper.json"]


def test_hub_store_offline_serves_the_cache_and_refuses_writes(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    store = HubStore("org/elue-results", cache_path=tmp_path / "cache.db", sync_interval=0)
    store.ensure_entries([make_entry(9)])  # seeded rows stay local
    assert [e.entry_id for e in store.entries()] == ["sub-00009"]
    assert "OfflineModeIsEnabled" in store.last_sync_error
    with pytest.raises(StoreError, match="OfflineModeIsEnabled"):
        store.add_entry(make_entry(1))
    assert store.cache.count() == 1
    assert issubclass(OfflineModeIsEnabled, Exception)


def test_open_store_picks_hub_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ELUE_RESULTS_REPO", "org/results")
    store = open_store(tmp_path / "cache.db")
    assert isinstance(store, HubStore) and store.repo_id == "org/results"
    assert store.cache.path == tmp_path / "cache.db"
    monkeypatch.delenv("ELUE_RESULTS_REPO")
    monkeypatch.setenv("ELUE_LEADERBOARD_DB", str(tmp_path / "env.db"))
    local = open_store()
    assert isinstance(local, SQLiteStore) and local.path == tmp_path / "env.db"
    with pytest.raises(StoreError, match="owner/name"):
        HubStore("not a repo", cache_path=tmp_path / "x.db")


def test_entry_json_is_plain_data():
    data = json.loads(make_entry(1).to_json())
    assert data["points"][0]["metrics"] == {"acc": 81.0}
    assert set(data) >= {"entry_id", "model_name", "source", "points", "task_scores", "digest"}
