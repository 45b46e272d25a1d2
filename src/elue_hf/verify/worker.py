"""The verification worker: takes queued jobs from the leaderboard store one at a time, re-runs each in the
sandbox, records the outcome (and the ``verified`` tier) in one transaction. Safe to kill and restart: a job left
``running`` by a dead worker is taken again (at most ``max_attempts`` times); a lock file keeps it to one worker. A
worker whose job was taken over meanwhile has its outcome refused by the store, and goes on with the next job."""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from .request import VerifyError
from .sandbox import SandboxLimits, run_sandboxed

__all__ = ["run_job", "run_worker", "start_background_worker", "summarize"]

logger = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@contextmanager
def _single_worker(lock_path: Path):
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise VerifyError(f"another verification worker is running (lock {lock_path.name})") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_job(store, job, data_dir, *, model_roots=(), tokenizer_roots=(), allow_hub: bool = True,
            limits: SandboxLimits | None = None) -> dict:
    """Re-run one claimed job and record its outcome; returns the report. When the store refuses the outcome (the
    job was taken over by another worker after its lease ran out) the result is discarded with a warning."""
    if not Path(job.submission).is_file():
        report = {"verified": False, "error": "the kept submission file is gone"}
    else:
        report = run_sandboxed(job.submission, data_dir, model_roots=model_roots, tokenizer_roots=tokenizer_roots,
                               allow_hub=allow_hub, limits=limits)
    if store.finish_verification(job.entry_id, bool(report.get("verified")), report, _now()) is False:
        logger.warning("verification of %s: result discarded, the job is no longer this worker's (its claim was "
                       "taken over after the lease)", job.entry_id)
    else:
        logger.info("verification of %s: %s", job.entry_id, "verified" if report.get("verified") else "failed")
    return report


def run_worker(store, data_dir, *, lock_path, once: bool = False, poll_seconds: float = 30.0,
               stop: threading.Event | None = None, **job_kwargs) -> int:
    """Run queued jobs until the queue is empty (``once``) or ``stop`` is set; returns how many ran."""
    stop = stop or threading.Event()
    done = 0
    with _single_worker(Path(lock_path)):
        while not stop.is_set():
            job = store.claim_verification(_now())
            if job is None:
                if once:
                    break
                stop.wait(poll_seconds)
                continue
            run_job(store, job, data_dir, **job_kwargs)
            done += 1
    return done


def start_background_worker(store, data_dir, *, lock_path, **kwargs) -> tuple[threading.Thread, threading.Event]:
    """The worker in a daemon thread (what the Space runs); set the returned event to stop it."""
    stop = threading.Event()

    def loop():
        try:
            run_worker(store, data_dir, lock_path=lock_path, stop=stop, **kwargs)
        except VerifyError as err:
            logger.warning("verification worker not started: %s", err)

    thread = threading.Thread(target=loop, name="elue-verify-worker", daemon=True)
    thread.start()
    return thread, stop


def summarize(report: dict) -> str:
    """The report in a few plain lines (CLI)."""
    if "error" in report:
        lines = [f"not verified: {report['error']}"]
    else:
        lines = [("VERIFIED" if report.get("verified") else "NOT VERIFIED") + f": {report['model']['id']} "
                 f"({report['model']['architecture']}) re-run in {report.get('seconds', 0):.1f} s"]
        for path, row in report.get("files", {}).items():
            lines.append(f"  {path}: predictions agree {100 * row['agreement']:.2f}%, MFLOPs claimed "
                         f"{row['claimed_mflops']:.2f} re-run {row['rerun_mflops']:.2f}"
                         + (f"  <- {row['why']}" if row["why"] else ""))
        tp = report.get("throughput", {})
        if tp:
            lines.append("  throughput: " + ", ".join(f"{k.replace('_', ' ')} {v:,.1f} instances/s"
                                                    for k, v in tp.items()))
    machine = report.get("machine")
    if machine:
        lines.append(f"  machine: {machine['cpu']}, {machine['threads']} thread(s), GPU {machine['gpu'] or 'none'}")
    return "\n".join(lines)
