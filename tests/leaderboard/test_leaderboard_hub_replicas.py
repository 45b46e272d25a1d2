"""Replicas of the Hub store writing at once: claims that race (parent-commit conflicts), the lease of a running job,
and entries or requests deleted on the Hub (moderation) leaving every replica's cache."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from unittest.mock import patch

import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError
from huggingface_hub.utils.sha import git_hash

from elue_hf.cli import main
from elue_hf.leaderboard.hub_store import git_blob_id
from elue_hf.leaderboard.jobs import LEASE_ENV, plan_claim
from elue_hf.leaderboard.records import EntryRecord
from elue_hf.leaderboard.store import SQLiteStore, StoreError, VerificationJob
from tests.helpers.hub_fake import CONFLICT
from tests.helpers.hub_replicas import REPO, REPORT, T0, T1, T2, later, replica, request_on_hub, tiers
from tests.helpers.leaderboard import make_entry, refusing_entry_insert

FILES_1 = ("entries/sub-00001.json", "requests/sub-00001.json")


def queued(store, *numbers) -> None:
    for i in numbers:
        store.add_entry(make_entry(i))
        store.enqueue_verification(f"sub-{i:05d}", f"/kept/sub-{i:05d}.zip", T0)


def race(hub, first, now: str) -> list:
    """Make ``first`` claim between another replica's read of the Hub and that replica's claim commit."""
    claims = []
    hub.before_commit = lambda: claims.append(first.claim_verification(now))
    return claims


def test_the_fake_hub_answers_a_stale_parent_as_the_hub_does(hub):
    api = HfApi()
    add = lambda text: [CommitOperationAdd(path_in_repo="a.json", path_or_fileobj=text)]  # noqa: E731
    first = api.create_commit(REPO, add(b"1"), commit_message="one", repo_type="dataset")
    second = api.create_commit(REPO, add(b"2"), commit_message="two", repo_type="dataset", parent_commit=first.oid)
    with pytest.raises(HfHubHTTPError, match=CONFLICT) as caught:
        api.create_commit(REPO, add(b"3"), commit_message="three", repo_type="dataset", parent_commit=first.oid)
    assert caught.value.response.status_code == 412 and hub.conflicts == 1
    same = api.create_commit(REPO, add(b"2"), commit_message="no-op", repo_type="dataset", parent_commit=first.oid)
    assert same.oid == second.oid == api.repo_info(REPO, repo_type="dataset").sha  # nothing sent, parent unchecked
    hub.files["b.json"] = b"edited on the website"
    assert api.repo_info(REPO, repo_type="dataset").sha != second.oid  # a direct edit is a commit
    old = {f.path for f in api.list_repo_tree(REPO, repo_type="dataset", revision=second.oid)}
    assert old == {"a.json"} and git_blob_id(b"2") == git_hash(b"2")


def test_two_replicas_claiming_at_once_get_different_jobs(tmp_path, hub):
    a, b = replica(tmp_path, "a"), replica(tmp_path, "b")
    queued(a, 1, 2)
    claims = race(hub, a, T1)
    mine = b.claim_verification(T1)  # same time, same attempt: only the worker each claim names differs
    (theirs,) = claims
    assert (theirs.entry_id, mine.entry_id, hub.conflicts) == ("sub-00001", "sub-00002", 1)
    assert a.worker != b.worker
    for job, store in ((theirs, a), (mine, b)):
        assert request_on_hub(hub, job.entry_id) == {
            "entry_id": job.entry_id, "state": "running", "attempts": 1, "created_at": T0, "updated_at": T1,
            "submission": f"/kept/{job.entry_id}.zip", "report": {"worker": store.worker}}
    queued(a, 3)
    claims = race(hub, b, T2)
    assert a.claim_verification(T2) is None and claims[0].entry_id == "sub-00003"  # one job: the other gets none
    jobs = {(j.entry_id, j.state, j.attempts) for j in replica(tmp_path, "c").verification_jobs()}
    assert jobs == {(f"sub-0000{i}", "running", 1) for i in (1, 2, 3)} == {
        (j.entry_id, j.state, j.attempts) for j in a.verification_jobs()}


def test_a_running_job_is_taken_over_only_after_its_lease(tmp_path, hub, monkeypatch):
    a = replica(tmp_path, "a")
    queued(a, 1)
    assert a.claim_verification(T1).attempts == 1  # ... and its worker hangs or dies
    b = replica(tmp_path, "b")
    assert b.claim_verification(later(5.99)) is None  # still a's: the lease (6 h by default) has not run out
    assert request_on_hub(hub, "sub-00001")["report"] == {"worker": a.worker}
    taken = b.claim_verification(later(6))
    assert (taken.entry_id, taken.attempts) == ("sub-00001", 2)
    assert request_on_hub(hub, "sub-00001")["report"] == {"worker": b.worker}
    short = replica(tmp_path, "c", lease_hours=0.5)
    assert short.claim_verification(later(6.4)) is None
    assert short.claim_verification(later(6.5)).attempts == 3
    monkeypatch.setenv(LEASE_ENV, "0.25")
    assert replica(tmp_path, "d").lease == timedelta(minutes=15)
    for bad in ("0", "-1", "nan", "soon"):
        monkeypatch.setenv(LEASE_ENV, bad)
        with pytest.raises(StoreError, match="lease must be a positive number of hours"):
            replica(tmp_path, "e")


def taken_over(tmp_path, hub):
    """Replica a claims sub-00001 and hangs past the lease; replica b takes the job over."""
    a, b = replica(tmp_path, "a"), replica(tmp_path, "b")
    queued(a, 1)
    a.claim_verification(T1)
    assert b.claim_verification(later(6)).attempts == 2
    return a, b


FAILED = {"verified": False, "error": "contradicted"}


def test_a_worker_past_its_lease_never_overwrites_the_takeover(tmp_path, hub, caplog):
    a, b = taken_over(tmp_path, hub)
    assert b.finish_verification("sub-00001", False, FAILED, later(7))  # the normal path: b's claim, b's result
    commits = len(hub.commits)
    assert a.finish_verification("sub-00001", True, REPORT, later(8)) is False  # a wakes up, its claim long gone
    assert len(hub.commits) == commits and "no longer running under the claim" in caplog.text
    request = request_on_hub(hub, "sub-00001")
    assert (request["state"], request["attempts"], request["report"]) == ("failed", 2, {**FAILED, "worker": b.worker})
    for store in (a, b):  # a's cache shows b's result, and a's verdict never raised the tier
        assert [(j.state, j.report["worker"]) for j in store.verification_jobs()] == [("failed", b.worker)]
        assert tiers(store.entries()[0]) == ("consistent", {"consistent"})


def test_a_stale_result_is_refused_while_the_takeover_still_runs(tmp_path, hub):
    a, b = taken_over(tmp_path, hub)
    assert a.finish_verification("sub-00001", False, FAILED, later(7)) is False
    assert request_on_hub(hub, "sub-00001")["report"] == {"worker": b.worker}  # b's claim stands
    assert b.finish_verification("sub-00001", True, REPORT, later(8))
    assert request_on_hub(hub, "sub-00001")["state"] == "verified" and tiers(a.entries()[0])[0] == "verified"


def test_a_takeover_landing_before_the_result_commit_wins(tmp_path, hub):
    a = replica(tmp_path, "a")
    queued(a, 1)
    a.claim_verification(T1)
    b = replica(tmp_path, "b")
    claims = race(hub, b, later(6))  # b takes the job between a's read of the Hub and a's result commit
    assert a.finish_verification("sub-00001", True, REPORT, later(6)) is False
    assert claims[0].attempts == 2 and hub.conflicts == 1
    assert request_on_hub(hub, "sub-00001")["report"] == {"worker": b.worker}
    assert [(j.state, j.attempts) for j in a.verification_jobs()] == [("running", 2)]
    assert tiers(a.entries()[0]) == ("consistent", {"consistent"})


def test_a_result_kept_offline_is_dropped_when_its_job_was_taken_over(tmp_path, hub):
    a, b = replica(tmp_path, "a"), replica(tmp_path, "b")
    queued(a, 1)
    a.claim_verification(T1)
    hub.fail_commit = True
    assert a.finish_verification("sub-00001", True, REPORT, T2)  # kept in a's cache until the Hub answers
    assert tiers(a.entries()[0])[0] == "verified"
    hub.fail_commit = False
    assert b.claim_verification(later(6)).attempts == 2  # the Hub still shows a's claim, whose lease ran out
    assert b.finish_verification("sub-00001", False, FAILED, later(7))
    a.sync()  # a's result finishes a claim the Hub no longer shows: discarded, b's result read instead
    assert request_on_hub(hub, "sub-00001")["report"] == {**FAILED, "worker": b.worker}
    assert [(j.state, j.attempts) for j in a.verification_jobs()] == [("failed", 2)] and a.last_push_error is None
    assert tiers(a.entries()[0]) == ("consistent", {"consistent"}) and a.cache.unsynced_jobs() == []


def test_the_worker_cli_refuses_a_lease_shorter_than_a_rerun(tmp_path, hub, capsys):
    args = ["verify-worker", "--results-repo", REPO, "--db", str(tmp_path / "w.db"), "--once", "--data-dir",
            str(tmp_path), "--time-limit", "7200"]
    assert main([*args, "--lease-hours", "2"]) == 2
    assert "the claim lease (2 h) must be longer than --time-limit (7200 s)" in capsys.readouterr().err
    assert main([*args, "--lease-hours", "0"]) == 2
    assert "lease must be a positive number of hours" in capsys.readouterr().err
    assert main([*args, "--lease-hours", "2.5"]) == 0 and hub.commits == []


def test_a_claim_plan_fails_only_takeable_jobs():
    lease = timedelta(hours=6)
    job = lambda i, state, attempts, at: VerificationJob(f"s{i}", state, f"/k/s{i}.zip", attempts, T0, at, {})  # noqa
    last_try = job(1, "running", 3, later(1))  # its third attempt is still running: left alone
    orphan = job(2, "running", 1, "not a time")  # a time that does not read: its worker cannot be shown alive
    spent = job(3, "pending", 3, T0)
    changes, claimed = plan_claim([last_try, spent, orphan], later(2), 3, lease, "w")
    assert [(before.entry_id, after.state) for before, after in changes] == [("s3", "failed"), ("s2", "running")]
    assert (claimed.entry_id, claimed.attempts, claimed.report) == ("s2", 2, {"worker": "w"})
    assert plan_claim([last_try], later(2), 3, lease, "w") == ([], None)


def test_an_entry_deleted_on_the_hub_leaves_every_replica(tmp_path, hub):
    a, b = replica(tmp_path, "a"), replica(tmp_path, "b")
    queued(a, 1)
    a.add_entry(make_entry(2))
    a.finish_verification(a.claim_verification(T1).entry_id, True, REPORT, T2)
    paper = EntryRecord.from_dict({**make_entry(3).to_dict(), "entry_id": "paper-3", "source": "paper",
                                   "flops_tier": None, "points": [{**p.to_dict(), "flops_tier": None}
                                                                  for p in make_entry(3).points]})
    b.ensure_entries([paper])  # a seeded row: local to b
    hub.files["entries/sub-bad.json"] = b"{oops"
    assert {e.entry_id for e in b.entries()} == {"sub-00001", "sub-00002", "paper-3"} and b.skipped_files
    assert a.delete_entry("sub-00001")
    assert (hub.commits[-1]["deleted"], hub.commits[-1]["paths"]) == (list(FILES_1), [])  # one commit
    assert [e.entry_id for e in a.entries()] == ["sub-00002"] and a.verification_jobs() == []
    del hub.files["entries/sub-bad.json"]  # and a quarantined file removed on the website
    assert {e.entry_id for e in b.entries()} == {"sub-00002", "paper-3"}
    assert b.verification_jobs() == [] and b.skipped_files == {}
    assert set(b.cache.known_blobs()) == {"entries/sub-00002.json"}
    with sqlite3.connect(b.cache.path) as conn:
        for table in ("points", "task_scores", "verification_jobs"):
            assert conn.execute(f"SELECT COUNT(*) FROM {table} WHERE entry_id = 'sub-00001'").fetchone()[0] == 0
    assert b.cache.integrity_check() == []
    commits = len(hub.commits)
    assert not b.delete_entry("sub-00001") and len(hub.commits) == commits  # nothing left to delete
    assert b.delete_entry("paper-3") and len(hub.commits) == commits  # a local row goes from the cache only
    hub.fail_commit = True
    with pytest.raises(StoreError, match="could not delete entry sub-00002 from the Hub dataset"):
        b.delete_entry("sub-00002")
    assert b.get_entry("sub-00002") is not None


def test_a_deletion_is_applied_when_the_cache_refuses_another_file(tmp_path, hub):
    b = replica(tmp_path, "b")
    for i in (1, 2):
        hub.files[f"entries/sub-{i:05d}.json"] = make_entry(i).to_json().encode()
    assert len(b.entries()) == 2
    del hub.files["entries/sub-00001.json"]
    hub.files["entries/sub-00003.json"] = make_entry(3).to_json().encode()
    with patch.object(SQLiteStore, "_insert_entry", refusing_entry_insert("sub-00003")):
        assert [e.entry_id for e in b.entries()] == ["sub-00002"]
    assert "quarantined" in b.skipped_files["entries/sub-00003.json"]


def test_a_request_deleted_on_the_hub_takes_its_tier_away(tmp_path, hub):
    a, b = replica(tmp_path, "a"), replica(tmp_path, "b")
    queued(a, 1, 2)
    a.finish_verification(a.claim_verification(T1).entry_id, True, REPORT, T2)
    assert tiers(b.entries()[0]) == ("verified", {"verified"})
    del hub.files["requests/sub-00001.json"]  # the entry file still says verified: only a request is trusted
    for store in (a, b):
        assert tiers(store.entries()[0]) == ("consistent", {"consistent"})
        assert [j.entry_id for j in store.verification_jobs()] == ["sub-00002"]
    job = b.claim_verification(T2)
    hub.fail_commit = True
    b.finish_verification(job.entry_id, False, {"verified": False, "error": "contradicted"}, T2)
    del hub.files["requests/sub-00002.json"]
    hub.fail_commit = False
    b.sync()  # an unpushed state outlives the deletion of its older copy: it is written again
    assert request_on_hub(hub, "sub-00002")["state"] == "failed"


def test_a_deletion_racing_a_push_is_never_undone(tmp_path, hub):
    a = replica(tmp_path, "a")
    queued(a, 1)
    a.claim_verification(T1)
    hub.fail_commit = True
    a.finish_verification("sub-00001", True, REPORT, T2)  # waits in the cache, and would rewrite the entry file
    hub.fail_commit = False
    hub.before_commit = lambda: [hub.files.pop(path) for path in FILES_1]  # a moderator, between read and push
    a.sync()
    assert hub.conflicts == 1 and not set(FILES_1) & set(hub.files)
    assert a.entries() == [] and a.verification_jobs() == [] and a.last_push_error is None


def test_a_copied_digest_never_displaces_the_original_and_replicas_agree(tmp_path, hub):
    from dataclasses import replace

    from elue_hf.leaderboard.records import entry_id_for

    entry = make_entry(7)
    original = replace(entry, entry_id=entry_id_for(entry.digest))  # how submit names an entry: by its digest
    old = replica(tmp_path, "old")
    old.add_entry(original)
    copy = replace(original, entry_id="aaaa-copy", model_name="copied")  # its id sorts before the original's
    hub.files["entries/aaaa-copy.json"] = copy.to_json().encode()  # written straight into the repo
    fresh = replica(tmp_path, "fresh")  # reads the copy first
    for store in (old, fresh):
        assert [e.entry_id for e in store.entries()] == [original.entry_id]
        assert "entries/aaaa-copy.json" in store.skipped_files
        assert store.find_digest(original.digest).entry_id == original.entry_id
