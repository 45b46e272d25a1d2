"""The ELUE score and the parameter tracks.

See docs/elue.md, "ELUE score and the reference curve" and "Parameter tracks".

Per file: the task metric (x100) of its predictions and its mean FLOPs; per task: the mean residual
``p_i - p_EB(f_i)`` over its files against the ElasticBERT reference curve; ELUE score: the mean over the six tasks
(None when a task is missing — then ``partial_elue_score`` gives the mean over the tasks present, flagged partial).
IMDb results are flagged provisional while the IMDb reference FLOPs are. Everything is float64.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..submission import Submission, SubmissionError, SubmissionLimits, flops_tier_of, read_submission
from ..tasks import TASK_KEYS, TASKS, get_task
from .metrics import task_metric
from .reference import ReferenceCurve, load_reference

__all__ = [
    "TRACKS",
    "param_track",
    "FileScore",
    "TaskScore",
    "SubmissionScore",
    "score_points",
    "score_submission",
    "format_score",
]

#: Parameter tracks (MParams, inclusive), ranked by average performance (docs/elue.md, "Parameter tracks").
TRACKS: tuple[tuple[str, float], ...] = (("40M", 40.0), ("55M", 55.0), ("70M", 70.0), ("110M", 110.0))


def param_track(params: int | float) -> str | None:
    """Smallest track a model of ``params`` parameters (a count, not MParams) fits in; None above 110M."""
    mparams = float(params) / 1e6
    for name, limit in TRACKS:
        if mparams <= limit:
            return name
    return None


@dataclass
class FileScore:
    path: str
    task: str
    label: str
    metrics: dict[str, float]
    performance: float
    mean_mflops: float
    reference_performance: float
    residual: float
    params: int
    flops_source: str
    provisional: bool


@dataclass
class TaskScore:
    task: str
    score: float  # mean residual over the task's files
    files: list[FileScore]
    provisional: bool


@dataclass
class SubmissionScore:
    model_name: str
    params: int
    tasks: dict[str, TaskScore]
    elue_score: float | None  # None unless all six tasks are present
    partial_elue_score: float | None  # mean over the tasks present
    missing_tasks: list[str]
    provisional: bool  # some score leans on provisional reference FLOPs (IMDb)
    flops_tier: str  # "consistent" (every file's FLOPs recomputed from declared modules) or "self-reported"
    tracks: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def partial(self) -> bool:
        return bool(self.missing_tasks)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["partial"] = self.partial
        return out

    def format_table(self) -> str:
        return format_score(self)


def _gold_for(task: str, gold, cache: dict) -> np.ndarray:
    if task in cache:
        return cache[task]
    if isinstance(gold, (str, Path)):
        from ..data import load_test_labels

        labels = load_test_labels(gold, task)
    elif isinstance(gold, Mapping):
        if task not in gold:
            raise SubmissionError(f"no gold labels given for task {task}")
        labels = gold[task]
    else:
        raise TypeError("gold must be a mapping task -> labels or an ELUE data directory")
    t = TASKS[task]  # a key read from a checked submission
    labels = np.asarray(labels, dtype=np.float64 if t.is_regression else np.int64)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(f"gold labels for {task} must be a non-empty 1-D sequence")
    cache[task] = labels
    return labels


def _file_score(f, gold: np.ndarray, curve: ReferenceCurve) -> FileScore:
    if f.predictions.shape[0] != gold.shape[0]:
        raise SubmissionError(
            f"{f.path}: wrong row count: {f.predictions.shape[0]} predictions for {gold.shape[0]} {f.task} test "
            "instances"
        )
    metrics = task_metric(TASKS[f.task], f.predictions, gold)
    if not math.isfinite(metrics["score"]):
        raise SubmissionError(f"{f.path}: the {f.task} metric is undefined (constant predictions?)")
    ref = float(curve(f.mean_mflops))
    return FileScore(
        path=f.path, task=f.task, label=f.label, metrics=metrics, performance=metrics["score"],
        mean_mflops=f.mean_mflops, reference_performance=ref, residual=metrics["score"] - ref, params=f.params,
        flops_source=f.flops_source, provisional=curve.provisional,
    )


def _tracks(files: Sequence[FileScore]) -> dict[str, list[dict]]:
    """Group files by operating-point label; list each group in every track its parameter count fits."""
    groups: dict[str, list[FileScore]] = {}
    for fs in files:
        groups.setdefault(fs.label, []).append(fs)
    out: dict[str, list[dict]] = {name: [] for name, _ in TRACKS}
    for label, members in groups.items():
        params = max(m.params for m in members)
        perf = {m.task: m.performance for m in members}
        row = {
            "label": label,
            "params": params,
            "mean_mflops": float(np.mean([m.mean_mflops for m in members])),
            "performance": perf,
            "average": float(np.mean(list(perf.values()))),
            "partial": len(perf) < len(TASK_KEYS),
        }
        for name, limit in TRACKS:
            if params / 1e6 <= limit:
                out[name].append(row)
    for rows in out.values():
        rows.sort(key=lambda r: -r["average"])
    return out


def _aggregate(tasks: dict[str, TaskScore]) -> tuple[float | None, float | None, list[str]]:
    missing = [t for t in TASK_KEYS if t not in tasks]
    values = [tasks[t].score for t in TASK_KEYS if t in tasks]
    partial = float(np.mean(values)) if values else None
    return (partial if not missing else None), partial, missing


def score_submission(
    submission: Submission | str | Path,
    gold,
    reference: Mapping[str, ReferenceCurve] | str | Path | None = None,
    limits: SubmissionLimits | None = None,
) -> SubmissionScore:
    """Score a submission (object, directory or zip) against gold test labels.

    ``gold``: a mapping task -> labels (index order), or an ELUE data directory (``<Task>/test_full.tsv``).
    ``reference``: curves by task, or a curve JSON path (default: the shipped curve / ``$ELUE_HF_REFERENCE``).
    Raises :class:`SubmissionError` for any invalid input; nothing is scored then.
    """
    if not isinstance(submission, Submission):
        submission = read_submission(submission, limits)
    curves = reference if isinstance(reference, Mapping) else load_reference(reference)
    cache: dict[str, np.ndarray] = {}
    by_task: dict[str, list[FileScore]] = {}
    for f in submission.files:
        if f.task not in curves:
            raise SubmissionError(f"{f.path}: no reference curve for task {f.task}")
        by_task.setdefault(f.task, []).append(_file_score(f, _gold_for(f.task, gold, cache), curves[f.task]))
    tasks = {
        t: TaskScore(t, float(np.mean([fs.residual for fs in files])), files, curves[t].provisional)
        for t, files in sorted(by_task.items(), key=lambda kv: TASK_KEYS.index(kv[0]))
    }
    elue, partial, missing = _aggregate(tasks)
    all_files = [fs for ts in tasks.values() for fs in ts.files]
    return SubmissionScore(
        model_name=submission.model_name, params=submission.params, tasks=tasks, elue_score=elue,
        partial_elue_score=partial, missing_tasks=missing, provisional=any(ts.provisional for ts in tasks.values()),
        flops_tier=flops_tier_of(fs.flops_source for fs in all_files), tracks=_tracks(all_files),
    )


def score_points(
    points: Mapping[str, Sequence[tuple[float, float]]],
    reference: Mapping[str, ReferenceCurve] | str | Path | None = None,
) -> dict:
    """Score (performance, MFLOPs) pairs per task directly (the "submit from a paper" track).

    Returns ``{"tasks": {task: mean residual}, "elue_score", "partial_elue_score", "missing_tasks", "provisional"}``.
    """
    curves = reference if isinstance(reference, Mapping) else load_reference(reference)
    tasks = {}
    for name, pairs in points.items():
        task = get_task(name).key
        arr = np.asarray(pairs, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] == 0:
            raise ValueError(f"{task}: give a non-empty list of (performance, MFLOPs) pairs")
        if not np.all(np.isfinite(arr)) or np.any(arr[:, 1] <= 0):
            raise ValueError(f"{task}: performances must be finite and MFLOPs finite and > 0")
        residuals = arr[:, 0] - np.asarray(curves[task](arr[:, 1]), dtype=np.float64)
        tasks[task] = TaskScore(task, float(np.mean(residuals)), [], curves[task].provisional)
    elue, partial, missing = _aggregate(tasks)
    return {
        "tasks": {t: ts.score for t, ts in tasks.items()},
        "elue_score": elue,
        "partial_elue_score": partial,
        "missing_tasks": missing,
        "provisional": any(ts.provisional for ts in tasks.values()),
    }


def _fmt(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:+.{digits}f}" if digits == 2 else f"{x:.{digits}f}"


def format_score(result: SubmissionScore) -> str:
    """A plain-text table: one row per file, then per-task scores and the ELUE score (two decimals)."""
    lines = [f"ELUE score for {result.model_name} ({result.params / 1e6:.2f} MParams, "
             f"track {param_track(result.params) or '>110M'})"]
    header = f"{'task':<8} {'point':<30} {'metric':>8} {'MFLOPs':>10} {'ref':>7} {'resid':>7}  FLOPs"
    lines += [header, "-" * len(header)]
    for ts in result.tasks.values():
        for fs in ts.files:
            flag = flops_tier_of([fs.flops_source])
            lines.append(
                f"{ts.task:<8} {fs.label[:30]:<30} {fs.performance:>8.2f} {fs.mean_mflops:>10.1f} "
                f"{fs.reference_performance:>7.2f} {fs.residual:>+7.2f}  {flag}"
                f"{' (provisional)' if fs.provisional else ''}"
            )
    lines.append("-" * len(header))
    for t in TASK_KEYS:
        ts = result.tasks.get(t)
        note = " (provisional IMDb reference FLOPs)" if ts is not None and ts.provisional else ""
        lines.append(f"{TASKS[t].name:<8} score {_fmt(ts.score if ts else None)}{note}")
    if result.elue_score is not None:
        lines.append(f"ELUE score {_fmt(result.elue_score)}{' (provisional)' if result.provisional else ''}")
    else:
        lines.append(
            f"ELUE score - (partial: {len(result.tasks)}/{len(TASK_KEYS)} tasks, missing "
            f"{', '.join(result.missing_tasks)}; mean over tasks present {_fmt(result.partial_elue_score)})"
        )
    return "\n".join(lines)
