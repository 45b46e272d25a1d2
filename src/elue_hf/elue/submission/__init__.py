"""ELUE submissions: the format (:mod:`.format`), writing (:mod:`.write`) and safe reading (:mod:`.read`).

See docs/elue.md, "Submission format".
"""

from __future__ import annotations

from ..flops.module_spec import format_modules
from .format import (
    FLOPS_TIERS,
    FLOPS_TOLERANCE,
    FORMAT,
    MANIFEST,
    PredictionFile,
    Submission,
    SubmissionError,
    SubmissionFile,
    SubmissionLimits,
    exact_mean,
    flops_tier_of,
)
from .read import parse_predictions_tsv, read_submission
from .write import submission_bytes, write_submission, zip_submission

__all__ = [
    "FORMAT",
    "MANIFEST",
    "FLOPS_TOLERANCE",
    "FLOPS_TIERS",
    "flops_tier_of",
    "SubmissionError",
    "SubmissionLimits",
    "PredictionFile",
    "SubmissionFile",
    "Submission",
    "exact_mean",
    "write_submission",
    "zip_submission",
    "submission_bytes",
    "read_submission",
    "parse_predictions_tsv",
    "format_modules",
]
