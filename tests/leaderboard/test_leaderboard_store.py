"""Leaderboard storage: SQLite (WAL, transactions, versioned schema, concurrency, crash safety) and the Hub store."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import threading
from unittest.mock import patch

import pytest
from huggingface_hub.errors import OfflineModeIsEnabled
from hypothesis import given, settings
from hypothesis import strategies as st

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
from tests.helpers.hub_replicas import T0, later
from tests.helpers.leaderboard import failing_point_insert, make_entry, refusing_entry_insert

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
    with pytest.raises(RecordError, match="must be a finite number"):
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


def test_hub_store_writes_one_json_file_per_entry_in_one_commit(tmp_path, hub):
    store = HubStore("org/elue-results", cache_path=tmp_path / "cache.db", sync_interval=0)
    entry = make_entry(1)
    store.add_entry(entry)
    assert hub.repos == [{"repo_id": "org/elue-results", "repo_type": "dataset", "private": True, "exist_ok": True}]
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
        {**make_entry(3).to_dict(), "entry_id": "sub-paper", "source": "paper", "flops_tier": None}).to_json().encode()
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


def test_hub_store_validates_before_committing(tmp_path, hub):
    store = HubStore("org/elue-results", cache_path=tmp_path / "cache.db", sync_interval=0)
    with patch.object(SQLiteStore, "_insert_points", failing_point_insert("value out of range (simulated)")):
        with pytest.raises(StoreError, match="cannot be stored: value out of range"):
            store.add_entry(make_entry(1))
    assert hub.commits == [] and hub.files == {} and store.cache.count() == 0  # nothing reached the Hub


def test_hub_store_quarantines_a_remote_file_the_cache_refuses(tmp_path, hub):
    for i in (1, 2, 3):
        hub.files[f"entries/sub-{i:05d}.json"] = make_entry(i).to_json().encode()
    hub.files["entries/sub-huge.json"] = make_entry(4).to_json().replace(
        '"params": 3000000', '"params": ' + "9" * 31).replace("sub-00004", "sub-huge").encode()
    store = HubStore("org/elue-results", cache_path=tmp_path / "cache.db", sync_interval=0)
    with patch.object(SQLiteStore, "_insert_entry", refusing_entry_insert("sub-00002")):
        assert [e.entry_id for e in store.entries()] == ["sub-00001", "sub-00003"]
    assert store.last_sync_error is None
    assert "quarantined" in store.skipped_files["entries/sub-00002.json"]
    assert "params must be a positive integer of at most" in store.skipped_files["entries/sub-huge.json"]
    hub.files["entries/sub-00005.json"] = make_entry(5).to_json().encode()
    assert [e.entry_id for e in store.entries()][-1] == "sub-00005"  # later syncs keep working
    restarted = HubStore("org/elue-results", cache_path=tmp_path / "restart.db", sync_interval=0)
    assert len(restarted.entries()) == 4  # a restarted Space shows every valid submission


def test_old_entries_upgrade_to_tiers(tmp_path):
    legacy = make_entry(1).to_dict()
    del legacy["flops_tier"]
    for p in legacy["points"]:
        del p["flops_tier"]
    legacy["verified"] = True  # the pre-tier JSON form: recomputed from modules
    entry = EntryRecord.from_dict(legacy)
    assert entry.flops_tier == "consistent" and not entry.verified
    assert {p.flops_tier for p in entry.points} == {"consistent"}
    with pytest.raises(RecordError, match="flops_tier must be one of"):
        EntryRecord.from_dict({**make_entry(2).to_dict(), "flops_tier": "trust me"})
    with pytest.raises(RecordError, match="only submissions have a flops_tier"):
        EntryRecord.from_dict({**make_entry(2).to_dict(), "source": "paper"})


def test_a_v2_database_migrates_to_tiers(tmp_path):
    from elue_hf.leaderboard.store import MIGRATIONS

    path = tmp_path / "v2.db"
    with sqlite3.connect(path) as conn:
        for statements in MIGRATIONS[:2]:
            for statement in statements:
                conn.execute(statement)
        conn.execute("UPDATE schema_version SET version = 2")
        conn.execute("INSERT INTO entries (entry_id, model_name, source, verified) VALUES ('sub-a', 'a', "
                     "'submission', 1), ('sub-b', 'b', 'submission', 0), ('paper-c', 'c', 'paper', 0)")
        conn.execute("INSERT INTO points (entry_id, task, label, performance, flops_source) VALUES "
                     "('sub-a', 'sst-2', 'x', 1.0, 'modules'), ('sub-b', 'sst-2', 'y', 1.0, 'self-reported')")
    store = SQLiteStore(path)
    assert store.schema_version() == SCHEMA_VERSION
    tiers = {e.entry_id: (e.flops_tier, [p.flops_tier for p in e.points]) for e in store.entries()}
    assert tiers == {"sub-a": ("consistent", ["consistent"]), "sub-b": ("self-reported", ["self-reported"]),
                     "paper-c": (None, [])}


@given(st.integers(min_value=-(10**40), max_value=10**40))
@settings(max_examples=60, deadline=None)
def test_any_integer_params_is_stored_or_refused_cleanly(value):
    try:
        entry = EntryRecord.from_dict({**make_entry(1).to_dict(), "params": value})
    except RecordError as err:
        assert "params" in str(err)
        return
    assert 0 < entry.params <= 10**13


def test_a_job_is_given_up_after_three_attempts(tmp_path):
    store = SQLiteStore(tmp_path / "lb.db")
    store.add_entry(make_entry(1))
    store.enqueue_verification("sub-00001", "/kept/1.zip", T0)
    for n in (1, 2, 3):  # three workers die while running it; each is taken over once its lease ran out
        assert store.claim_verification(later(6 * n)).entry_id == "sub-00001"
        assert store.claim_verification(later(6 * n + 5.9)) is None  # still leased: a live worker keeps it
        assert store.verification_jobs()[0].state == "running"
    assert store.claim_verification(later(24)) is None
    (job,) = store.verification_jobs()
    assert job.state == "failed" and "gave up after 3 attempts" in job.report["error"]


def test_a_worker_whose_job_was_taken_over_cannot_record_its_result(tmp_path, caplog):
    from elue_hf.verify.worker import run_job

    first, second = SQLiteStore(tmp_path / "lb.db"), SQLiteStore(tmp_path / "lb.db")  # two worker processes
    first.add_entry(make_entry(1))
    first.enqueue_verification("sub-00001", str(tmp_path / "gone.zip"), T0)
    stale = first.claim_verification(later(1))  # ... and the first worker hangs past its lease
    assert second.claim_verification(later(6.9)) is None  # not before the lease ran out
    assert stale.report == {"worker": first.worker} and second.claim_verification(later(7)).attempts == 2
    run_job(second, second.verification_jobs()[0], tmp_path)  # the normal path: recorded under second's claim
    (job,) = first.verification_jobs()
    assert (job.state, job.attempts, job.report["worker"]) == ("failed", 2, second.worker)
    report = run_job(first, stale, tmp_path)  # the stale worker finishes: refused, and it goes on without crashing
    assert report["verified"] is False and "result discarded" in caplog.text
    assert first.verification_jobs() == [job]
    assert not first.finish_verification("sub-00001", True, {"verified": True}, later(8))  # finished
    assert not first.get_entry("sub-00001").verified and first.verification_jobs() == [job]
