"""Rankings over leaderboard entries (pure functions; the gradio views only format what these return).

**Only what was checked is ranked.** The default tables rank the published rows, the reference curve and the
submissions the server re-ran (the ``verified`` FLOPs tier) on the ELUE test set. Every other submission
(``consistent`` or ``self-reported`` FLOPs, or scored on data that is not the ELUE test set) is listed apart by
:func:`unranked_rows`, with the reason (:func:`unranked_reason`), and never mixed into a ranking.

- ELUE-score ranking: entries with all six task scores ranked by ELUE score; the others listed below without a
  rank (published rows with a dash, partial submissions).
- Parameter tracks: operating-point groups of at most 40/55/70/110 MParams (inclusive), ranked by average
  performance over the tasks; groups covering all six tasks are ranked, partial groups listed below them.
  See docs/elue.md, "ELUE score and the reference curve" and "Parameter tracks".
- Task pages: every operating point of a task, with the Pareto frontier on FLOPs or on parameters.
Ties share a rank (competition ranking: 1, 2, 2, 4); equal values keep submission order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from ..elue.plots import pareto_front
from ..elue.score import TRACKS
from ..elue.tasks import TASK_KEYS, TASKS, get_task
from .records import SOURCES, EntryRecord, PointRecord

__all__ = [
    "AXES",
    "TRACK_NAMES",
    "Filters",
    "competition_ranks",
    "filter_entries",
    "elue_rows",
    "operating_groups",
    "track_rows",
    "task_points",
    "RankInfo",
    "rank_of",
    "track_limit",
    "RANKED_TABLE",
    "unranked_reason",
    "rankable",
    "unranked_rows",
]

#: Pareto x axes: mean MFLOPs per instance, or parameters (MParams).
AXES = ("mflops", "params")
TRACK_NAMES = tuple(name for name, _ in TRACKS)
#: What the default rankings hold (the CLI says which table a rank comes from).
RANKED_TABLE = "verified entries and published rows"


def unranked_reason(entry: EntryRecord) -> str | None:
    """Why ``entry`` is kept out of the default rankings (one phrase), or None when it is ranked: published rows
    and the reference curve are ranked; a submission only when the server re-ran it (``verified``) and it was
    scored on the ELUE test set."""
    if entry.source != "submission":
        return None
    if entry.other_data:
        return f"not ranked: {entry.other_data}"
    if not entry.verified:
        return f"not ranked: {entry.flops_tier} FLOPs, awaiting verification"
    return None


def rankable(entry: EntryRecord) -> bool:
    return unranked_reason(entry) is None


@dataclass(frozen=True)
class Filters:
    """What the views show: a case-insensitive search over model name and submitter (every word must occur), the
    entry sources, and optionally only submissions in the ``verified`` FLOPs tier (the server re-ran the model);
    published rows and the reference curve are never hidden by that filter."""

    search: str = ""
    sources: frozenset[str] = frozenset(SOURCES)
    verified_only: bool = False

    def __post_init__(self):
        unknown = set(self.sources) - set(SOURCES)
        if unknown:
            raise ValueError(f"unknown sources {sorted(unknown)}; choose from {SOURCES}")
        object.__setattr__(self, "sources", frozenset(self.sources))

    def accepts(self, entry: EntryRecord) -> bool:
        if entry.source not in self.sources:
            return False
        if self.verified_only and entry.source == "submission" and not entry.verified:
            return False
        needle = self.search.strip().lower()
        if not needle:
            return True
        haystack = f"{entry.model_name} {entry.submitter}".lower()
        return all(word in haystack for word in needle.split())


def filter_entries(entries: Iterable[EntryRecord], filters: Filters | None = None) -> list[EntryRecord]:
    filters = filters or Filters()
    return [e for e in entries if filters.accepts(e)]


def competition_ranks(values: Sequence[float]) -> list[int]:
    """Ranks for ``values`` sorted best (largest) first, ties sharing the smaller rank: [3, 2, 2, 1] -> [1, 2, 2, 4]."""
    ranks, previous = [], None
    for position, value in enumerate(values, start=1):
        if previous is None or value != previous[0]:
            previous = (value, position)
        ranks.append(previous[1])
    return ranks


def _ranked(items: list[dict], key: str) -> list[dict]:
    """Sort rows with a numeric ``key`` first (best first, stable), give them ranks; rows without it follow."""
    scored = sorted((r for r in items if r[key] is not None), key=lambda r: -r[key])
    for row, rank in zip(scored, competition_ranks([r[key] for r in scored])):
        row["rank"] = rank
    rest = [r for r in items if r[key] is None]
    for row in rest:
        row["rank"] = None
    return scored + rest


def _entry_notes(entry: EntryRecord) -> list[str]:
    notes = []
    if entry.source == "paper":
        notes.append("from the paper")
    elif entry.source == "reference":
        notes.append("reference curve")
    elif entry.flops_tier != "verified":
        notes.append(f"{entry.flops_tier} FLOPs")
    if entry.other_data:
        notes.append(entry.other_data)
    if entry.provisional:
        notes.append("provisional IMDb FLOPs")
    return notes


def _entry_row(e: EntryRecord, notes: list[str]) -> dict:
    return {
        "entry_id": e.entry_id, "model": e.model_name, "source": e.source, "citation": e.citation,
        "elue_score": e.elue_score, "partial_elue_score": e.partial_elue_score if e.elue_score is None else None,
        "task_scores": dict(e.task_scores), "params": e.params, "flops_tier": e.flops_tier,
        "provisional": e.provisional, "created_at": e.created_at, "notes": notes, "description": e.description,
        "submitter": e.submitter,
    }


def unranked_rows(entries: Iterable[EntryRecord]) -> list[dict]:
    """The submissions kept out of the rankings (:func:`unranked_reason`), newest first, each with ``why``; their
    scores are shown but never ranked."""
    rows = []
    for e in entries:
        why = unranked_reason(e)
        if why is None:
            continue
        notes = _entry_notes(e)
        if e.elue_score is None and e.task_scores:
            notes.append(f"{len(e.task_scores)}/{len(TASK_KEYS)} tasks")
        rows.append({**_entry_row(e, notes), "why": why, "rank": None})
    return sorted(rows, key=lambda r: r["created_at"], reverse=True)


def elue_rows(entries: Iterable[EntryRecord]) -> list[dict]:
    """The ELUE-score ranking: one row per ranked entry (:func:`rankable`) that has any ELUE score."""
    rows = []
    for e in entries:
        if not rankable(e):
            continue
        if e.elue_score is None and e.partial_elue_score is None and not e.task_scores:
            continue
        notes = _entry_notes(e)
        if e.elue_score is None and e.task_scores:
            notes.append(f"{len(e.task_scores)}/{len(TASK_KEYS)} tasks")
        rows.append(_entry_row(e, notes))
    return _ranked(rows, "elue_score")


def _group_mflops(entry: EntryRecord, points: list[PointRecord]) -> float | None:
    values = [p.mflops for p in points]
    if all(v is not None for v in values):
        return float(np.mean(values))
    published = entry.extra.get("mean_mflops")
    return float(published) if published is not None else None


def operating_groups(entry: EntryRecord) -> list[dict]:
    """An entry's operating points grouped by label (one group = one model configuration across tasks).

    Each group: label, params (the largest of its points, else the entry's), mean MFLOPs (mean over its points, or
    the published six-task mean), performance per task (the best point when a label repeats on a task), average,
    number of tasks."""
    groups: dict[str, list[PointRecord]] = {}
    for p in entry.points:
        groups.setdefault(p.label, []).append(p)
    out = []
    for label, points in groups.items():
        perf: dict[str, float] = {}
        for p in points:
            perf[p.task] = max(perf.get(p.task, -np.inf), p.performance)
        params = [p.params for p in points if p.params is not None]
        out.append({
            "entry_id": entry.entry_id, "model": entry.model_name, "label": label, "source": entry.source,
            "params": max(params) if params else entry.params, "mflops": _group_mflops(entry, points),
            "performance": {t: perf[t] for t in TASK_KEYS if t in perf},
            "average": float(np.mean(list(perf.values()))), "n_tasks": len(perf),
            "flops_tier": entry.flops_tier, "notes": _entry_notes(entry),
        })
    return out


def track_limit(track: str) -> float:
    for name, limit in TRACKS:
        if name == track:
            return limit
    raise ValueError(f"unknown track {track!r}; tracks are {', '.join(TRACK_NAMES)}")


def track_rows(entries: Iterable[EntryRecord], track: str) -> list[dict]:
    """Operating-point groups within the track's parameter cap, complete groups ranked by average performance.

    Only ranked entries (:func:`rankable`) are listed. The reference curve is not listed (its 6- and 12-layer points
    are the published ElasticBERT rows)."""
    limit = track_limit(track)
    rows = [
        g for e in entries if e.source != "reference" and rankable(e)
        for g in operating_groups(e)
        if g["params"] is not None and g["params"] / 1e6 <= limit
    ]
    for g in rows:
        g["ranked_average"] = g["average"] if g["n_tasks"] == len(TASK_KEYS) else None
        if g["n_tasks"] < len(TASK_KEYS):
            g["notes"] = [*g["notes"], f"{g['n_tasks']}/{len(TASK_KEYS)} tasks"]
    complete = _ranked([g for g in rows if g["ranked_average"] is not None], "ranked_average")
    partial = sorted((g for g in rows if g["ranked_average"] is None), key=lambda g: -g["average"])
    for g in partial:
        g["rank"] = None
    return complete + partial


def _x(point: PointRecord, axis: str) -> float | None:
    if axis == "mflops":
        return point.mflops
    if axis == "params":
        return None if point.params is None else point.params / 1e6
    raise ValueError(f"axis must be one of {AXES}, got {axis!r}")


def task_points(entries: Iterable[EntryRecord], task: str, axis: str = "mflops") -> list[dict]:
    """Every point on ``task``, best performance first, with ``x`` on ``axis`` (MFLOPs or MParams; None when
    unknown), ``ranked`` (its entry is :func:`rankable`; else ``why`` says why not) and ``pareto`` = on the frontier
    of the ranked points that have an ``x`` (an unranked point never moves the frontier)."""
    task = get_task(task).key
    rows = []
    for e in entries:
        why = unranked_reason(e)
        for p in e.points:
            if p.task != task:
                continue
            rows.append({
                "entry_id": e.entry_id, "model": e.model_name, "label": p.label, "source": e.source,
                "performance": p.performance, "mflops": p.mflops, "params": p.params, "x": _x(p, axis),
                "residual": p.residual, "flops_source": p.flops_source, "flops_tier": p.flops_tier, "note": p.note,
                "provisional": e.provisional and task == "imdb", "pareto": False, "ranked": why is None,
                "why": why or "", "other_data": e.other_data,
            })
    with_x = [r for r in rows if r["x"] is not None and r["ranked"]]
    if with_x:
        for i in pareto_front([r["x"] for r in with_x], [r["performance"] for r in with_x]):
            with_x[int(i)]["pareto"] = True
    return sorted(rows, key=lambda r: -r["performance"])


@dataclass
class RankInfo:
    """Where one entry stands in the default tables (:data:`RANKED_TABLE`): ELUE rank (None when not all six tasks
    are scored), per-task ranks of its ELUE task scores, and per-track ranks of its complete operating-point groups.
    Ranks are (rank, out of). ``unranked``: why the entry is kept out of every ranking (then no ranks at all)."""

    entry_id: str
    elue: tuple[int, int] | None
    tasks: dict[str, tuple[int, int]] = field(default_factory=dict)
    tracks: dict[str, tuple[int, int, str]] = field(default_factory=dict)  # track -> (rank, out of, group label)
    unranked: str | None = None

    def describe(self) -> str:
        if self.unranked:
            return f"{self.unranked} (listed apart from the ranking of {RANKED_TABLE})"
        parts = []
        if self.elue:
            parts.append(f"ELUE rank {self.elue[0]} of {self.elue[1]} among {RANKED_TABLE}")
        else:
            parts.append("no ELUE rank (not all six tasks)")
        parts += [f"{TASKS[t].name} rank {r} of {n}" for t, (r, n) in self.tasks.items()]
        parts += [f"{track} track rank {r} of {n} ({label})" for track, (r, n, label) in self.tracks.items()]
        return "; ".join(parts)


def rank_of(entries: Sequence[EntryRecord], entry_id: str) -> RankInfo:
    """Ranks of ``entry_id`` among the ranked ``entries`` (everything stored, unfiltered); an entry that is not
    :func:`rankable` gets no rank, only the reason."""
    if not any(e.entry_id == entry_id for e in entries):
        raise KeyError(f"no entry {entry_id!r}")
    entry = next(e for e in entries if e.entry_id == entry_id)
    why = unranked_reason(entry)
    if why is not None:
        return RankInfo(entry_id, None, unranked=why)
    entries = [e for e in entries if rankable(e)]
    elue = [r for r in elue_rows(entries) if r["rank"] is not None]
    info = RankInfo(entry_id, None)
    for r in elue:
        if r["entry_id"] == entry_id:
            info.elue = (r["rank"], len(elue))
    for task in entry.task_scores:
        scores = sorted((e.task_scores[task] for e in entries if task in e.task_scores), reverse=True)
        mine = entry.task_scores[task]
        info.tasks[task] = (competition_ranks(scores)[scores.index(mine)], len(scores))
    for track in TRACK_NAMES:
        ranked = [g for g in track_rows(entries, track) if g["rank"] is not None]
        mine = [g for g in ranked if g["entry_id"] == entry_id]
        if mine:
            best = min(mine, key=lambda g: g["rank"])
            info.tracks[track] = (best["rank"], len(ranked), best["label"])
    return info
