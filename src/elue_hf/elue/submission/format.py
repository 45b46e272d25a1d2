"""Write and read ELUE submissions, safely (docs/elue.md, "Submission format").

Layout (a directory or one zip of it)::

    submission.json            manifest: model name, description, parameter count, module spec, files
    <task>/<point>.tsv         one file per operating point: index<TAB>pred<TAB>modules[<TAB>flops]

Reading never executes anything: the manifest is JSON, the TSVs are parsed as text, per-instance FLOPs are recomputed
from the ``modules`` shapes and the declarative ``module_spec``; a claimed mean that disagrees by more than 1% is
rejected with both numbers. Every problem raises :class:`SubmissionError` naming the file and row; explicit
:class:`SubmissionLimits` bound what is read (sizes, entries, rows, compression ratio).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Mapping, Sequence

import numpy as np

from ..flops.analytic import MFLOPS

__all__ = [
    "FORMAT",
    "MANIFEST",
    "FLOPS_TOLERANCE",
    "PARAMS_TOLERANCE",
    "params_disagreement",
    "FLOPS_TIERS",
    "flops_tier_of",
    "SubmissionError",
    "SubmissionLimits",
    "PredictionFile",
    "SubmissionFile",
    "Submission",
    "exact_mean",
]

FORMAT = "elue-hf-submission/1"
MANIFEST = "submission.json"
FLOPS_TOLERANCE = 0.01  # relative disagreement allowed between claimed and recomputed mean FLOPs
#: Relative disagreement allowed between the manifest's top-level ``params`` and the count the server derives (the
#: module spec's, or the re-run model's); the counting rules are exact, this only absorbs a head of another task.
PARAMS_TOLERANCE = 0.001


def params_disagreement(declared: int, counted: int, source: str) -> str | None:
    """One sentence when the manifest's ``params`` is more than :data:`PARAMS_TOLERANCE` off ``counted`` (what
    ``source`` implies), else None."""
    if abs(int(declared) - int(counted)) <= PARAMS_TOLERANCE * int(counted):
        return None
    return (f"submission.json declares params {int(declared):,} but {source} holds {int(counted):,} "
            f"({100 * abs(int(declared) - int(counted)) / int(counted):.2f}% off; tolerance "
            f"{100 * PARAMS_TOLERANCE:g}%): declare the model's real parameter count")
#: How much a FLOPs number is worth, weakest first (docs/elue.md, "Threat model"):
#: ``self-reported`` - a number only; ``consistent`` - declared per-instance modules + module spec agree with the
#: claimed means (and the cross-checks pass); ``verified`` - the server re-ran the model and got the same.
FLOPS_TIERS = ("self-reported", "consistent", "verified")
_HEADERS = {
    b"index\tpred\tmodules": ("modules",),
    b"index\tpred\tmodules\tflops": ("modules", "flops"),
}
_SAFE_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+\-]{0,99}(/[A-Za-z0-9][A-Za-z0-9_.=+\-]{0,99}){0,3}")


class SubmissionError(ValueError):
    """The submission is invalid; nothing of it is scored."""


@dataclass(frozen=True)
class SubmissionLimits:
    """Hard limits applied while reading (defaults fit a 6-task x 12-point submission with room to spare)."""

    max_archive_bytes: int = 512 * 2**20  # the zip (or directory total) as uploaded
    max_file_bytes: int = 256 * 2**20  # one uncompressed TSV
    max_total_bytes: int = 2 * 2**30  # all uncompressed members together
    max_manifest_bytes: int = 2**20
    max_entries: int = 512  # zip members
    max_files: int = 256  # prediction files in the manifest
    max_rows: int = 1_000_000  # rows per prediction file (also capped by the task's test-set size)
    max_line_bytes: int = 1536  # one TSV row (a 12-layer token-level dynamic modules string is ~600 bytes)
    max_compression_ratio: float = 200.0  # uncompressed / compressed, per zip member (real TSVs: ~10-30)


@dataclass
class PredictionFile:
    """One operating point to write: predictions plus ``modules`` strings and/or self-reported MFLOPs per instance."""

    task: str
    predictions: Sequence
    modules: Sequence[str] | None = None
    flops: Sequence[float] | None = None  # self-reported MFLOPs per instance (methods the spec cannot express)
    label: str = ""
    params: int | None = None  # parameters of this operating point if it differs from the submission's
    max_seq_length: int | None = None
    module_spec: Mapping | None = None  # overrides the submission's spec for this file (e.g. other label count)
    settings: Mapping | None = None  # exit settings to re-run it: {"exit": "static", "layers": 3} (docs/elue.md)


@dataclass
class SubmissionFile:
    """One parsed prediction file (rows sorted by index)."""

    path: str
    task: str
    label: str
    predictions: np.ndarray
    mflops: np.ndarray  # per instance
    mean_mflops: float
    flops_source: str  # "modules" (recomputed from declared modules) or "self-reported"
    params: int
    claimed_mean_mflops: float | None = None
    max_seq_length: int | None = None
    modules: list | None = None  # the raw modules column in index order (for the cross-checks), when declared
    module_spec: dict | None = None  # the spec this file's modules are read with

    @property
    def flops_tier(self) -> str:
        """``consistent`` (FLOPs recomputed from declared modules) or ``self-reported``; never ``verified`` (only
        a server re-run makes that)."""
        return flops_tier_of([self.flops_source])


@dataclass
class Submission:
    model_name: str
    description: str
    params: int
    files: list[SubmissionFile]
    module_spec: dict | None = None
    manifest: dict = field(default_factory=dict)
    checks: dict = field(default_factory=dict)  # what the cross-checks covered (see .checks.cross_check)

    def by_task(self) -> dict[str, list[SubmissionFile]]:
        out: dict[str, list[SubmissionFile]] = {}
        for f in self.files:
            out.setdefault(f.task, []).append(f)
        return out

def flops_tier_of(sources) -> str:
    """The tier of a set of files' FLOPs sources: the weakest one (``modules`` -> consistent)."""
    sources = list(sources)
    return "consistent" if sources and all(s == "modules" for s in sources) else "self-reported"


def exact_mean(values) -> float:
    """Correctly rounded mean of floats (exact rational sum), so N copies of x average to exactly x."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise SubmissionError("cannot average zero values")
    if np.all(values == values[0]):
        return float(values[0])
    total = sum(map(Fraction, values.tolist()), Fraction(0))
    return float(total / values.size)


def _mean_from_macs(macs: np.ndarray) -> float:
    """Mean MFLOPs from integer MACs, exactly rounded: 2 * sum / (N * 1e6); the sum never wraps (int64 only when
    it provably fits, Python ints otherwise)."""
    if macs.dtype.kind not in "iu":
        return exact_mean(2.0 * macs / MFLOPS)
    if macs.size == 0:
        raise SubmissionError("cannot average zero values")
    if int(macs.min()) < 0:
        raise SubmissionError("negative MACs")
    fits = int(macs.max()) <= np.iinfo(np.int64).max // int(macs.size)
    total = int(np.sum(macs, dtype=np.int64)) if fits else sum(map(int, macs.tolist()))
    return float(Fraction(2 * total, int(macs.size) * int(MFLOPS)))
