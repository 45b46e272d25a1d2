"""What int8 costs at each operating point: the int8 model's points next to the fp32 model's (``elue-hf evaluate
--quantize int8``). Both come from the same data and settings; ELUE's FLOPs of a point depend only on the exit layers
each row took (ELUE counts operations, not bits), so a point's MFLOPs change under int8 only where exits move."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..elue.inference import PointOutputs
from ..elue.score.metrics import task_metric
from ..elue.tasks import ElueTask

__all__ = ["int8_comparison", "format_int8_comparison"]


def int8_comparison(task: ElueTask, fp32: Sequence[PointOutputs], int8: Sequence[PointOutputs],
                    mflops: Sequence[tuple[float, float]], labels=None) -> list[dict]:
    """One row per operating point: agreement of predictions and exit layers, mean exit layer and MFLOPs of both,
    and (given gold ``labels``) the task's score of both (x100) and the change."""
    rows = []
    for a, b, (flops_a, flops_b) in zip(fp32, int8, mflops):
        pa, pb = np.asarray(a.predictions), np.asarray(b.predictions)
        same = np.isclose(pa, pb, rtol=1e-3, atol=1e-3) if task.is_regression else pa == pb
        row = {"label": a.label, "agreement": float(same.mean()),
               "exit_agreement": float(np.mean(np.asarray(a.exit_layers) == np.asarray(b.exit_layers))),
               "mean_exit_fp32": float(np.mean(a.exit_layers)), "mean_exit_int8": float(np.mean(b.exit_layers)),
               "mflops_fp32": float(flops_a), "mflops_int8": float(flops_b)}
        if labels is not None:
            row["score_fp32"] = task_metric(task, a.predictions, labels)["score"]
            row["score_int8"] = task_metric(task, b.predictions, labels)["score"]
            row["score_change"] = row["score_int8"] - row["score_fp32"]
        rows.append(row)
    return rows


def format_int8_comparison(task: ElueTask, rows: Sequence[dict]) -> str:
    """The comparison as a plain table (the score columns only when gold labels were given)."""
    scored = bool(rows) and "score_fp32" in rows[0]
    metric = task.metric
    head = (f"{'point':<16}" + (f" {metric + ' fp32':>14} {'int8':>7} {'change':>7}" if scored else "")
            + f" {'agree':>7} {'same exit':>9} {'mean exit fp32/int8':>20} {'MFLOPs fp32/int8':>18}")
    lines = [f"int8 (torchao int8 weights) vs fp32 on {task.name}, same data and settings:", head]
    for r in rows:
        score = (f" {r['score_fp32']:14.2f} {r['score_int8']:7.2f} {r['score_change']:+7.2f}" if scored else "")
        lines.append(f"{r['label']:<16}{score} {100 * r['agreement']:6.1f}% {100 * r['exit_agreement']:8.1f}% "
                     f"{r['mean_exit_fp32']:9.2f}/{r['mean_exit_int8']:<10.2f} "
                     f"{r['mflops_fp32']:8.2f}/{r['mflops_int8']:<9.2f}")
    return "\n".join(lines)
