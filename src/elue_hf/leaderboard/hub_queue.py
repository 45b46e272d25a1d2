"""The verification queue of a :class:`~elue_hf.leaderboard.hub_store.HubStore`: request files
(``requests/<entry_id>.json``) and the queue methods the store mixes in (:class:`HubQueue`).

Every queue write (a claim, a pushed job state, a deletion) is a commit whose ``parent_commit`` is the commit the cache
reflects: if another replica committed in between, the Hub refuses it (HTTP 412), and the replica reads the Hub again
and retries with what it finds. So two workers never claim the same job: one claim is refused and its worker takes the
next job (or none). A ``running`` job is taken over only once its lease (``lease_hours``, longer than a re-run may
last) has run out since it was claimed: its worker is then taken as dead, and the attempt is counted. A result is
kept only while its job is still ``running`` under the claim of the worker that produced it: finishing re-reads the
Hub, and the commit that writes the result is made on top of a commit whose request still shows that claim. A worker
that outlived its lease (a Space suspended for longer) and whose job was taken over has its result discarded, with a
warning, and never overwrites the result of the worker that took the job.

A job changed here (enqueued, finished) is written to the cache first and then pushed; when the Hub cannot be reached
it stays marked unsynced, the next sync (or queue operation) pushes it, and until then a sync never overwrites it with
the Hub's older copy. A claim is made on the Hub first: when the Hub cannot be reached no job is claimed.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Iterable

from ..validators import load_json, require
from .errors import StoreError
from .jobs import JOB_STATES, VerificationJob, instant, plan_claim
from .records import RecordError

__all__ = ["HubQueue", "request_json", "request_from_json", "bounded_report", "MAX_REPORT_CHARS"]

logger = logging.getLogger(__name__)

_REQUEST_FIELDS = ("entry_id", "state", "attempts", "created_at", "updated_at", "submission", "report")
#: A request's report is kept to this many characters of JSON (the per-file rows go first when it is longer).
MAX_REPORT_CHARS = 32_000
_MAX_ATTEMPTS_READ = 1000


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
    (verdict, error, throughput, machine, model, worker) is kept, marked ``"truncated": true``."""
    plain = _finite(json.loads(json.dumps(dict(report), default=float)))
    if len(json.dumps(plain)) <= MAX_REPORT_CHARS:
        return plain
    summary = {k: plain[k] for k in ("verified", "error", "throughput", "machine", "model", "worker") if k in plain}
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
        created_at=_time_text(data["created_at"], "created_at"),
        updated_at=_time_text(data["updated_at"], "updated_at"),
    )


def _writable(job: VerificationJob) -> None:
    """Refuse (:class:`StoreError`) a job whose request file would not read back: every replica would quarantine it."""
    try:
        request_from_json(request_json(job), job.entry_id)
    except RecordError as err:
        raise StoreError(f"the verification job of {job.entry_id} cannot be written to the Hub: {err}") from None


def _writable_time(now) -> None:
    try:
        _time_text(now, "the time of a queue operation")
    except RecordError as err:
        raise StoreError(str(err)) from None


def _time_text(value, what: str) -> str:
    _short_text(value, what, 40)
    require(instant(value) is not None, f"{what} must be an ISO 8601 time, got {value[:40]!r}", RecordError)
    return value


class HubQueue:
    """The queue methods of :class:`~elue_hf.leaderboard.hub_store.HubStore` (its ``cache``, ``_lock``, ``_head``,
    ``_without_conflict``, ``_commit_on``, ``_read_remote`` and ``_quarantine`` do the Hub and cache work)."""


    def _job_files(self, jobs: Iterable[VerificationJob]) -> dict[str, str]:
        """The request file of each job, and for a verified job the entry file with its new tier (informative:
        readers trust the request)."""
        files = {}
        for job in jobs:
            files[f"requests/{job.entry_id}.json"] = request_json(job)
            if job.state == "verified":
                files[f"entries/{job.entry_id}.json"] = self.cache.get_entry(job.entry_id).to_json()
        return files

    def _push_unsynced(self, message: str) -> set[str]:
        """Write every job changed here and not on the Hub yet in one commit on top of the commit the cache reflects
        (so a deletion made meanwhile is never undone); a finished job whose claim the Hub no longer shows is discarded
        instead (:meth:`_claim_held`). On failure the jobs stay unsynced for the next try. Returns the entry ids whose
        results were discarded."""
        discarded: set[str] = set()
        try:
            self._without_conflict(lambda head: self._push_jobs(head, message, discarded))
        except Exception as err:  # the cache keeps the states; the next sync or queue operation pushes them
            self.last_push_error = f"{type(err).__name__}: {err}"
            logger.warning("could not write verification jobs to %s: %s", self.repo_id, self.last_push_error)
            return discarded
        self.last_push_error = None
        return discarded

    def _push_jobs(self, head: str, message: str, discarded: set[str]) -> None:
        jobs = []
        for job in self.cache.unsynced_jobs():
            if job.state in ("verified", "failed") and not self._claim_held(job, head):
                discarded.add(job.entry_id)
            else:
                jobs.append(job)
        if jobs:
            self._record([(j, j) for j in jobs], self._commit_on(head, self._job_files(jobs), message))

    def _claim_held(self, job: VerificationJob, head: str) -> bool:
        """Whether the request of the finished ``job`` at ``head`` still shows the claim it finishes: ``running``, the
        same attempt, the worker its report names. When not, its result is discarded (with a warning) and the cache
        takes the Hub's request instead. With no request on the Hub there is no other result to overwrite: the job
        is written (a cache from before the Hub queue, a request deleted on the Hub)."""
        path, problem, current = f"requests/{job.entry_id}.json", None, None
        if path not in self._head_blobs:
            return True
        try:
            current = self._read_remote(path, "requests", job.entry_id, None, head)
        except (ValueError, TypeError) as err:  # a malformed request: quarantined below
            problem = str(err)
        worker = job.report.get("worker")
        if (current is not None and current.state == "running" and current.attempts == job.attempts
                and worker is not None and current.report.get("worker") == worker):
            return True
        logger.warning("discarding the %s result of %s by %s: the job is no longer running under its claim in %s "
                       "(taken over after the lease, or deleted)", job.state, job.entry_id, worker, self.repo_id)
        self.cache.discard(job.entry_id, current, {path: self._head_blobs[path]})
        self.skipped_files = self.cache.problems()
        if problem is not None:
            self._quarantine(path, self._head_blobs[path], problem)
        return False

    def _record(self, changes: list[tuple[VerificationJob, VerificationJob]], blobs: dict[str, str]) -> None:
        self.cache.record_pushed(changes, blobs)
        self.skipped_files = self.cache.problems()  # a file rewritten here leaves the quarantine

    def enqueue_verification(self, entry_id: str, submission: str, now: str) -> bool:
        """Queue a re-run (idempotent); its request file is committed now, or by a later sync if the Hub fails."""
        _writable(VerificationJob(entry_id, "pending", str(submission), 0, now, now, {}))
        with self._lock:
            queued = self.cache.enqueue_verification(entry_id, submission, now)
            if queued:
                self._push_unsynced(f"Queue the verification of {entry_id}")
            return queued

    def claim_verification(self, now: str, max_attempts: int = 3) -> VerificationJob | None:
        """Take the oldest takeable job (:func:`plan_claim`): a claim is a commit on top of the commit this replica
        last read, so of two replicas claiming at once one is refused, reads the Hub again and takes another job (or
        none). None as well when the Hub cannot be read or written: a claim not on the Hub would not be safe."""
        _writable_time(now)
        with self._lock:
            self._maybe_sync(force=True)
            if self.last_sync_error is not None:
                return None
            try:
                return self._without_conflict(lambda head: self._claim(head, now, max_attempts))
            except Exception as err:
                self.last_push_error = f"{type(err).__name__}: {err}"
                logger.warning("could not claim a verification job in %s: %s", self.repo_id, self.last_push_error)
                return None

    def _claim(self, head: str, now: str, max_attempts: int) -> VerificationJob | None:
        changes, job = plan_claim(self.cache.verification_jobs(), now, max_attempts, self.lease, self.worker)
        if changes:
            label = f"{job.entry_id} running (attempt {job.attempts})" if job else "expired jobs failed"
            self._record(changes, self._commit_on(head, self._job_files(after for _, after in changes),
                                                  f"Verification of {label}"))
        return job

    def finish_verification(self, entry_id: str, verified: bool, report: dict, now: str) -> bool:
        """Record the outcome if the job is still ``running`` under this replica's claim: the Hub is read first (a
        takeover there reaches the cache), the outcome goes to the cache (tier and job in one transaction), then to
        the Hub: the request file and, if verified, the entry file in one commit on top of a commit whose request still
        shows the claim. Returns False, with a logged warning, when the claim was taken over (the stale result is
        discarded); True otherwise. A failed commit loses nothing: the next sync pushes it (or discards it, should
        the claim be taken over meanwhile)."""
        _writable_time(now)
        with self._lock:
            self._maybe_sync(force=True)
            if not self.cache.finish_verification(entry_id, verified, bounded_report({**report, "worker": self.worker}),
                                                  now, worker=self.worker):
                return False
            discarded = self._push_unsynced(f"Verification of {entry_id}: {'verified' if verified else 'failed'}")
            return entry_id not in discarded

    def verification_jobs(self, state: str | None = None) -> list[VerificationJob]:
        self._maybe_sync()
        return self.cache.verification_jobs(state)
