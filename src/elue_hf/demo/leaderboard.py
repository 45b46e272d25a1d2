"""``make demo`` section: the ELUE section's submission goes into a local leaderboard store and gets its rank.

The demo's data are RT snippets (Pang & Lee), an SST-2-like task, not the ELUE SST-2 test set: the entry is scored
against the demo's own held-out labels (``ctx.data["test"]["label"]``) and says so in its description.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..commands.leaderboard import open_command
from ..elue.tasks import get_task
from ..leaderboard.ranking import competition_ranks, unranked_reason
from ..leaderboard.seed import seed_store
from ..leaderboard.store import SQLiteStore
from ..leaderboard.submit import DEFAULT_UPLOAD_LIMITS, submit_file
from .context import DemoContext

__all__ = ["run", "find_submission_zip", "task_ranking_table"]

ARTIFACT = "elue_submission_zip"


def find_submission_zip(ctx: DemoContext) -> Path | None:
    """The ELUE section's zip: ``ctx.artifacts["elue_submission_zip"]``, else the newest ``*.zip`` under ``out_dir``."""
    path = ctx.artifacts.get(ARTIFACT)
    if path is not None and Path(path).is_file():
        return Path(path)
    zips = [p for p in Path(ctx.out_dir).rglob("*.zip") if p.is_file()]
    return max(zips, key=lambda p: p.stat().st_mtime) if zips else None


def task_ranking_table(entries, task: str, highlight: str, top: int = 6) -> str:
    """Plain-text ranking of per-task ELUE scores: the ``top`` best ranked rows and the highlighted entry (shown
    without a rank, with the reason, when it is not ranked: not verified, or not scored on the ELUE test set)."""
    task = get_task(task)
    scored = sorted(((e.task_scores[task.key], e) for e in entries
                     if task.key in e.task_scores and unranked_reason(e) is None), key=lambda item: -item[0])
    ranks = competition_ranks([s for s, _ in scored])
    lines = [f"{'rank':>4}  {'model':<44} {task.name + ' score':>12}  source"]
    for rank, (score, e) in zip(ranks, scored):
        if rank <= top or e.entry_id == highlight:
            mark = "  <- this demo" if e.entry_id == highlight else ""
            lines.append(f"{rank:>4}  {e.model_name[:44]:<44} {score:>+12.2f}  {e.source}{mark}")
    for e in entries:
        why = unranked_reason(e)
        if e.entry_id == highlight and why is not None and task.key in e.task_scores:
            lines.append(f"{'-':>4}  {e.model_name[:44]:<44} {e.task_scores[task.key]:>+12.2f}  {e.source}  "
                         f"<- this demo ({why})")
    return "\n".join(lines)


def run(ctx: DemoContext) -> None:
    zipped = find_submission_zip(ctx)
    if zipped is None:
        print("no ELUE submission zip found under", ctx.out_dir, "- run the elue section first (elue-hf demo)")
        return
    store = SQLiteStore(Path(ctx.out_dir) / "leaderboard" / "leaderboard.db")
    seed_store(store)
    gold = {"sst-2": np.asarray(ctx.data["test"]["label"])}
    # the operator's own board: the demo's one-pass sweep gives more points per task than a public upload may carry
    limits = dataclasses.replace(DEFAULT_UPLOAD_LIMITS, max_points_per_task=0)
    outcome = submit_file(store, zipped, gold, submitter="make demo", limits=limits)
    entry = outcome.entry
    print(f"\nLeaderboard ({store.describe()}), submission {zipped.name}:")
    print(outcome.summary())
    print(f"\nSST-2 task scores on the leaderboard (this entry: {ctx.dataset_name}, not the ELUE SST-2 test set)")
    print(task_ranking_table(store.entries(), "sst-2", entry.entry_id))
    print(f"\nOpen the leaderboard: {open_command(store)}")
