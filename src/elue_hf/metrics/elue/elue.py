"""ELUE metric for `evaluate`: one task's predictions with their FLOPs, or a whole submission.

Load it offline with ``evaluate.load(elue_hf.metrics.METRIC_PATH)`` or, after ``elue_hf.metrics.install_metric()``,
with a bare ``evaluate.load("elue")`` from any directory. The maths lives in ``elue_hf.elue`` (installed package);
this file only adapts it to the ``evaluate.Metric`` interface.
"""

import datasets
import evaluate
import numpy as np

from elue_hf.citations import bibtex
from elue_hf.elue.score import score_submission
from elue_hf.elue.score.metrics import task_metric
from elue_hf.elue.score.reference import load_reference
from elue_hf.elue.tasks import TASK_KEYS, get_task

_CITATION = bibtex("elue")  # the one copy lives in elue_hf.citations (README.md is tested against it)

_DESCRIPTION = """\
ELUE (Efficient Language Understanding Evaluation) scores quality *and* cost. For one task it returns the task metric
(x100: accuracy; (acc+F1)/2 for MRPC; (Pearson+Spearman)/2 for STS-B), the mean FLOPs per instance (MFLOPs, ELUE
rules) and the residual against the ElasticBERT-base reference curve (piecewise-linear in FLOPs, linear
extrapolation outside). Given a whole submission (directory or zip), it returns per-task scores, the ELUE score
(mean over the six tasks; None plus a partial mean when tasks are missing) and the 40/55/70/110M parameter tracks.
IMDb results are provisional until its reference FLOPs are recomputed (`elue-hf recompute-imdb-flops`).
"""

_KWARGS_DESCRIPTION = """
Args (one task):
    predictions: label codes (int) or STS-B scores (float), one per test instance.
    references: gold labels, same order.
    flops: MFLOPs of each instance (ELUE rules); or pass `mean_flops=` instead.
    task: one of sst-2, imdb, mrpc, sts-b, snli, scitail (aliases such as "sst2", "stsb" work).
    mean_flops: mean MFLOPs per instance, when `flops` is not given.
    reference: optional path of a reference-curve JSON (default: the shipped curve or $ELUE_HF_REFERENCE).
Args (whole submission; no predictions/references):
    submission: path of a submission directory or zip (see elue_hf.elue.submission).
    gold: mapping task -> gold labels, or an ELUE data directory holding <Task>/test_full.tsv.
Returns (one task):
    the task metrics (acc / f1 / acc_and_f1 / pearson / spearmanr / corr), "score" (main metric), "mean_flops",
    "reference_score" (ElasticBERT at that FLOPs), "elue_residual" (score - reference), "provisional".
Returns (submission): the SubmissionScore as a dict (tasks, elue_score, partial_elue_score, missing_tasks,
    provisional, flops_tier, tracks).
Examples:
    >>> elue = evaluate.load(elue_hf.metrics.METRIC_PATH)
    >>> elue.compute(predictions=[0, 1, 1], references=[0, 1, 0], flops=[1000.0, 1100.0, 900.0], task="sst-2")
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Elue(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Value("float64"),
                    "references": datasets.Value("float64"),
                    "flops": datasets.Value("float64"),
                }
            ),
            reference_urls=["https://arxiv.org/abs/2110.07038", "http://eluebenchmark.fastnlp.top/"],
        )

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Score one task (predictions, references, flops, task=...) or a whole submission (submission=, gold=)."""
        submission = kwargs.pop("submission", None)
        if submission is not None:
            if predictions is not None or references is not None:
                raise ValueError("pass either submission= (whole submission) or predictions/references (one task)")
            gold = kwargs.pop("gold", None)
            if gold is None:
                raise ValueError("scoring a submission needs gold= (task -> labels, or an ELUE data directory)")
            return score_submission(submission, gold, kwargs.pop("reference", None)).to_dict()
        if predictions is not None and kwargs.get("flops") is None:
            mean = kwargs.pop("mean_flops", None)
            if mean is None:
                raise ValueError("ELUE needs FLOPs: pass flops= (MFLOPs per instance) or mean_flops=")
            kwargs["flops"] = [float(mean)] * len(predictions)
        return super().compute(predictions=predictions, references=references, **kwargs)

    def _compute(self, predictions, references, flops, task=None, reference=None, mean_flops=None):
        if task is None:
            raise ValueError(f"pass task= (one of {', '.join(TASK_KEYS)})")
        task = get_task(task)
        preds = np.asarray(predictions, dtype=np.float64)
        refs = np.asarray(references, dtype=np.float64)
        cost = np.asarray(flops, dtype=np.float64)
        for name, arr in (("predictions", preds), ("references", refs), ("flops", cost)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name} contain NaN or infinite values")
        if np.any(cost <= 0):
            raise ValueError("flops must be > 0 MFLOPs per instance")
        if not task.is_regression:
            for name, arr in (("predictions", preds), ("references", refs)):
                if np.any(arr != np.round(arr)) or np.any((arr < 0) | (arr >= task.num_labels)):
                    raise ValueError(f"{name} must be {task.key} label codes 0..{task.num_labels - 1}")
            preds, refs = preds.astype(np.int64), refs.astype(np.int64)
        out = task_metric(task, preds, refs)
        curve = load_reference(reference)[task.key]
        out["mean_flops"] = float(np.mean(cost))
        out["reference_score"] = float(curve(out["mean_flops"]))
        out["elue_residual"] = out["score"] - out["reference_score"]
        out["provisional"] = bool(curve.provisional)
        return out
