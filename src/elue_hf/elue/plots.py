"""The Pareto plot (performance vs cost per instance) used by ``elue-hf evaluate``, the demo and its sections.

One colour per method, every point labelled without overprinting (labels are placed greedily around their point,
with a leader line when pushed away), the Pareto front drawn as a step line through ringed markers (visible also
for a single point), and optionally the ElasticBERT reference curve of an ELUE task. Matplotlib (Agg) is imported
on first use.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["pareto_front", "pareto_figure", "pareto_plot", "label_offsets", "merged_labels"]

_FLOPS_AXIS = "mean FLOPs per instance (MFLOPs, ELUE rules)"
_MARKERS = "osD^vP*X"


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


def label_offsets(radii: Sequence[float] = (5, 12, 22, 34, 48, 64)) -> list[tuple[float, float]]:
    """Candidate label offsets (points) around a marker, nearest first: 8 directions per radius."""
    angles = (45, -45, 135, -135, 0, 180, 90, -90)
    return [(r * math.cos(math.radians(a)), r * math.sin(math.radians(a))) for r in radii for a in angles]


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _place_labels(ax, xs, ys, texts, fontsize: float = 7.5) -> list:
    """Annotate (xs[i], ys[i]) with texts[i], each at the first candidate offset that overlaps no placed label, no
    marker, not the legend and stays inside the axes (else the least-overlapping one). Returns the annotations."""
    from matplotlib.text import Text
    from matplotlib.transforms import Bbox

    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    pad = 6.5 * fig.dpi / 72  # half-size of a ringed marker, in pixels
    centres = ax.transData.transform(np.column_stack([xs, ys]))
    blocked = [Bbox.from_extents(cx - pad, cy - pad, cx + pad, cy + pad) for cx, cy in centres]
    if ax.get_legend() is not None:
        blocked.append(ax.get_legend().get_window_extent(renderer))
    placed = []
    for i in np.argsort(xs, kind="stable"):
        best = None
        for dx, dy in label_offsets():
            far = math.hypot(dx, dy) > 10
            ann = ax.annotate(
                texts[i], (xs[i], ys[i]), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                ha="left" if dx > 0.5 else "right" if dx < -0.5 else "center",
                va="bottom" if dy > 0.5 else "top" if dy < -0.5 else "center",
                arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5", "shrinkA": 1, "shrinkB": 3} if far else None,
            )
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer).padded(1)  # the text alone, not its leader line
            outside = not (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1)
            cost = sum(_overlap(box, b) for b in blocked) + (1e6 if outside else 0.0)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, box)
            else:
                ann.remove()
            if cost == 0:
                break
        blocked.append(best[2])
        placed.append(best[1])
    return placed


def pareto_plot(points: Sequence[Mapping], task: str | None, path, reference=None, **options) -> Path:
    """Save :func:`pareto_figure` of ``points`` as a PNG at ``path`` and return the path (``options``: ``title``,
    ``data_label``, ``show_reference``, ``xlabel``, ``ylabel``)."""
    import matplotlib.pyplot as plt

    fig = pareto_figure(points, task, reference, **options)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def pareto_figure(
    points: Sequence[Mapping],
    task: str | None,
    reference=None,
    title: str | None = None,
    data_label: str | None = None,
    show_reference: bool = True,
    xlabel: str | None = None,
    ylabel: str | None = None,
):
    """A matplotlib figure of ``points`` (dicts with ``method``, ``label``, ``mflops``, ``performance``).

    ``task`` (an ELUE task) adds its ElasticBERT reference curve (solid through the published points, dashed where
    extrapolated); ``None`` plots the points alone. ``data_label`` names the data when it is not the ELUE test set
    (e.g. "RT snippets (Pang & Lee), SST-2-like"): it goes into the title and the y axis, and the reference keeps
    saying it was measured on the ELUE test set. ``xlabel`` replaces the FLOPs axis name when ``mflops`` holds
    another cost (e.g. the mean exit layer).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .tasks import get_task

    task = get_task(task) if task is not None else None
    if not points:
        raise ValueError("nothing to plot: no operating points")
    f = np.array([float(p["mflops"]) for p in points])
    perf = np.array([float(p["performance"]) for p in points])
    fig, ax = plt.subplots(figsize=(8, 5.2), dpi=110)
    methods = list(dict.fromkeys(str(p.get("method", "submission")) for p in points))
    for n, method in enumerate(methods):
        idx = sorted((i for i, p in enumerate(points) if str(p.get("method", "submission")) == method),
                     key=lambda i: f[i])
        # each method its own marker, later ones smaller: a point that coincides with another method's stays visible
        ax.plot(f[idx], perf[idx], "-", marker=_MARKERS[n % len(_MARKERS)], lw=0.8, ms=max(3.0, 7.5 - 1.5 * n),
                label=method, alpha=0.9, zorder=3 + n)
    front = pareto_front(f, perf)
    ax.plot(f[front], perf[front], drawstyle="steps-post", color="black", lw=1.2, alpha=0.6)
    ax.plot(f[front], perf[front], "o", ms=11, mfc="none", mec="black", mew=1.3, label="Pareto front (ringed)")
    if task is not None and show_reference:
        _reference_curve(ax, task, reference, f)
    ax.set_xlabel(xlabel or _FLOPS_AXIS)
    metric = f"{task.name} metric x100" if task is not None else "accuracy (%)"
    ax.set_ylabel(ylabel or (f"{metric} on {data_label}" if data_label else metric))
    data = data_label or (f"ELUE {task.name} test set" if task is not None else None)
    ax.set_title(title or ("performance vs cost" if data is None else f"{data}: performance vs FLOPs"), fontsize=10)
    ax.grid(alpha=0.3)
    _pad_limits(ax, f, perf, _reference_values(ax))
    # below the axes: inside, "best" can still cover a point
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, frameon=False)
    fig.tight_layout()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    tol = (0.006 * (x1 - x0), 0.006 * (y1 - y0))  # closer than a marker's radius: one label
    xs, ys, texts = merged_labels(f, perf, [str(p.get("label", "")) for p in points], tol)
    if texts:
        _place_labels(ax, np.asarray(xs), np.asarray(ys), texts)
    return fig


def merged_labels(xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], tol: tuple[float, float] = (0, 0)):
    """One label per position: points that coincide -- within ``tol`` (x, y) of a group's first point, e.g. thresholds
    that change no decision -- share one, each first word written once: ``entropy 0.10, 0.30; patience 2``. Returns
    ``(xs, ys, texts)`` (each group at its first point), empty labels dropped."""
    groups: list[tuple[float, float, dict[str, list[str]]]] = []
    for x, y, text in zip(xs, ys, labels):
        if not text:
            continue
        x, y = float(x), float(y)
        group = next((g for g in groups if abs(g[0] - x) <= tol[0] and abs(g[1] - y) <= tol[1]), None)
        if group is None:
            group = (x, y, {})
            groups.append(group)
        head, _, rest = text.partition(" ")
        group[2].setdefault(head, []).append(rest)
    texts = ["; ".join(f"{head} {', '.join(rests)}".strip() if any(rests) else head for head, rests in g[2].items())
             for g in groups]
    return [g[0] for g in groups], [g[1] for g in groups], texts


def _reference_values(ax) -> list[tuple[np.ndarray, np.ndarray]]:
    """(x, y) of the reference curve's lines, to keep their part over the points in view."""
    return [(np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)) for line in ax.lines
            if line.get_gid() == "reference"]


def _pad_limits(ax, f, perf, curves=()) -> None:
    """Frame the points, with room for their labels (also when all points coincide): the x axis spans the points
    (the reference curve is drawn where it passes over them, not out to its last published depth, which would crush
    the points into a corner), the y axis the points and the reference over that span."""
    span_x = max(float(f.max() - f.min()), abs(float(f.max())) * 0.25, 1e-6)
    left, right = f.min() - 0.15 * span_x, f.max() + 0.15 * span_x
    left = max(left, 0.0) if f.min() >= 0 else left  # no negative cost
    ys = [perf]
    for xs, values in curves:
        inside = (xs >= left) & (xs <= right)
        ys.append(values[inside])
        if len(xs) > 1:
            ys.append(np.interp([left, right], xs, values))
    ys = np.concatenate(ys)
    span_y = max(float(ys.max() - ys.min()), 2.0)
    ax.set_xlim(left, right)
    ax.set_ylim(ys.min() - 0.12 * span_y, ys.max() + 0.12 * span_y)


def _reference_curve(ax, task, reference, f) -> None:
    from .score.reference import load_reference

    curves = reference if isinstance(reference, Mapping) else load_reference(reference)
    curve = curves[task.key]
    xs = np.asarray(curve.mflops)
    ax.plot(xs, curve(xs), "-", color="grey", gid="reference",
            label=f"reference: ElasticBERT-base, ELUE {task.name} test set (dashed: extrapolated)"
            + (" [provisional FLOPs]" if curve.provisional else ""))
    ax.plot(xs, curve(xs), "s", color="grey", ms=4, gid="reference")  # the published depths
    lo, hi = min(f.min(), xs[0]), max(f.max(), xs[-1])
    for a, b in ((lo, xs[0]), (xs[-1], hi)):
        if b > a:
            grid = np.linspace(a, b, 20)
            ax.plot(grid, curve(grid), "--", color="grey", lw=1, gid="reference")
