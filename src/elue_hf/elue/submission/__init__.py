"""ELUE submissions: the format (:mod:`.format`), writing (:mod:`.write`) and safe reading (:mod:`.read`).

See docs/elue.md, "Submission format".
"""

from __future__ import annotations

from .format import (
    FORMAT,
    MANIFEST,
    FLOPS_TOLERANCE,
    SubmissionError,
    SubmissionLimits,
    PredictionFile,
    SubmissionFile,
    Submission,
    exact_mean,
)
from .write import write_submission, zip_submission, submission_bytes
from .read import read_submission, parse_predictions_tsv
from ..flops.module_spec import format_modules

__all__ = [
    "FORMAT",
    "MANIFEST",
    "FLOPS_TOLERANCE",
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
