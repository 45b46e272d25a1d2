"""Tables and plot data for the leaderboard views, as pandas DataFrames (what ``gr.Dataframe`` / ``gr.ScatterPlot`` /
``gr.LinePlot`` display). Formatting only: every ranking decision is in :mod:`.ranking`."""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ...elue.flops.params import encoder_classifier_params
from ...elue.score.reference import ReferenceCurve
from ...elue.tasks import TASK_KEYS, TASKS, ElueTask
from ...leaderboard.ranking import (
    AXES,
    Filters,
    elue_rows,
    filter_entries,
    task_points,
    track_rows,
    unranked_rows,
)
from ...leaderboard.records import EntryRecord

__all__ = [
    "ELUE_TASKS",
    "TASK_COLUMNS",
    "AXIS_TITLES",
    "SERIES_COLORS",
    "elue_frame",
    "unranked_frame",
    "track_frame",
    "task_frame",
    "pareto_frames",
    "frontier_steps",
    "entry_frame",
    "validation_frame",
    "metric_title",
]

ELUE_TASKS = tuple(TASKS[key] for key in TASK_KEYS)  # the six tasks, in ELUE order
TASK_COLUMNS = tuple(t.name for t in ELUE_TASKS)
AXIS_TITLES = {"mflops": "MFLOPs per instance", "params": "MParams"}
REFERENCE_SERIES = "ElasticBERT-base reference"
FRONTIER_SERIES = "Pareto frontier"
OTHER_SERIES = "dominated"
#: Points kept out of the ranking: submissions not re-run by the server, and those scored on other data.
UNVERIFIED_SERIES = "not ranked: not verified"
OTHER_DATA_SERIES = "not ranked: not the ELUE test set"
SUBMITTED_SERIES = "submitted here"  # a ranked submission's points: told apart from the papers' rows
REFERENCE_LINE = REFERENCE_SERIES + " (interpolated)"
SERIES_COLORS = {REFERENCE_SERIES: "#7f7f7f", REFERENCE_LINE: "#7f7f7f", FRONTIER_SERIES: "#d62728",
                 OTHER_SERIES: "#1f77b4", UNVERIFIED_SERIES: "#ff7f0e", OTHER_DATA_SERIES: "#9467bd",
                 SUBMITTED_SERIES: "#2ca02c"}
_METRIC_TITLES = {"acc": "Accuracy", "acc_and_f1": "(Acc+F1)/2", "corr": "(Pearson+Spearman)/2"}


def metric_title(task: ElueTask) -> str:
    return _METRIC_TITLES[task.metric]


def _r(value, digits: int = 2):
    return None if value is None else round(float(value), digits)


def _mparams(params) -> float | None:
    return None if params is None else round(params / 1e6, 2)


def _source(row: Mapping) -> str:
    if row["source"] == "paper":
        return "paper: " + row.get("citation", "").split(":")[0]
    return row["source"]


def _frame(rows: list[dict], columns: Sequence[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(columns), dtype=object)
    return frame.where(frame.notna(), None)


def elue_frame(entries: Iterable[EntryRecord], filters: Filters | None = None) -> pd.DataFrame:
    """The ELUE-score ranking table."""
    entries = filter_entries(entries, filters)
    citation = {e.entry_id: e.citation for e in entries}
    columns = ["Rank", "Model", "ELUE score", *TASK_COLUMNS, "MParams", "Source", "Notes", "Description", "Entry"]
    rows = []
    for r in elue_rows(entries):
        notes = list(r["notes"])
        if r["partial_elue_score"] is not None:
            notes.append(f"mean over {len(r['task_scores'])} tasks {r['partial_elue_score']:+.2f}")
        row = {"Rank": r["rank"], "Model": r["model"], "ELUE score": _r(r["elue_score"]),
               "MParams": _mparams(r["params"]), "Source": _source({**r, "citation": citation[r["entry_id"]]}),
               "Notes": "; ".join(notes), "Description": r["description"], "Entry": r["entry_id"]}
        for key, name in zip(TASK_KEYS, TASK_COLUMNS):
            row[name] = _r(r["task_scores"].get(key))
        rows.append(row)
    return _frame(rows, columns)


def unranked_frame(entries: Iterable[EntryRecord], filters: Filters | None = None) -> pd.DataFrame:
    """The submissions kept out of the rankings (not verified, or not scored on the ELUE test set): their scores,
    why they are not ranked, and their description; no rank column."""
    columns = ["Model", "Why not ranked", "ELUE score", *TASK_COLUMNS, "MParams", "FLOPs", "Submitter",
               "Description", "Entry"]
    rows = []
    for r in unranked_rows(filter_entries(entries, filters)):
        score = r["elue_score"] if r["elue_score"] is not None else r["partial_elue_score"]
        row = {"Model": r["model"], "Why not ranked": r["why"].removeprefix("not ranked: "),
               "ELUE score": _r(score), "MParams": _mparams(r["params"]), "FLOPs": r["flops_tier"],
               "Submitter": r["submitter"], "Description": r["description"], "Entry": r["entry_id"]}
        if r["elue_score"] is None and r["task_scores"]:
            row["ELUE score"] = None if score is None else f"{score:+.2f} ({len(r['task_scores'])}/6 tasks)"
        for key, name in zip(TASK_KEYS, TASK_COLUMNS):
            row[name] = _r(r["task_scores"].get(key))
        rows.append(row)
    return _frame(rows, columns)


def track_frame(entries: Iterable[EntryRecord], track: str, filters: Filters | None = None) -> pd.DataFrame:
    """A parameter track (``"40M"`` ... ``"110M"``): operating points ranked by average performance."""
    entries = filter_entries(entries, filters)
    citation = {e.entry_id: e.citation for e in entries}
    columns = ["Rank", "Model", "Point", *TASK_COLUMNS, "Average", "MParams", "MFLOPs", "Source", "Notes"]
    rows = []
    for g in track_rows(entries, track):
        row = {"Rank": g["rank"], "Model": g["model"], "Point": g["label"], "Average": _r(g["average"]),
               "MParams": _mparams(g["params"]), "MFLOPs": _r(g["mflops"], 1),
               "Source": _source({**g, "citation": citation[g["entry_id"]]}), "Notes": "; ".join(g["notes"])}
        for key, name in zip(TASK_KEYS, TASK_COLUMNS):
            row[name] = _r(g["performance"].get(key), 1)
        rows.append(row)
    return _frame(rows, columns)


def task_frame(entries: Iterable[EntryRecord], task: ElueTask, axis: str = "mflops",
               filters: Filters | None = None) -> pd.DataFrame:
    """Every operating point of one task, best first; ``Pareto`` marks the frontier on ``axis``."""
    entries = filter_entries(entries, filters)
    citation = {e.entry_id: e.citation for e in entries}
    metric = metric_title(task)
    columns = ["Model", "Point", metric, "MFLOPs", "MParams", "vs reference", "FLOPs", "Pareto", "Source", "Notes"]
    rows = [{
        "Model": r["model"], "Point": r["label"], metric: _r(r["performance"]), "MFLOPs": _r(r["mflops"], 1),
        "MParams": _mparams(r["params"]), "vs reference": _r(r["residual"]),
        "FLOPs": r["flops_tier"] or r["flops_source"],
        "Pareto": "*" if r["pareto"] else "", "Source": _source({**r, "citation": citation[r["entry_id"]]}),
        "Notes": "; ".join(filter(None, [r["why"], r["note"]])),
    } for r in task_points(entries, task, axis)]
    return _frame(rows, columns)


def _reference_line(curve: ReferenceCurve, axis: str, lo: float | None, hi: float | None) -> list[dict]:
    xs = np.asarray(curve.mflops, dtype=np.float64)
    if axis == "params":  # the published depths only: the score is not defined on the parameter axis
        layers = [lay for lay in curve.layers if isinstance(lay, int)]
        return [{"x": encoder_classifier_params(lay) / 1e6, "performance": float(p), "line": REFERENCE_SERIES}
                for lay, p in zip(layers, curve.performance)]
    lo = xs[0] if lo is None else min(lo, xs[0])
    hi = xs[-1] if hi is None else max(hi, xs[-1])
    grid = np.unique(np.concatenate([xs, np.linspace(lo, hi, 24)]))
    return [{"x": float(x), "performance": float(curve(x)), "line": REFERENCE_LINE}
            for x in grid]


def _series(point: Mapping) -> str:
    if point["source"] == "reference":
        return REFERENCE_SERIES
    if point["other_data"]:
        return OTHER_DATA_SERIES
    if not point["ranked"]:
        return UNVERIFIED_SERIES
    if point["source"] == "submission":
        return SUBMITTED_SERIES
    return FRONTIER_SERIES if point["pareto"] else OTHER_SERIES


def pareto_frames(entries: Iterable[EntryRecord], task: ElueTask, axis: str, curves: Mapping[str, ReferenceCurve],
                  filters: Filters | None = None) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """(points, lines, hidden) for one task page.

    points: one row per operating point with an ``x`` on ``axis`` — ``series`` is the reference, a ranked
    submission's point (its own colour, whatever its rank: the frontier line shows whether it is on the front), a
    paper row on the Pareto frontier or dominated, or one of the two unranked series (not verified; not the ELUE test
    set), which never join the frontier; lines: the reference curve (interpolated and extrapolated as the score does,
    on the FLOPs axis) and the frontier; hidden: how many points have no value on ``axis`` (e.g. paper rows without
    per-task FLOPs)."""
    if axis not in AXES:
        raise ValueError(f"axis must be one of {AXES}, got {axis!r}")
    rows = task_points(filter_entries(entries, filters), task, axis)
    shown = [r for r in rows if r["x"] is not None]
    points = pd.DataFrame([{
        "x": r["x"], "performance": r["performance"],
        "series": _series(r),
        "model": r["model"], "point": r["label"], "source": r["source"],
    } for r in shown], columns=["x", "performance", "series", "model", "point", "source"])
    xs = [r["x"] for r in shown]
    lines = _reference_line(curves[task.key], axis, min(xs, default=None), max(xs, default=None))
    lines += frontier_steps([(r["x"], r["performance"]) for r in shown if r["pareto"]])
    return points, pd.DataFrame(lines, columns=["x", "performance", "line"]), len(rows) - len(shown)


def frontier_steps(front: Sequence[tuple[float, float]]) -> list[dict]:
    """The Pareto frontier as a staircase: a point's performance holds until the next point's cost."""
    front = sorted(front)
    out = []
    for i, (x, y) in enumerate(front):
        if i:
            out.append({"x": x, "performance": front[i - 1][1], "line": FRONTIER_SERIES})
        out.append({"x": x, "performance": y, "line": FRONTIER_SERIES})
    return out


def entry_frame(entry: EntryRecord) -> pd.DataFrame:
    """One entry's operating points (the Submit tab's result table)."""
    columns = ["Task", "Point", "Metric", "MFLOPs", "Reference", "vs reference", "MParams", "FLOPs"]
    rows = [{
        "Task": TASKS[p.task].name, "Point": p.label, "Metric": _r(p.performance), "MFLOPs": _r(p.mflops, 1),
        "Reference": _r(p.reference_performance), "vs reference": _r(p.residual), "MParams": _mparams(p.params),
        "FLOPs": p.flops_tier or p.flops_source,
    } for p in entry.points]
    return _frame(rows, columns)


def validation_frame(submission) -> pd.DataFrame:
    """A validated (not stored) submission's points: cost and FLOPs tier only; no metric (validation never touches
    the gold labels)."""
    columns = ["Task", "Point", "Metric", "MFLOPs", "Reference", "vs reference", "MParams", "FLOPs"]
    rows = [{
        "Task": TASKS[f.task].name, "Point": f.label, "Metric": None, "MFLOPs": _r(f.mean_mflops, 1),
        "Reference": None, "vs reference": None, "MParams": _mparams(f.params), "FLOPs": f.flops_tier,
    } for f in submission.files]
    return _frame(rows, columns)
