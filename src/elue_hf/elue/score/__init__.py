"""Scoring: task metrics (:mod:`.metrics`), the ElasticBERT reference curve (:mod:`.reference`) and the ELUE
score with its parameter tracks (:mod:`.elue_score`), and the published baseline FLOPs reproduced with
:mod:`elue_hf.elue.flops` (:mod:`.baselines`). See docs/elue.md, "ELUE score and the reference curve".
"""

from __future__ import annotations

from .elue_score import (
    TRACKS,
    FileScore,
    SubmissionScore,
    TaskScore,
    format_score,
    param_track,
    score_points,
    score_submission,
)
from .metrics import (
    accuracy,
    average_ranks,
    f1_positive,
    pearson,
    spearman,
    task_metric,
)
from .reference import (
    ELASTICBERT_BASE_DIMS,
    REFERENCE_ENV,
    ReferenceCurve,
    load_reference,
    recompute_imdb_reference,
    reference_curve_path,
)

__all__ = [
    "accuracy",
    "f1_positive",
    "pearson",
    "average_ranks",
    "spearman",
    "task_metric",
    "REFERENCE_ENV",
    "ReferenceCurve",
    "load_reference",
    "reference_curve_path",
    "recompute_imdb_reference",
    "ELASTICBERT_BASE_DIMS",
    "TRACKS",
    "param_track",
    "FileScore",
    "TaskScore",
    "SubmissionScore",
    "score_points",
    "score_submission",
    "format_score",
]
