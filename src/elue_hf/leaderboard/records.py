"""Leaderboard records: one :class:`EntryRecord` per model (a scored submission, a published row or the reference
curve) holding its :class:`PointRecord` operating points, with strict validation and a JSON form.

The JSON form is what the Hub store keeps (``entries/<entry_id>.json``) and what :meth:`EntryRecord.from_dict`
accepts back; every field is type-checked there, so a tampered file is refused instead of trusted. Nothing is ever
unpickled or executed.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Mapping

import numpy as np

from ..elue.submission.format import FLOPS_TIERS
from ..elue.tasks import TASK_KEYS, get_task
from ..validators import finite_number, load_json, positive_int, require

__all__ = [
    "SOURCES",
    "FLOPS_SOURCES",
    "FLOPS_TIERS",
    "RecordError",
    "PointRecord",
    "EntryRecord",
    "entry_from_score",
    "VERIFICATION_KEYS",
    "verification_extra",
    "without_verification",
    "with_verification",
    "submission_digest",
    "new_entry_id",
    "entry_id_for",
    "utc_now",
]

#: Where an entry's numbers come from: an uploaded and scored submission, a paper's table, the reference curve.
SOURCES = ("submission", "paper", "reference")
#: How a point's FLOPs are known: recomputed from declared ``modules`` + module spec, self-reported by the
#: submitter, published in a paper, derived from a published speed-up, or the reference curve's own FLOPs.
FLOPS_SOURCES = ("modules", "self-reported", "published", "derived", "reference", "none")
#: The tier a submitted point starts at, by its FLOPs source (``verified`` only comes from a server re-run).
_TIER_OF_SOURCE = {"modules": "consistent", "self-reported": "self-reported"}
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,79}")
_MAX_TEXT = 2000
_MAX_POINTS = 1000


class RecordError(ValueError):
    """An entry or point that does not satisfy the leaderboard schema."""


def _require(cond, message: str) -> None:
    require(cond, message, RecordError)


def _text(value, what: str, limit: int = _MAX_TEXT, allow_empty: bool = True) -> str:
    _require(isinstance(value, str), f"{what} must be a string, got {type(value).__name__}")
    _require(len(value) <= limit, f"{what} is longer than {limit} characters")
    _require(allow_empty or value.strip() != "", f"{what} must not be empty")
    return value


def _opt_float(value, what: str) -> float | None:
    return None if value is None else finite_number(value, what, RecordError, maximum=1e15)


def _opt_positive_int(value, what: str) -> int | None:
    return None if value is None else positive_int(value, what, RecordError)


def _task_key(value, what: str) -> str:
    try:
        return get_task(value).key
    except (ValueError, TypeError, KeyError) as err:
        raise RecordError(f"{what}: {err}") from None


def _metrics(value, what: str) -> dict[str, float]:
    _require(isinstance(value, Mapping), f"{what} must be an object of metric name -> number")
    return {_text(k, f"{what} key", 40): _opt_float(v, f"{what}[{k!r}]") for k, v in value.items()}


@dataclass(frozen=True)
class PointRecord:
    """One operating point of one task: its metric (x100) and what it cost."""

    task: str
    label: str
    performance: float
    mflops: float | None = None  # mean MFLOPs per instance (ELUE rules); None when not published per task
    params: int | None = None  # parameters this operating point uses
    residual: float | None = None  # performance - p_EB(mflops), the point's ELUE contribution
    reference_performance: float | None = None
    flops_source: str = "modules"
    metrics: Mapping[str, float] = field(default_factory=dict)
    max_seq_length: int | None = None
    note: str = ""
    flops_tier: str | None = None  # submissions: self-reported / consistent / verified; None for published rows

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "task", _task_key(self.task, "point task"))
        set_(self, "label", _text(self.label, "point label", 200))
        performance = _opt_float(self.performance, f"{self.task} performance")
        _require(performance is not None, f"{self.task} {self.label!r}: performance is required")
        set_(self, "performance", performance)
        mflops = _opt_float(self.mflops, f"{self.task} mflops")
        _require(mflops is None or mflops > 0, f"{self.task} {self.label!r}: mflops must be > 0")
        set_(self, "mflops", mflops)
        set_(self, "params", _opt_positive_int(self.params, f"{self.task} params"))
        set_(self, "residual", _opt_float(self.residual, f"{self.task} residual"))
        set_(self, "reference_performance", _opt_float(self.reference_performance, f"{self.task} reference"))
        _require(self.flops_source in FLOPS_SOURCES,
                 f"flops_source must be one of {FLOPS_SOURCES}, got {self.flops_source!r}")
        set_(self, "metrics", _metrics(self.metrics, f"{self.task} metrics"))
        set_(self, "max_seq_length", _opt_positive_int(self.max_seq_length, f"{self.task} max_seq_length"))
        set_(self, "note", _text(self.note, "point note"))
        tier = _TIER_OF_SOURCE.get(self.flops_source) if self.flops_tier is None else self.flops_tier
        _require(tier is None or tier in FLOPS_TIERS, f"flops_tier must be one of {FLOPS_TIERS} or null, got {tier!r}")
        set_(self, "flops_tier", tier)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["metrics"] = dict(self.metrics)
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> "PointRecord":
        _require(isinstance(data, Mapping), "a point must be a JSON object")
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        _require(not unknown, f"unknown point fields {sorted(unknown)}")
        _require({"task", "label", "performance"} <= set(data), "a point needs task, label and performance")
        return cls(**dict(data))


@dataclass(frozen=True)
class EntryRecord:
    """One leaderboard entry: a model's scores and operating points, with where they come from."""

    entry_id: str
    model_name: str
    source: str
    description: str = ""
    citation: str = ""  # where published numbers come from (paper, table); empty for submissions
    params: int | None = None
    elue_score: float | None = None  # mean over all six tasks; None when a task is missing
    partial_elue_score: float | None = None  # mean over the tasks present (submissions only)
    task_scores: Mapping[str, float] = field(default_factory=dict)  # per-task ELUE score (mean residual)
    provisional: bool = False  # leans on provisional reference FLOPs (IMDb)
    flops_tier: str | None = None  # submissions: the weakest tier of its points (FLOPS_TIERS); None otherwise
    created_at: str = ""
    digest: str | None = None  # content hash of a submission (duplicates are refused)
    submitter: str = ""
    points: tuple[PointRecord, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        set_ = object.__setattr__
        _require(isinstance(self.entry_id, str) and _ID.fullmatch(self.entry_id) is not None,
                 f"entry_id {self.entry_id!r} must match {_ID.pattern}")
        set_(self, "model_name", _text(self.model_name, "model_name", 200, allow_empty=False).strip())
        _require(self.source in SOURCES, f"source must be one of {SOURCES}, got {self.source!r}")
        set_(self, "description", _text(self.description, "description"))
        set_(self, "citation", _text(self.citation, "citation"))
        set_(self, "params", _opt_positive_int(self.params, "params"))
        set_(self, "elue_score", _opt_float(self.elue_score, "elue_score"))
        set_(self, "partial_elue_score", _opt_float(self.partial_elue_score, "partial_elue_score"))
        _require(isinstance(self.task_scores, Mapping), "task_scores must be an object of task -> score")
        scores = {_task_key(k, "task_scores"): _opt_float(v, f"task_scores[{k!r}]")
                  for k, v in self.task_scores.items()}
        _require(all(v is not None for v in scores.values()), "task_scores values must be numbers")
        set_(self, "task_scores", {t: scores[t] for t in TASK_KEYS if t in scores})
        _require(isinstance(self.provisional, bool), "provisional must be true or false")
        set_(self, "created_at", _text(self.created_at, "created_at", 40))
        _require(self.digest is None or (isinstance(self.digest, str) and re.fullmatch(r"[0-9a-f]{64}", self.digest)),
                 "digest must be a sha256 hex string or null")
        set_(self, "submitter", _text(self.submitter, "submitter", 100))
        _require(isinstance(self.points, (list, tuple)), "points must be a list")
        _require(len(self.points) <= _MAX_POINTS, f"at most {_MAX_POINTS} points per entry")
        points = tuple(p if isinstance(p, PointRecord) else PointRecord.from_dict(p) for p in self.points)
        set_(self, "points", points)
        if self.source != "submission":
            _require(self.flops_tier is None, f"only submissions have a flops_tier ({self.source} entry)")
        else:
            tier = self.flops_tier if self.flops_tier is not None else weakest_tier(p.flops_tier for p in points)
            _require(tier in FLOPS_TIERS, f"flops_tier must be one of {FLOPS_TIERS}, got {tier!r}")
            set_(self, "flops_tier", tier)
        _require(isinstance(self.extra, Mapping), "extra must be an object")
        try:
            extra = json.loads(json.dumps(dict(self.extra), allow_nan=False))
        except (TypeError, ValueError) as err:
            raise RecordError(f"extra must be plain JSON: {err}") from None
        _require(len(json.dumps(extra)) <= 20_000, "extra is too large")
        set_(self, "extra", extra)

    @property
    def verified(self) -> bool:
        """The server re-ran the model and it agreed with every point (the ``verified`` tier)."""
        return self.flops_tier == "verified"

    @property
    def tasks(self) -> list[str]:
        present = {p.task for p in self.points} | set(self.task_scores)
        return [t for t in TASK_KEYS if t in present]

    def to_dict(self) -> dict:
        out = asdict(self)
        out["points"] = [p.to_dict() for p in self.points]
        out["task_scores"] = dict(self.task_scores)
        out["extra"] = dict(self.extra)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, allow_nan=False) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping) -> "EntryRecord":
        _require(isinstance(data, Mapping), "an entry must be a JSON object")
        unknown = set(data) - set(cls.__dataclass_fields__) - {"verified"}
        _require(not unknown, f"unknown entry fields {sorted(unknown)}")
        _require({"entry_id", "model_name", "source"} <= set(data), "an entry needs entry_id, model_name and source")
        fields = dict(data)
        legacy = fields.pop("verified", None)  # entries written before the tiers: recomputed FLOPs = consistent
        if "flops_tier" not in fields and fields.get("source") == "submission" and legacy is not None:
            _require(isinstance(legacy, bool), "verified must be true or false")
            fields["flops_tier"] = "consistent" if legacy else "self-reported"
        points = fields.get("points", ())
        _require(isinstance(points, (list, tuple)), "points must be a list")
        fields["points"] = tuple(PointRecord.from_dict(p) for p in points)
        return cls(**fields)

    @classmethod
    def from_json(cls, text: str | bytes) -> "EntryRecord":
        """An entry from its JSON form (bounded depth and numbers; every field type-checked)."""
        return cls.from_dict(load_json(text, "the entry", RecordError))


def weakest_tier(tiers) -> str:
    """The weakest of some FLOPs tiers (``self-reported`` when there are none or one is unknown)."""
    ranks = [FLOPS_TIERS.index(t) if t in FLOPS_TIERS else 0 for t in tiers]
    return FLOPS_TIERS[min(ranks)] if ranks else FLOPS_TIERS[0]


#: What of a verification report travels with a verified entry (``extra["verification"]``).
VERIFICATION_KEYS = ("throughput", "machine", "model")


def verification_extra(report: Mapping) -> dict:
    """The part of a verification report kept with a verified entry (its ``extra["verification"]``)."""
    return {k: report[k] for k in VERIFICATION_KEYS if k in report}


def without_verification(entry: EntryRecord) -> EntryRecord:
    """``entry`` as it stands before any re-run: a ``verified`` point falls back to the tier of its FLOPs source
    (``self-reported`` when that names none), a ``verified`` entry to the weakest of its points, and
    ``extra["verification"]`` is dropped. Never raises a tier; entries without a ``verified`` claim come back equal."""
    if entry.source != "submission":
        return entry
    points = tuple(replace(p, flops_tier=_TIER_OF_SOURCE.get(p.flops_source, FLOPS_TIERS[0]))
                   if p.flops_tier == "verified" else p for p in entry.points)
    tier = weakest_tier(p.flops_tier for p in points) if entry.flops_tier == "verified" else entry.flops_tier
    extra = {k: v for k, v in entry.extra.items() if k != "verification"}
    return replace(entry, points=points, flops_tier=tier, extra=extra)


def with_verification(entry: EntryRecord, report: Mapping) -> EntryRecord:
    """``entry`` after a re-run that agreed: it and all its points ``verified``, the report's summary in
    ``extra["verification"]`` (what :meth:`SQLiteStore.finish_verification` writes)."""
    points = tuple(replace(p, flops_tier="verified") for p in entry.points)
    return replace(entry, points=points, flops_tier="verified",
                   extra={**entry.extra, "verification": verification_extra(report)})


def utc_now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def new_entry_id() -> str:
    return "sub-" + uuid.uuid4().hex


def entry_id_for(digest: str) -> str:
    """The id a submission with this content digest is stored under: a copy of its digest under another id is
    recognisably not the original (the Hub store keeps the keyed entry, whatever order files are read in)."""
    return "sub-" + digest[:32]


def submission_digest(submission) -> str:
    """SHA-256 of what a submission says (model, parameters, and per file: task, label, predictions, FLOPs), so the
    same results re-zipped (other timestamps, other member order) are recognised as a duplicate."""
    files = []
    for f in sorted(submission.files, key=lambda f: f.path):
        preds = np.asarray(f.predictions)
        files.append({
            "path": f.path, "task": f.task, "label": f.label, "params": int(f.params),
            "predictions": hashlib.sha256(np.ascontiguousarray(preds.astype(np.float64)).tobytes()).hexdigest(),
            "mflops": repr(float(f.mean_mflops)), "flops_source": f.flops_source,
        })
    doc = {"model_name": submission.model_name, "params": int(submission.params), "files": files}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()


def entry_from_score(score, submission, *, digest: str | None = None, submitter: str = "",
                     entry_id: str | None = None, created_at: str | None = None) -> EntryRecord:
    """An :class:`EntryRecord` from the ELUE core's ``SubmissionScore`` and the ``Submission`` it scored."""
    seq = {f.path: f.max_seq_length for f in submission.files}
    points = tuple(
        PointRecord(
            task=fs.task, label=fs.label, performance=fs.performance, mflops=fs.mean_mflops, params=fs.params,
            residual=fs.residual, reference_performance=fs.reference_performance, flops_source=fs.flops_source,
            metrics={k: v for k, v in fs.metrics.items() if k != "score"}, max_seq_length=seq.get(fs.path),
        )
        for ts in score.tasks.values()
        for fs in ts.files
    )
    digest = digest if digest is not None else submission_digest(submission)
    return EntryRecord(
        entry_id=entry_id or entry_id_for(digest),
        model_name=submission.model_name,
        source="submission",
        description=submission.description[:_MAX_TEXT],
        params=int(submission.params),
        elue_score=score.elue_score,
        partial_elue_score=score.partial_elue_score,
        task_scores={t: ts.score for t, ts in score.tasks.items()},
        provisional=bool(score.provisional),
        flops_tier=score.flops_tier,
        created_at=created_at or utc_now(),
        digest=digest,
        submitter=submitter[:100],
        points=points,
        extra={"missing_tasks": list(score.missing_tasks),
               **({"checks_skipped": submission.checks["skipped"]} if submission.checks.get("skipped") else {})},
    )
