"""One queue, one claim: several workers of each kind (the Space's background thread, ``run_worker`` as
``elue-hf verify-worker`` runs it, Hub-store replicas) on one store run every job exactly once; a worker killed with
``kill -9`` takes its sandbox with it, and its job is taken again only after the lease. The re-run itself is replaced
by a counting runner (the real re-run is tested in test_verify.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.verify.sandbox import SandboxLimits, run_limited
from elue_hf.verify.worker import run_worker, start_background_worker
from tests.helpers.hub_replicas import REPORT, replica, request_on_hub
from tests.helpers.leaderboard import make_entry

JOBS = 6


class CountingRunner:
    """Stands in for the sandboxed re-run: records which submission each call re-ran, and verifies it."""

    def __init__(self):
        self.runs: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, submission, data_dir, **kw) -> dict:
        with self._lock:
            self.runs.append(Path(submission).stem)
        time.sleep(0.02)  # long enough for the other workers to try to claim meanwhile
        return dict(REPORT)


def queue_jobs(store, tmp_path, count: int = JOBS) -> list[str]:
    kept = tmp_path / "kept"
    kept.mkdir(exist_ok=True)
    ids = []
    for i in range(1, count + 1):
        entry = store.add_entry(make_entry(i))
        (kept / f"{entry.entry_id}.zip").write_bytes(b"kept upload")
        store.enqueue_verification(entry.entry_id, str(kept / f"{entry.entry_id}.zip"),
                                   f"2026-01-01T00:00:{i:02d}+00:00")
        ids.append(entry.entry_id)
    return ids


def wait_until(condition, seconds: float = 60.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def run_both_kinds(stores, data_dir, runner) -> list:
    """Two background workers (the Space's kind) and two ``run_worker(once=True)`` threads (the CLI's kind), each
    with its own store object (its own worker name), all at once."""
    stops = [start_background_worker(store, data_dir, runner=runner, poll_seconds=0.05)
             for store in stores[:2]]
    summaries = []
    clis = [threading.Thread(target=lambda s=store: summaries.append(run_worker(s, data_dir, once=True,
                                                                              runner=runner)))
            for store in stores[2:]]
    for thread in clis:
        thread.start()
    for thread in clis:
        thread.join(60)
    finished = wait_until(lambda: not stores[0].verification_jobs("pending")
                          and not stores[0].verification_jobs("running"))
    for thread, stop in stops:
        stop.set()
        thread.join(10)
    assert finished
    return summaries


def test_two_workers_of_each_kind_on_one_sqlite_store_run_each_job_once(tmp_path):
    stores = [SQLiteStore(tmp_path / "lb.db") for _ in range(4)]
    ids = queue_jobs(stores[0], tmp_path)
    runner = CountingRunner()
    summaries = run_both_kinds(stores, tmp_path, runner)
    assert Counter(runner.runs) == Counter(ids)  # every job once, none twice
    jobs = stores[0].verification_jobs()
    assert {(j.state, j.attempts) for j in jobs} == {("verified", 1)}
    assert len({j.report["worker"] for j in jobs}) >= 1 and all(s.failed == [] for s in summaries)
    assert all(e.verified for e in stores[0].entries())


def test_two_workers_of_each_kind_on_hub_replicas_run_each_job_once_and_agree(tmp_path, hub):
    stores = [replica(tmp_path, name) for name in "abcd"]
    ids = queue_jobs(stores[0], tmp_path, 4)
    runner = CountingRunner()
    run_both_kinds(stores, tmp_path, runner)
    assert Counter(runner.runs) == Counter(ids)
    on_hub = {i: request_on_hub(hub, i) for i in ids}
    assert {(r["state"], r["attempts"]) for r in on_hub.values()} == {("verified", 1)}
    fresh = replica(tmp_path, "fresh")
    views = [{(j.entry_id, j.state, j.attempts) for j in store.verification_jobs()} for store in (*stores, fresh)]
    assert all(view == views[0] for view in views)  # every replica (and a new one) sees the same queue
    assert all({e.flops_tier for e in store.entries()} == {"verified"} for store in (*stores, fresh))


def test_pending_jobs_are_claimed_before_a_running_job_is_taken_over(tmp_path):
    store = SQLiteStore(tmp_path / "lb.db")
    queue_jobs(store, tmp_path, 2)
    first = store.claim_verification("2026-01-01T01:00:00+00:00")  # its worker dies
    second = store.claim_verification("2026-01-01T08:00:00+00:00")  # past first's lease: still the pending one
    third = store.claim_verification("2026-01-01T08:00:01+00:00")
    assert (first.entry_id, second.entry_id, third.entry_id) == ("sub-00001", "sub-00002", "sub-00001")
    assert third.attempts == 2 and store.claim_verification("2026-01-01T08:00:02+00:00") is None


def test_a_live_workers_job_is_never_failed_by_another_worker(tmp_path):
    store, other = SQLiteStore(tmp_path / "lb.db"), SQLiteStore(tmp_path / "lb.db")
    queue_jobs(store, tmp_path, 1)
    for hours in (1, 8, 15):  # taken over twice after leases ran out: the third claim is its last attempt
        assert store.claim_verification(f"2026-01-01T{hours:02d}:00:00+00:00").attempts == (hours + 6) // 7
    for _ in range(5):  # other workers poll while the third attempt runs: nothing happens to it
        assert other.claim_verification("2026-01-01T16:00:00+00:00") is None
    assert store.finish_verification("sub-00001", True, dict(REPORT), "2026-01-01T17:00:00+00:00")
    assert store.verification_jobs()[0].state == "verified"


WORKER = textwrap.dedent('''
    import sys
    from elue_hf.leaderboard.store import SQLiteStore
    from elue_hf.verify.sandbox import SandboxLimits, run_limited
    from elue_hf.verify.worker import run_worker

    db, marker = sys.argv[1], sys.argv[2]
    CHILD = f"import os, time; open({marker!r}, 'w').write(str(os.getpid())); time.sleep(600)"

    def runner(submission, data_dir, **kw):
        run_limited([sys.executable, "-c", CHILD], SandboxLimits(2**31, 900, 900), cwd=data_dir)
        return {"verified": False, "error": "the sandbox ended"}

    run_worker(SQLiteStore(db), data_dir=str(sys.argv[3]), once=True, runner=runner)
''')


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see the sandbox die")
def test_kill_9_of_a_worker_kills_its_sandbox_and_the_job_waits_for_the_lease(tmp_path):
    store = SQLiteStore(tmp_path / "lb.db")
    (entry_id,) = queue_jobs(store, tmp_path, 1)
    marker = tmp_path / "sandbox.pid"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(store.path), str(marker), str(tmp_path)], env=env)
    child = None
    try:
        assert wait_until(lambda: marker.exists() and marker.read_text().strip(), 60)
        child = int(marker.read_text())
        assert _alive(child) and os.getpgid(child) == child  # the sandbox leads its own process group
        claimed_at = datetime.now(timezone.utc)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        assert wait_until(lambda: not _alive(child), 30)  # the kernel ended the sandbox with its worker
    finally:  # never leave a process behind, whatever failed
        if worker.poll() is None:
            worker.kill()
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)
    (job,) = store.verification_jobs()
    assert (job.state, job.attempts) == ("running", 1)
    taker = SQLiteStore(store.path)
    assert taker.claim_verification((claimed_at + timedelta(minutes=5)).isoformat()) is None  # leased still
    again = taker.claim_verification((claimed_at + taker.lease + timedelta(minutes=1)).isoformat())
    assert (again.entry_id, again.attempts, again.report) == (entry_id, 2, {"worker": taker.worker})


def test_a_sandbox_past_its_wall_clock_is_killed_with_its_group(tmp_path):
    marker = tmp_path / "grandchild.pid"
    spawn = (f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', 'import time; "
             f"time.sleep(600)']); open({str(marker)!r}, 'w').write(str(p.pid)); time.sleep(600)")
    code, _ = run_limited([sys.executable, "-c", spawn], SandboxLimits(2**31, 60, 3), cwd=tmp_path)
    assert code is None  # timed out
    assert wait_until(lambda: not _alive(int(marker.read_text())), 30)  # what the sandbox started died too
