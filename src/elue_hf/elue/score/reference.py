"""The ElasticBERT-base reference curve of the ELUE score (docs/elue.md, "ELUE score and the reference curve").

The shipped ``reference_curve.json`` holds only published points, each with its source; IMDb FLOPs are provisional
until recomputed from a local IMDb test set (:func:`recompute_imdb_reference`, CLI ``elue-hf recompute-imdb-flops``).
A different curve file can be passed explicitly or through ``$ELUE_HF_REFERENCE``.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..tasks import get_task

__all__ = [
    "REFERENCE_ENV",
    "ReferenceCurve",
    "load_reference",
    "reference_curve_path",
    "recompute_imdb_reference",
    "ELASTICBERT_BASE_DIMS",
]

REFERENCE_ENV = "ELUE_HF_REFERENCE"
REFERENCE_FORMAT = "elue-hf-reference/1"


@dataclass(frozen=True)
class ReferenceCurve:
    """p_EB(f) for one task: piecewise-linear in FLOPs, extended linearly with the end segments (no clamping)."""

    task: str
    mflops: tuple[float, ...]
    performance: tuple[float, ...]
    layers: tuple[int | None, ...] = ()
    sources: tuple[str, ...] = ()
    provisional: bool = False

    def __post_init__(self):
        f = np.asarray(self.mflops, dtype=np.float64)
        p = np.asarray(self.performance, dtype=np.float64)
        if f.ndim != 1 or f.shape != p.shape or f.size < 2:
            raise ValueError(f"{self.task}: a reference curve needs >= 2 (FLOPs, performance) points of equal count")
        if not (np.all(np.isfinite(f)) and np.all(np.isfinite(p)) and np.all(f > 0)):
            raise ValueError(f"{self.task}: reference FLOPs must be finite and > 0, performances finite")
        if np.any(np.diff(f) <= 0):
            raise ValueError(f"{self.task}: reference FLOPs must be strictly increasing (duplicates are an error)")

    @classmethod
    def from_points(cls, task: str, points: Sequence[Mapping], provisional: bool = False) -> "ReferenceCurve":
        pts = sorted(points, key=lambda p: float(p["mflops"]))
        return cls(
            task=task,
            mflops=tuple(float(p["mflops"]) for p in pts),
            performance=tuple(float(p["performance"]) for p in pts),
            layers=tuple(p.get("layers") for p in pts),
            sources=tuple(str(p.get("performance_source", "")) for p in pts),
            provisional=provisional,
        )

    def __call__(self, flops):
        """Reference performance at ``flops`` MFLOPs (scalar or array); exact at the reference points."""
        xp = np.asarray(self.mflops, dtype=np.float64)
        fp = np.asarray(self.performance, dtype=np.float64)
        x = np.asarray(flops, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{self.task}: FLOPs must be finite, got {flops!r}")
        seg = np.clip(np.searchsorted(xp, x, side="right") - 1, 0, xp.size - 2)
        slope = (fp[seg + 1] - fp[seg]) / (xp[seg + 1] - xp[seg])
        y = fp[seg] + slope * (x - xp[seg])
        hit = np.searchsorted(xp, x, side="left").clip(0, xp.size - 1)
        y = np.where(xp[hit] == x, fp[hit], y)  # exactly the published performance at a reference point
        return y.item() if y.ndim == 0 else y


def reference_curve_path() -> Path:
    """Path of the curve in use: ``$ELUE_HF_REFERENCE`` if set, else the shipped package data."""
    override = os.environ.get(REFERENCE_ENV)
    if override:
        return Path(override)
    return Path(str(resources.files("elue_hf.elue.score").joinpath("reference_curve.json")))


def _read_reference_doc(path) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"reference curve file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"reference curve {path} is not valid JSON: {err}") from None
    if not isinstance(doc, dict) or doc.get("format") != REFERENCE_FORMAT or not isinstance(doc.get("tasks"), dict):
        raise ValueError(f"{path} is not an elue-hf reference curve (format {REFERENCE_FORMAT!r} with 'tasks')")
    return doc


def load_reference(path=None) -> dict[str, ReferenceCurve]:
    """Reference curves by task key, from ``path`` (a JSON file), ``$ELUE_HF_REFERENCE`` or the package data."""
    doc = _read_reference_doc(path if path is not None else reference_curve_path())
    curves = {}
    for key, entry in doc["tasks"].items():
        task = get_task(key).key
        curves[task] = ReferenceCurve.from_points(task, entry["points"], bool(entry.get("flops_provisional", False)))
    return curves


# ------------------------------------------------------------------------------------------- IMDb recomputation

#: ElasticBERT-base / BERT-base dimensions (hidden, FFN, heads, labels) used for the reference FLOPs.
ELASTICBERT_BASE_DIMS = {"hidden": 768, "intermediate": 3072, "heads": 12, "num_labels": 2}


def recompute_imdb_reference(lengths: Sequence[int], base_path=None, max_seq_length: int = 512,
                             source: str = "") -> dict:
    """Return a reference document whose IMDb FLOPs come from real token ``lengths`` (no longer provisional).

    ``lengths`` are the IMDb test instances' token counts with [CLS]/[SEP] under bert-base-uncased, already
    truncated at ``max_seq_length``. Every IMDb point (layers L) gets the mean ElasticBERT-base static-L MFLOPs.
    """
    from ..flops import encoder_classifier_macs, macs_to_mflops

    n = np.asarray(list(lengths), dtype=np.int64)
    if n.ndim != 1 or n.size == 0 or np.any(n < 1):
        raise ValueError("lengths must be a non-empty list of positive token counts")
    if np.any(n > max_seq_length):
        raise ValueError(f"some lengths exceed max_seq_length={max_seq_length}: truncate before counting")
    doc = copy.deepcopy(_read_reference_doc(base_path if base_path is not None else reference_curve_path()))
    entry = doc["tasks"]["imdb"]
    dims = ELASTICBERT_BASE_DIMS
    for point in entry["points"]:
        layers = point.get("layers")
        if not isinstance(layers, int):
            raise ValueError("every IMDb reference point needs its layer count to be recomputed")
        macs = encoder_classifier_macs(n, dims["hidden"], dims["intermediate"], dims["heads"], layers,
                                       dims["num_labels"])
        point["mflops"] = round(float(np.mean(macs_to_mflops(macs))), 1)
        point["flops_source"] = (
            f"recomputed from {n.size} local IMDb test instances (mean {n.mean():.2f} tokens, truncation at "
            f"{max_seq_length}) with the ELUE FLOPs rules" + (f"; {source}" if source else "")
        )
    entry.update(
        flops_provisional=False, mean_tokens=round(float(n.mean()), 2), test_n=int(n.size),
        max_seq_length=max_seq_length,
    )
    entry.pop("assumed_mean_tokens", None)
    if int(n.size) != get_task("imdb").test_size:
        entry["note"] = f"computed on {n.size} instances; the ELUE IMDb test set has {get_task('imdb').test_size}"
    return doc

