"""Verification jobs, the part both stores' queues share: the job record and its states, the name a worker's claims
carry, the claim lease, and which job a claim takes (:func:`plan_claim`). The SQLite queue applies a plan inside one
``BEGIN IMMEDIATE`` transaction (:mod:`.sqlite_queue`), the Hub queue as one commit on the head it read
(:mod:`.hub_queue`): whichever store holds the queue, every worker claims the same way."""

from __future__ import annotations

import math
import os
import secrets
import socket
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Iterable

from .errors import StoreError

__all__ = ["JOB_STATES", "VerificationJob", "worker_name", "lease_hours_from", "plan_claim", "instant",
           "DEFAULT_LEASE_HOURS", "LEASE_ENV"]

#: States of a verification job: waiting, being re-run, and the two outcomes.
JOB_STATES = ("pending", "running", "verified", "failed")
#: How long a claimed job stays its worker's by default (``$ELUE_VERIFY_LEASE_HOURS`` overrides): longer than a re-run
#: may take (``elue-hf verify-worker --time-limit``, 4 h by default), so a live worker never loses its job.
DEFAULT_LEASE_HOURS = 6.0
LEASE_ENV = "ELUE_VERIFY_LEASE_HOURS"


@dataclass(frozen=True)
class VerificationJob:
    entry_id: str
    state: str
    submission: str  # server path of the kept submission zip
    attempts: int
    created_at: str
    updated_at: str
    report: dict


def worker_name() -> str:
    """A name for the worker of one store object (``<host>:<pid>:<random>``): the claims it makes carry it, and a
    job is finished only under the claim that names it."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


def lease_hours_from(value=None) -> float:
    """The claim lease in hours: ``value``, else ``$ELUE_VERIFY_LEASE_HOURS``, else :data:`DEFAULT_LEASE_HOURS`."""
    raw = value if value is not None else os.environ.get(LEASE_ENV) or DEFAULT_LEASE_HOURS
    try:
        hours = float(raw)
    except (TypeError, ValueError):
        hours = math.nan
    if not (math.isfinite(hours) and hours > 0):
        raise StoreError(f"the claim lease must be a positive number of hours (--lease-hours, ${LEASE_ENV}), "
                         f"got {str(raw)[:40]!r}")
    return hours


def instant(text) -> datetime | None:
    """An ISO 8601 time as an aware datetime (a time without zone is UTC); None when it is not one."""
    try:
        moment = datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _takeable(job: VerificationJob, now: datetime, lease: timedelta) -> bool:
    """A job a worker may claim: pending, or ``running`` with its lease run out (its worker is taken as dead)."""
    if job.state == "pending":
        return True
    since = instant(job.updated_at)
    return job.state == "running" and (since is None or now - since >= lease)


def plan_claim(jobs: Iterable[VerificationJob], now: str, max_attempts: int, lease: timedelta,
               worker: str) -> tuple[list[tuple[VerificationJob, VerificationJob]], VerificationJob | None]:
    """What one claim writes, as (job before, job after) pairs, and the job claimed (None when none is takeable).

    Only takeable jobs (pending, or running past their lease) are touched: those already claimed ``max_attempts``
    times are failed (a job a live worker holds is never failed); of the others the oldest pending job is taken, and
    only when none is pending the oldest running job whose lease ran out: ``running``, one more attempt, ``updated_at
    = now`` and a report naming the ``worker`` that holds it (so two claims never write the same bytes)."""
    moment = instant(now)
    if moment is None:
        raise StoreError(f"the time of a claim must be an ISO 8601 time, got {str(now)[:40]!r}")
    takeable = sorted((j for j in jobs if _takeable(j, moment, lease)),
                      key=lambda j: (j.state != "pending", j.created_at, j.entry_id))
    gave_up = {"error": f"gave up after {max_attempts} attempts (its workers died or ran past the lease)"}
    changes = [(j, replace(j, state="failed", updated_at=now, report=gave_up)) for j in takeable
               if j.attempts >= max_attempts]
    runnable = [j for j in takeable if j.attempts < max_attempts]
    if not runnable:
        return changes, None
    claimed = replace(runnable[0], state="running", attempts=runnable[0].attempts + 1, updated_at=now,
                      report={"worker": worker})
    return changes + [(runnable[0], claimed)], claimed
