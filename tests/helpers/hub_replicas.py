"""Replicas of the Hub results store sharing one fake Hub repo, and the times and report the queue tests use."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from elue_hf.leaderboard.records import EntryRecord
from elue_hf.leaderboard.store import HubStore

from .hub_fake import RESULTS_REPO as REPO

T0, T1, T2 = "2026-01-01T00:00:00+00:00", "2026-01-01T00:01:00+00:00", "2026-01-01T00:02:00+00:00"
REPORT = {"verified": True, "throughput": {"batch_1": 12.5}, "machine": {"cpu": "x86", "threads": 1, "gpu": None},
          "model": {"id": "org/model", "architecture": "elasticbert"}, "files": {"sst-2/k1.tsv": {"agreement": 1.0}}}


def replica(tmp_path, name: str, **kw) -> HubStore:
    """One Space replica: its own cache, the shared (fake) Hub repo, syncing on every read."""
    return HubStore(REPO, cache_path=tmp_path / f"{name}.db", sync_interval=0, **kw)


def later(hours: float) -> str:
    """``hours`` after T1."""
    return (datetime.fromisoformat(T1) + timedelta(hours=hours)).isoformat()


def request_on_hub(hub, entry_id: str) -> dict:
    return json.loads(hub.files[f"requests/{entry_id}.json"])


def tiers(entry: EntryRecord) -> tuple:
    return entry.flops_tier, {p.flops_tier for p in entry.points}
