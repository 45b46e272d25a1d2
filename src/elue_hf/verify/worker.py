"""The verification worker: takes queued jobs from the leaderboard store one at a time, re-runs each in the
sandbox, records the outcome (and the ``verified`` tier) in one transaction.

Every worker (the Space's background thread, ``elue-hf verify-worker``, workers on several machines) claims through the
store, atomically (:meth:`claim_verification`: one SQLite transaction, or one Hub commit on the head it read); no lock
file is needed. Pending jobs are claimed first; a job left ``running`` is taken over only after its lease ran out (its
worker is taken as dead), at most ``max_attempts`` times. The lease is longer than the sandbox's wall-clock limit, and
the sandbox dies with its worker (:mod:`.sandbox`), so a job is never re-run while its first run goes on. A worker whose
job was taken over meanwhile has its outcome refused by the store, and goes on with the next job."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .sandbox import SandboxLimits, run_sandboxed

__all__ = ["WorkerSummary", "run_job", "run_worker", "start_background_worker", "summarize"]

logger = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class WorkerSummary:
    """What one worker run did: the jobs it verified, those it ran that failed (entry id, why), and results the store
    discarded because the job had been taken over."""

    verified: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    discarded: list[str] = field(default_factory=list)

    @property
    def ran(self) -> int:
        return len(self.verified) + len(self.failed) + len(self.discarded)

    def add(self, entry_id: str, report: dict, recorded: bool) -> None:
        if not recorded:
            self.discarded.append(entry_id)
        elif report.get("verified"):
            self.verified.append(entry_id)
        else:
            self.failed.append((entry_id, str(report.get("error") or "the re-run contradicts the submission")))


def _run_and_record(store, job, data_dir, *, runner=run_sandboxed, model_roots=(), tokenizer_roots=(),
                    allow_hub: bool = True, limits: SandboxLimits | None = None) -> tuple[dict, bool]:
    if not Path(job.submission).is_file():
        report = {"verified": False, "error": "the kept submission file is gone"}
    else:
        report = runner(job.submission, data_dir, model_roots=model_roots, tokenizer_roots=tokenizer_roots,
                        allow_hub=allow_hub, limits=limits)
    if store.finish_verification(job.entry_id, bool(report.get("verified")), report, _now()) is False:
        logger.warning("verification of %s: result discarded, the job is no longer this worker's (its claim was "
                       "taken over after the lease)", job.entry_id)
        return report, False
    logger.info("verification of %s: %s", job.entry_id, "verified" if report.get("verified") else "failed")
    return report, True


def run_job(store, job, data_dir, **job_kwargs) -> dict:
    """Re-run one claimed job and record its outcome; returns the report. When the store refuses the outcome (the
    job was taken over by another worker after its lease ran out) the result is discarded with a warning.
    ``runner`` (default :func:`~.sandbox.run_sandboxed`) does the re-run."""
    return _run_and_record(store, job, data_dir, **job_kwargs)[0]


def run_worker(store, data_dir, *, once: bool = False, poll_seconds: float = 30.0,
               stop: threading.Event | None = None, **job_kwargs) -> WorkerSummary:
    """Run queued jobs until no job can be claimed (``once``) or ``stop`` is set; returns what it did."""
    stop = stop or threading.Event()
    summary = WorkerSummary()
    while not stop.is_set():
        job = store.claim_verification(_now())
        if job is None:
            if once:
                break
            stop.wait(poll_seconds)
            continue
        summary.add(job.entry_id, *_run_and_record(store, job, data_dir, **job_kwargs))
    return summary


def start_background_worker(store, data_dir, **kwargs) -> tuple[threading.Thread, threading.Event]:
    """The worker in a daemon thread (what the Space runs); set the returned event to stop it."""
    stop = threading.Event()

    def loop():
        try:
            run_worker(store, data_dir, stop=stop, **kwargs)
        except Exception:  # a store that cannot be read: logged, the Space keeps serving
            logger.exception("the verification worker stopped")

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
