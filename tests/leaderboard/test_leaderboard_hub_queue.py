"""The verification queue of the Hub store: request files on the Hub, replicas with separate caches that agree, a
restarted replica that resumes, quarantined request files, untrusted tier claims, pushes that survive Hub failures."""

from __future__ import annotations

import json
import math

import pytest

from elue_hf.cli import main
from elue_hf.leaderboard.hub_queue import MAX_REPORT_CHARS, bounded_report, request_from_json, request_json
from elue_hf.leaderboard.records import EntryRecord, RecordError, with_verification
from elue_hf.leaderboard.store import HubStore, StoreError, VerificationJob
from elue_hf.leaderboard.submit import submit_file
from elue_hf.verify.worker import run_worker
from tests.helpers.hub_replicas import REPO, REPORT, T0, T1, T2, later, replica, request_on_hub, tiers
from tests.helpers.leaderboard import gold_labels, make_entry, make_submission


def test_replicas_agree_once_a_job_is_verified(tmp_path, hub):
    a, b = replica(tmp_path, "a"), replica(tmp_path, "b")
    a.add_entry(make_entry(1))
    a.add_entry(make_entry(2))
    assert a.enqueue_verification("sub-00001", "/kept/sub-00001.zip", T0)
    assert request_on_hub(hub, "sub-00001") == {
        "entry_id": "sub-00001", "state": "pending", "attempts": 0, "created_at": T0, "updated_at": T0,
        "submission": "/kept/sub-00001.zip", "report": {}}
    assert [(e.entry_id, e.flops_tier) for e in b.entries()] == [("sub-00001", "consistent"),
                                                                  ("sub-00002", "consistent")]
    assert [(j.entry_id, j.state) for j in b.verification_jobs()] == [("sub-00001", "pending")]
    job = a.claim_verification(T1)
    assert (job.entry_id, job.state, job.attempts) == ("sub-00001", "running", 1)
    assert request_on_hub(hub, "sub-00001")["state"] == "running"
    a.finish_verification("sub-00001", True, REPORT, T2)
    assert [c["message"] for c in hub.commits] == [
        "Add ELUE entry model 1 (sub-00001)", "Add ELUE entry model 2 (sub-00002)",
        "Queue the verification of sub-00001", "Verification of sub-00001 running (attempt 1)",
        "Verification of sub-00001: verified"]
    assert hub.commits[-1]["paths"] == ["requests/sub-00001.json", "entries/sub-00001.json"]  # one commit
    downloads = dict(hub.downloads)
    b.sync()
    changed = {k: hub.downloads[k] - downloads.get(k, 0) for k in hub.downloads}
    assert {k for k, n in changed.items() if n} == {"requests/sub-00001.json", "entries/sub-00001.json"}
    seen = b.get_entry("sub-00001")
    assert tiers(seen) == ("verified", {"verified"}) and seen == a.get_entry("sub-00001")
    assert seen.extra["verification"] == {k: REPORT[k] for k in ("throughput", "machine", "model")}
    assert tiers(b.get_entry("sub-00002")) == ("consistent", {"consistent"})
    (remote,) = b.verification_jobs()
    assert (remote.state, remote.attempts, remote.updated_at) == ("verified", 1, T2)
    assert remote.report == {**REPORT, "worker": a.worker}  # the result names the worker whose claim it finished
    assert b.sync() == 0 and hub.downloads == {k: downloads.get(k, 0) + changed[k] for k in hub.downloads}


def test_a_fresh_replica_recovers_the_queue_and_the_worker_resumes(tmp_path, hub):
    a = replica(tmp_path, "a")
    for i in (1, 2):
        a.add_entry(make_entry(i))
        entry_id = f"sub-{i:05d}"
        a.enqueue_verification(entry_id, str(tmp_path / "gone" / f"{entry_id}.zip"), f"2026-01-01T00:00:0{i}+00:00")
    assert a.claim_verification(T1).entry_id == "sub-00001"  # ... and the Space dies while re-running it
    c = replica(tmp_path, "c")  # restarted with an empty cache
    assert [(j.entry_id, j.state, j.attempts) for j in c.verification_jobs()] == [
        ("sub-00001", "running", 1), ("sub-00002", "pending", 0)]
    done = run_worker(c, tmp_path / "data", once=True)  # the pending job first, then the one past its lease
    assert [entry_id for entry_id, _ in done.failed] == ["sub-00002", "sub-00001"] and done.ran == 2
    states = {i: request_on_hub(hub, i) for i in ("sub-00001", "sub-00002")}
    assert {i: (s["state"], s["attempts"]) for i, s in states.items()} == {"sub-00001": ("failed", 2),
                                                                           "sub-00002": ("failed", 1)}
    assert states["sub-00001"]["report"] == {"verified": False, "error": "the kept submission file is gone",
                                             "worker": c.worker}
    assert [j.state for j in a.verification_jobs()] == ["failed", "failed"]  # the first replica catches up
    assert {e.flops_tier for e in a.entries()} == {"consistent"}


def test_a_job_claimed_too_often_fails_on_every_replica(tmp_path, hub):
    a = replica(tmp_path, "a")
    a.add_entry(make_entry(1))
    a.enqueue_verification("sub-00001", "/kept/sub-00001.zip", T0)
    for n in (1, 2, 3):  # three replicas in turn claim it and die; each takes it once the lease has run out
        assert replica(tmp_path, f"r{n}").claim_verification(later(6 * n)).attempts == n
    assert replica(tmp_path, "r4").claim_verification(later(24)) is None
    assert request_on_hub(hub, "sub-00001")["state"] == "failed"
    assert "gave up after 3 attempts" in a.verification_jobs()[0].report["error"]


BAD_REQUESTS = {
    "not JSON": (b"{oops", "not valid JSON|Expecting"),
    "a list": (b"[]", "must be a JSON object"),
    "unknown state": ({"state": "done"}, "state must be one of"),
    "attempts as text": ({"attempts": "1"}, "attempts must be an integer"),
    "attempts as bool": ({"attempts": True}, "attempts must be an integer"),
    "extra field": ({"owner": "me"}, "exactly the fields"),
    "other entry": ({"entry_id": "sub-00002"}, "holds entry_id"),
    "report not an object": ({"report": "fine"}, "report must be an object"),
    "verified without a verdict": ({"state": "verified", "report": {"verified": False}}, "verified request needs"),
    "empty submission": ({"submission": ""}, "submission must be a string"),
    "updated_at not a time": ({"updated_at": "yesterday"}, "updated_at must be an ISO 8601 time"),
    "another entry's submission": ({"submission": "/kept/sub-00002.zip"}, "must be a file named sub-00001.zip"),
    "oversized": ({"report": {"blob": "x" * (70 * 2**10)}}, "larger than 65536 bytes"),
}


def _request_bytes(change) -> bytes:
    if isinstance(change, bytes):
        return change
    good = {"entry_id": "sub-00001", "state": "pending", "attempts": 0, "created_at": T0, "updated_at": T0,
            "submission": "/kept/sub-00001.zip", "report": {}}
    return json.dumps({**good, **change}).encode()


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_a_malformed_request_file_is_quarantined(tmp_path, hub, case):
    change, why = BAD_REQUESTS[case]
    hub.files["entries/sub-00001.json"] = make_entry(1).to_json().encode()
    hub.files["requests/sub-00001.json"] = _request_bytes(change)
    b = replica(tmp_path, "b")
    assert [e.entry_id for e in b.entries()] == ["sub-00001"] and b.last_sync_error is None
    assert list(b.skipped_files) == ["requests/sub-00001.json"]
    assert any(part in b.skipped_files["requests/sub-00001.json"] for part in why.split("|"))
    assert b.verification_jobs() == [] and tiers(b.get_entry("sub-00001"))[0] == "consistent"
    hub.files["entries/sub-00002.json"] = make_entry(2).to_json().encode()
    assert len(b.entries()) == 2  # later syncs keep working
    reads = hub.downloads.get("requests/sub-00001.json", 0)
    assert reads == (0 if case == "oversized" else 1)  # an oversized file is refused by its listed size, unread
    restarted = HubStore(REPO, cache_path=tmp_path / "b.db", sync_interval=0)  # the quarantine outlives a restart
    assert list(restarted.skipped_files) == ["requests/sub-00001.json"]
    restarted.sync()
    assert hub.downloads.get("requests/sub-00001.json", 0) == reads  # not read again while it is unchanged
    hub.files["requests/sub-00001.json"] = _request_bytes({})  # repaired on the Hub: read again
    assert [j.state for j in restarted.verification_jobs()] == ["pending"] and restarted.skipped_files == {}


def test_an_entry_file_claiming_verified_is_not_trusted(tmp_path, hub):
    a, b = replica(tmp_path, "a"), replica(tmp_path, "b")
    a.add_entry(make_entry(1))
    a.enqueue_verification("sub-00001", "/kept/sub-00001.zip", T0)
    assert b.get_entry("sub-00001") is None and tiers(b.entries()[0]) == ("consistent", {"consistent"})
    forged = with_verification(make_entry(1), {"throughput": {"batch_1": 1e9}})
    hub.files["entries/sub-00001.json"] = forged.to_json().encode()  # edited on the Hub, no verified record
    for name in ("a", "b", "c"):  # the writer, a replica that had it, a fresh one
        seen = replica(tmp_path, name).entries()[0]
        assert tiers(seen) == ("consistent", {"consistent"}) and "verification" not in seen.extra
    self_reported = EntryRecord.from_dict({**forged.to_dict(), "entry_id": "sub-00009", "digest": None, "points": [
        {**p.to_dict(), "flops_source": "self-reported"} for p in forged.points]})
    hub.files["entries/sub-00009.json"] = self_reported.to_json().encode()
    assert tiers(b.get_entry("sub-00009") or b.entries()[-1]) == ("self-reported", {"self-reported"})
    with pytest.raises(StoreError, match="must be a file named sub-00001.zip"):
        a.enqueue_verification("sub-00001", "/kept/other.zip", T0)
    with pytest.raises(StoreError, match="created_at must be a string of 1 to 40"):
        a.enqueue_verification("sub-00001", "/kept/sub-00001.zip", "")
    with pytest.raises(StoreError, match="time of a queue operation must be a string"):
        a.claim_verification(None)
    with pytest.raises(StoreError, match="claims the verified tier"):
        a.add_entry(with_verification(make_entry(3), {}))
    a.claim_verification(T1)
    a.finish_verification("sub-00001", True, REPORT, T2)  # the record, not the file, makes it verified
    assert tiers(b.entries()[0]) == ("verified", {"verified"})
    assert b.get_entry("sub-00001").extra["verification"]["throughput"] == {"batch_1": 12.5}


def test_an_edited_entry_file_reaches_every_replica(tmp_path, hub):
    a, b = replica(tmp_path, "a"), replica(tmp_path, "b")
    a.add_entry(make_entry(1))
    assert b.entries()[0].description == ""
    edited = EntryRecord.from_dict({**make_entry(1).to_dict(), "description": "retracted by the submitter"})
    hub.files["entries/sub-00001.json"] = edited.to_json().encode()
    assert a.entries() == b.entries() == [edited]


def test_a_failed_push_loses_no_result(tmp_path, hub):
    a, b = replica(tmp_path, "a"), replica(tmp_path, "b")
    a.add_entry(make_entry(1))
    a.add_entry(make_entry(2))
    hub.fail_commit = True  # the Hub goes away
    assert a.enqueue_verification("sub-00001", "/kept/sub-00001.zip", T0)
    assert a.claim_verification(T1) is None  # a claim only the cache knows would not be safe
    assert [(j.state, j.attempts) for j in a.verification_jobs()] == [("pending", 0)]
    hub.fail_commit = False
    job = a.claim_verification(T1)  # pushes the waiting request, then claims it
    hub.fail_commit = True
    a.finish_verification(job.entry_id, True, REPORT, T2)  # no exception: the worker goes on
    assert "ConnectionError" in a.last_push_error and request_on_hub(hub, "sub-00001")["state"] == "running"
    assert tiers(a.get_entry("sub-00001")) == ("verified", {"verified"})
    a.sync()  # still unreachable for commits: the local result is not overwritten by the Hub's older state
    assert [j.state for j in a.verification_jobs()] == ["verified"]
    assert tiers(b.entries()[0]) == ("consistent", {"consistent"}) and b.verification_jobs()[0].state == "running"
    hub.fail_commit = False
    a.sync()  # pushes what is pending, in one commit
    assert hub.commits[-1]["paths"] == ["requests/sub-00001.json", "entries/sub-00001.json"]
    assert request_on_hub(hub, "sub-00001")["state"] == "verified" and a.last_push_error is None
    assert tiers(b.entries()[0]) == ("verified", {"verified"})
    assert [(j.state, j.attempts) for j in b.verification_jobs()] == [("verified", 1)]
    commits = len(hub.commits)
    a.sync()
    assert len(hub.commits) == commits  # nothing left to push


def test_an_unpushed_result_waits_for_the_hub_and_keeps_to_its_claim(tmp_path, hub):
    a = replica(tmp_path, "a")
    a.add_entry(make_entry(1))
    a.enqueue_verification("sub-00001", "/kept/sub-00001.zip", T0)
    a.claim_verification(T1)
    hub.fail_commit = True
    assert a.finish_verification("sub-00001", False, {"verified": False, "error": "contradicted"}, T2)
    a.sync()  # the Hub still shows a's claim: a read never overwrites the unpushed result, which waits
    assert [j.state for j in a.verification_jobs()] == ["failed"] and "unreachable" in a.last_push_error
    hub.files["requests/sub-00001.json"] = _request_bytes({"state": "pending", "updated_at": T2})  # re-queued
    hub.fail_commit = False
    a.sync()  # the claim that result finishes is gone: the result is discarded, the Hub's request kept
    assert request_on_hub(hub, "sub-00001")["state"] == "pending"
    assert [j.state for j in a.verification_jobs()] == ["pending"] and a.last_push_error is None


def test_request_files_round_trip_and_reports_are_bounded():
    job = VerificationJob("sub-1", "verified", "/kept/sub-1.zip", 2, T0, T1, bounded_report(REPORT))
    assert request_from_json(request_json(job), "sub-1") == job
    with pytest.raises(RecordError, match="holds entry_id"):
        request_from_json(request_json(job), "sub-2")
    odd = bounded_report({"verified": False, "seconds": math.nan, "rate": float("inf"), "n": 3})
    assert odd == {"verified": False, "seconds": None, "rate": None, "n": 3}
    cached = VerificationJob("sub-1", "failed", "/kept/sub-1.zip", 1, T0, T1, {"verified": False, "seconds": math.nan})
    assert request_from_json(request_json(cached), "sub-1").report == {"verified": False, "seconds": None}
    huge = bounded_report({**REPORT, "files": {f"f{i}": {"why": "x" * 100} for i in range(1000)}})
    assert huge["truncated"] and "files" not in huge and huge["throughput"] == REPORT["throughput"]
    assert len(json.dumps(huge)) <= MAX_REPORT_CHARS
    assert bounded_report({"verified": True, "model": "m" * MAX_REPORT_CHARS}) == {"verified": True, "truncated": True}


def test_the_worker_cli_runs_the_hub_queue(tmp_path, hub, capsys):
    a = replica(tmp_path, "a")
    a.add_entry(make_entry(1))
    a.enqueue_verification("sub-00001", str(tmp_path / "gone" / "sub-00001.zip"), T0)
    args = ["verify-worker", "--results-repo", REPO, "--db", str(tmp_path / "worker.db"), "--once", "--data-dir",
            str(tmp_path)]
    assert main(args) == 1  # a job it ran failed
    assert capsys.readouterr().out.splitlines() == ["1 verification job(s) run: 0 verified, 1 failed; 0 pending",
                                                    "  sub-00001 failed: the kept submission file is gone"]
    assert request_on_hub(hub, "sub-00001")["state"] == "failed"
    assert not list(tmp_path.glob("*.lock"))  # claims go through the store: no lock file


def test_the_page_says_when_results_wait_for_the_hub(tmp_path, hub):
    from elue_hf.spaces.leaderboard.app import Leaderboard

    store = replica(tmp_path, "a")
    board = Leaderboard(store, seed=False)
    store.add_entry(make_entry(1))
    hub.files["requests/sub-00001.json"] = b"{oops"
    hub.fail_commit = True
    store.enqueue_verification("sub-00001", "/kept/sub-00001.zip", T0)
    header = board.header(store.entries())
    assert "1 file(s) in the Hub results repo were refused and quarantined" in header
    assert "Verification results are waiting to be written" in header
    hub.fail_commit = False
    header = board.header(store.entries())  # the local request replaced the broken file on the Hub
    assert "waiting to be written" not in header and "quarantined" not in header
    assert request_on_hub(hub, "sub-00001")["state"] == "pending"


def test_a_submission_naming_its_model_is_queued_on_the_hub(tmp_path, hub):
    gold = gold_labels(tasks=("sst-2",))
    upload = make_submission(tmp_path, gold, name="named", depths=(3,), model="org/named")
    kept = tmp_path / "kept"
    outcome = submit_file(replica(tmp_path, "a"), upload, gold, verify_dir=kept)
    entry_id = outcome.entry.entry_id
    assert outcome.queued and (kept / f"{entry_id}.zip").is_file()
    request = request_on_hub(hub, entry_id)
    assert (request["state"], request["submission"]) == ("pending", str(kept / f"{entry_id}.zip"))
    assert [(j.entry_id, j.state) for j in replica(tmp_path, "b").verification_jobs()] == [(entry_id, "pending")]


def test_a_cache_from_before_the_hub_queue_publishes_its_jobs(tmp_path, hub):
    from elue_hf.leaderboard.store import SQLiteStore

    old = SQLiteStore(tmp_path / "old.db")  # a replica's cache that kept its queue locally (v5 marks them unsynced)
    old.add_entry(make_entry(1))
    old.enqueue_verification("sub-00001", "/kept/sub-00001.zip", T0)
    old.claim_verification(T1)
    old.finish_verification("sub-00001", True, REPORT, T2)
    hub.files["entries/sub-00001.json"] = old.get_entry("sub-00001").to_json().encode()  # rewritten by old code
    assert tiers(replica(tmp_path, "b").entries()[0]) == ("consistent", {"consistent"})  # no record yet
    upgraded = HubStore(REPO, cache_path=tmp_path / "old.db", sync_interval=0)
    assert tiers(upgraded.entries()[0]) == ("verified", {"verified"})
    assert request_on_hub(hub, "sub-00001")["state"] == "verified"
    assert tiers(replica(tmp_path, "b").entries()[0]) == ("verified", {"verified"})
