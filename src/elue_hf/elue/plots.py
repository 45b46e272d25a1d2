"""Pareto plot: performance vs mean FLOPs per instance, with the ElasticBERT reference curve (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from .score.reference import ReferenceCurve, load_reference
from .tasks import get_task

__all__ = ["pareto_front", "pareto_plot"]


def pareto_front(mflops: Sequence[float], performance: Sequence[float]) -> np.ndarray:
    """Indices of the points no other point beats (fewer or equal FLOPs and higher or equal performance), by FLOPs."""
    f = np.asarray(mflops, dtype=np.float64)
    p = np.asarray(performance, dtype=np.float64)
    order = np.lexsort((-p, f))
    front, best = [], -np.inf
    for i in order:
        if p[i] > best:
            front.append(i)
            best = p[i]
    return np.asarray(front, dtype=np.int64)


def pareto_plot(
    points: Sequence[Mapping],
    task: str,
    path,
    reference: Mapping[str, ReferenceCurve] | str | Path | None = None,
    title: str | None = None,
    data_label: str | None = None,
    show_reference: bool = True,
) -> Path:
    """Save a PNG of ``points`` (dicts with ``method``, ``label``, ``mflops``, ``performance``) for ``task``.

    Points are grouped by ``method`` (one colour each); the frontier over all points is drawn as a step line; the
    reference curve is drawn through its published points (solid) and extrapolated to the plotted range (dashed).
    ``data_label`` names the data when it is not the ELUE test set (e.g. "RT snippets (Pang & Lee), SST-2-like").
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    task = get_task(task)
    if not points:
        raise ValueError("nothing to plot: no operating points")
    f = np.array([float(p["mflops"]) for p in points])
    perf = np.array([float(p["performance"]) for p in points])
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=110)
    methods = list(dict.fromkeys(str(p.get("method", "submission")) for p in points))
    for method in methods:
        idx = [i for i, p in enumerate(points) if str(p.get("method", "submission")) == method]
        ax.plot(f[idx], perf[idx], "o", label=method, alpha=0.85)
        for i in idx:
            if points[i].get("label"):
                ax.annotate(str(points[i]["label"]), (f[i], perf[i]), fontsize=7, xytext=(3, 3),
                            textcoords="offset points")
    front = pareto_front(f, perf)
    ax.step(f[front], perf[front], where="post", color="black", lw=1, alpha=0.5, label="Pareto front")
    if show_reference:
        curves = reference if isinstance(reference, Mapping) else load_reference(reference)
        curve = curves[task.key]
        xs = np.asarray(curve.mflops)
        ax.plot(xs, curve(xs), "s-", color="grey", label=f"ElasticBERT-base on the ELUE {task.name} test (reference)"
                + (" [provisional FLOPs]" if curve.provisional else ""))
        lo, hi = min(f.min(), xs[0]), max(f.max(), xs[-1])
        for a, b in ((lo, xs[0]), (xs[-1], hi)):
            if b > a:
                grid = np.linspace(a, b, 20)
                ax.plot(grid, curve(grid), "--", color="grey", lw=1)
    ax.set_xlabel("mean FLOPs per instance (MFLOPs, ELUE rules)")
    ax.set_ylabel(f"{task.name} metric x100" if not data_label else f"metric x100 on {data_label}")
    ax.set_title(title or f"{task.name}: performance vs FLOPs" + (f" ({data_label})" if data_label else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
