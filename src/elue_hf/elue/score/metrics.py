"""Task metrics in NumPy (docs/elue.md, "Tasks"), all x100.

Keys follow the original ``elue/metrics.py``: ``acc``, ``f1``, ``acc_and_f1``, ``pearson``, ``spearmanr``, ``corr``;
``score`` is the task's main metric.
"""

from __future__ import annotations

import numpy as np

from ..tasks import get_task

__all__ = ["accuracy", "f1_positive", "pearson", "average_ranks", "spearman", "task_metric"]


def _pair(predictions, references, dtype=None):
    p = np.asarray(predictions, dtype=dtype)
    r = np.asarray(references, dtype=dtype)
    if p.shape != r.shape or p.ndim != 1:
        raise ValueError(f"predictions and references must be 1-D and equally long, got {p.shape} and {r.shape}")
    if p.size == 0:
        raise ValueError("no predictions to score")
    return p, r


def accuracy(predictions, references) -> float:
    p, r = _pair(predictions, references)
    return float(np.mean(p == r) * 100.0)


def f1_positive(predictions, references, positive=1) -> float:
    """F1 of the positive class: 2TP / (2TP + FP + FN) (0 when there is no positive at all)."""
    p, r = _pair(predictions, references)
    tp = np.sum((p == positive) & (r == positive))
    fp = np.sum((p == positive) & (r != positive))
    fn = np.sum((p != positive) & (r == positive))
    denom = 2 * tp + fp + fn
    return float(200.0 * tp / denom) if denom else 0.0


def pearson(x, y) -> float:
    """Pearson r x 100; NaN when either side is constant (r undefined)."""
    x, y = _pair(x, y, np.float64)
    xc, yc = x - x.mean(), y - y.mean()
    denom = np.sqrt(np.sum(xc * xc) * np.sum(yc * yc))
    if denom == 0 or not np.isfinite(denom):
        return float("nan")
    return float(np.clip(np.sum(xc * yc) / denom, -1.0, 1.0) * 100.0)


def average_ranks(x) -> np.ndarray:
    """1-based ranks, ties get the average of the ranks they span (as scipy.stats.rankdata 'average')."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new_group = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], x.size]
    group_rank = (starts + ends - 1) / 2.0 + 1.0
    ranks = np.empty(x.size, dtype=np.float64)
    ranks[order] = group_rank[np.cumsum(new_group) - 1]
    return ranks


def spearman(x, y) -> float:
    """Spearman rho x 100 = Pearson on average ranks."""
    x, y = _pair(x, y, np.float64)
    return pearson(average_ranks(x), average_ranks(y))


def task_metric(task, predictions, references) -> dict[str, float]:
    """The task's metrics (x100) plus ``score`` (its main metric)."""
    task = get_task(task)
    if task.metric == "corr":
        out = {"pearson": pearson(predictions, references), "spearmanr": spearman(predictions, references)}
        out["corr"] = (out["pearson"] + out["spearmanr"]) / 2.0
    elif task.metric == "acc_and_f1":
        out = {"acc": accuracy(predictions, references), "f1": f1_positive(predictions, references)}
        out["acc_and_f1"] = (out["acc"] + out["f1"]) / 2.0
    else:
        out = {"acc": accuracy(predictions, references)}
    out["score"] = out[task.metric]
    return out
