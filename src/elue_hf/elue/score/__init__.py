"""Scoring: task metrics (:mod:`.metrics`), the ElasticBERT reference curve (:mod:`.reference`) and the ELUE
score with its parameter tracks (:mod:`.elue_score`). See docs/elue.md, "ELUE score".
"""

from __future__ import annotations

from .metrics import (
    accuracy,
    f1_positive,
    pearson,
    average_ranks,
    spearman,
    task_metric,
)
from .reference import (
    REFERENCE_ENV,
    ReferenceCurve,
    load_reference,
    reference_curve_path,
    recompute_imdb_reference,
    ELASTICBERT_BASE_DIMS,
    check_reference_complete,
)
from .elue_score import (
    TRACKS,
    param_track,
    FileScore,
    TaskScore,
    SubmissionScore,
    score_points,
    score_submission,
    format_score,
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
    "check_reference_complete",
    "TRACKS",
    "param_track",
    "FileScore",
    "TaskScore",
    "SubmissionScore",
    "score_points",
    "score_submission",
    "format_score",
]
