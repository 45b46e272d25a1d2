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
from ..elue.tasks import TASK_KEYS, TASKS, get_task
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
    "METRIC_DECIMALS",
    "shown_metric",
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
    def other_data(self) -> str:
        """Empty when the entry was scored on the ELUE test set; otherwise a phrase saying it was not
        (``extra["other_data"]``, written at submit time from the manifest's ``extra.data_name`` and the server's
        test-set sizes). Such an entry is never ranked against the papers' rows."""
        if self.source != "submission":
            return ""
        value = self.extra.get("other_data")
        if value is None or value == "":
            return ""
        return value[:300] if isinstance(value, str) else "not scored on the ELUE test set"

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


#: Decimals of every metric the leaderboard stores and shows (x100 points): what the ranking needs, and no more
#: (a finer metric tells more about the gold labels; docs/elue.md, "Hostile uploads and the label oracle").
METRIC_DECIMALS = 1


def shown_metric(value: float) -> float:
    """A metric (x100) as the leaderboard stores and shows it: rounded to :data:`METRIC_DECIMALS`."""
    return round(float(value), METRIC_DECIMALS)


def _scores(points) -> tuple[dict, float | None, float | None]:
    """(task scores, ELUE score, partial ELUE score) of points whose residuals are set."""
    by_task: dict[str, list[float]] = {}
    for p in points:
        by_task.setdefault(p.task, []).append(p.residual)
    tasks = {t: float(np.mean(by_task[t])) for t in TASK_KEYS if t in by_task}
    partial = float(np.mean(list(tasks.values()))) if tasks else None
    return tasks, (partial if len(tasks) == len(TASK_KEYS) else None), partial


def _rerun_rows(report: Mapping) -> list[dict]:
    """The per-file re-run figures of a verification report (rows with task, label, re-run metrics, MFLOPs and
    params); rows without them (reports written before re-run figures existed) are left out."""
    files = report.get("files") if isinstance(report, Mapping) else None
    rows = []
    for row in (files.values() if isinstance(files, Mapping) else ()):
        if not isinstance(row, Mapping) or not isinstance(row.get("rerun_metrics"), Mapping):
            continue
        try:
            rows.append({"task": _task_key(row.get("task"), "re-run task"), "label": _text(row.get("label"), "label"),
                         "metrics": _metrics(row["rerun_metrics"], "re-run metrics"),
                         "mflops": _opt_float(row.get("rerun_mflops"), "re-run mflops"),
                         "params": _opt_positive_int(row.get("rerun_params"), "re-run params")})
        except RecordError:
            continue
    return [r for r in rows if r["metrics"].get("score") is not None and r["mflops"] and r["mflops"] > 0]


def _submitted_copy(entry: EntryRecord) -> dict:
    """What a re-run replaces, kept in ``extra["submitted"]`` so :func:`without_verification` can restore it."""
    return {"params": entry.params, "elue_score": entry.elue_score, "partial_elue_score": entry.partial_elue_score,
            "task_scores": dict(entry.task_scores),
            "points": [[p.performance, p.mflops, p.params, p.residual, p.reference_performance] for p in entry.points]}


def _restore_submitted(entry: EntryRecord) -> EntryRecord:
    kept = entry.extra.get("submitted")
    if not isinstance(kept, Mapping) or len(kept.get("points") or ()) != len(entry.points):
        return entry
    names = ("performance", "mflops", "params", "residual", "reference_performance")
    points = tuple(replace(p, **dict(zip(names, values)), metrics={})
                   for p, values in zip(entry.points, kept["points"]))
    return replace(entry, points=points, params=kept.get("params"), elue_score=kept.get("elue_score"),
                   partial_elue_score=kept.get("partial_elue_score"), task_scores=kept.get("task_scores") or {},
                   extra={k: v for k, v in entry.extra.items() if k != "submitted"})


def without_verification(entry: EntryRecord) -> EntryRecord:
    """``entry`` as it stands before any re-run: a ``verified`` point falls back to the tier of its FLOPs source
    (``self-reported`` when that names none), a ``verified`` entry to the weakest of its points, the submitter's own
    figures come back (``extra["submitted"]``), and ``extra["verification"]`` is dropped. Never raises a tier; entries
    without a ``verified`` claim or re-run figures come back equal."""
    if entry.source != "submission":
        return entry
    entry = _restore_submitted(entry)
    points = tuple(replace(p, flops_tier=_TIER_OF_SOURCE.get(p.flops_source, FLOPS_TIERS[0]))
                   if p.flops_tier == "verified" else p for p in entry.points)
    tier = weakest_tier(p.flops_tier for p in points) if entry.flops_tier == "verified" else entry.flops_tier
    extra = {k: v for k, v in entry.extra.items() if k != "verification"}
    return replace(entry, points=points, flops_tier=tier, extra=extra)


def with_verification(entry: EntryRecord, report: Mapping, curves=None) -> EntryRecord:
    """``entry`` after a re-run that agreed: it and all its points ``verified``, the report's summary in
    ``extra["verification"]`` (what :meth:`SQLiteStore.finish_verification` writes), and **the re-run's figures in
    place of the submitter's**: each point's metric, mean MFLOPs and params come from the report's row of the same
    task and label (rounded as :func:`shown_metric`), its residual from the reference curve (``curves``, default
    :func:`~elue_hf.elue.score.reference.load_reference`), the task and ELUE scores from those residuals, and the
    entry's params from the re-run model's count. The submitter's figures are kept in ``extra["submitted"]``.
    A report without re-run figures (older reports) raises the tier only."""
    rows = _rerun_rows(report)
    points = [replace(p, flops_tier="verified") for p in entry.points]
    extra = {**entry.extra, "verification": verification_extra(report)}
    changes: dict = {}
    if rows:
        from ..elue.score.reference import load_reference

        curves = curves if curves is not None else load_reference()
        extra["submitted"] = _submitted_copy(entry)
        for i, p in enumerate(points):
            row = next((r for r in rows if (r["task"], r["label"]) == (p.task, p.label)), None)
            if row is None:
                continue
            rows.remove(row)
            performance = shown_metric(row["metrics"]["score"])
            reference = float(curves[p.task](row["mflops"]))
            points[i] = replace(p, performance=performance, mflops=row["mflops"], params=row["params"] or p.params,
                                metrics={TASKS[p.task].metric: performance},
                                reference_performance=reference, residual=performance - reference)
        tasks, elue, partial = _scores(points)
        changes = {"task_scores": tasks, "elue_score": elue, "partial_elue_score": partial}
        model = report.get("model")
        params = model.get("params") if isinstance(model, Mapping) else None
        if isinstance(params, int) and not isinstance(params, bool) and params > 0:
            changes["params"] = params
    return replace(entry, points=tuple(points), flops_tier="verified", extra=extra, **changes)


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


def _shown_point(fs, max_seq_length) -> PointRecord:
    """A scored file as the leaderboard keeps it: its main metric rounded (:func:`shown_metric`), the residual and
    so the task and ELUE scores computed from that rounded value, no other metric."""
    performance = shown_metric(fs.performance)
    metric = TASKS[fs.task].metric
    return PointRecord(
        task=fs.task, label=fs.label, performance=performance, mflops=fs.mean_mflops, params=fs.params,
        residual=performance - fs.reference_performance, reference_performance=fs.reference_performance,
        flops_source=fs.flops_source, metrics={metric: performance}, max_seq_length=max_seq_length,
    )


def entry_from_score(score, submission, *, digest: str | None = None, submitter: str = "",
                     entry_id: str | None = None, created_at: str | None = None, other_data: str = "") -> EntryRecord:
    """An :class:`EntryRecord` from the ELUE core's ``SubmissionScore`` and the ``Submission`` it scored: metrics
    rounded to :data:`METRIC_DECIMALS` (what the ranking needs), scores computed from the rounded metrics.

    ``other_data``: a phrase saying the gold was not the ELUE test set (empty when it was)."""
    seq = {f.path: f.max_seq_length for f in submission.files}
    points = tuple(_shown_point(fs, seq.get(fs.path)) for ts in score.tasks.values() for fs in ts.files)
    task_scores, elue_score, partial = _scores(points)
    digest = digest if digest is not None else submission_digest(submission)
    return EntryRecord(
        entry_id=entry_id or entry_id_for(digest),
        model_name=submission.model_name,
        source="submission",
        description=submission.description[:_MAX_TEXT],
        params=int(submission.params),
        elue_score=elue_score,
        partial_elue_score=partial,
        task_scores=task_scores,
        provisional=bool(score.provisional),
        flops_tier=score.flops_tier,
        created_at=created_at or utc_now(),
        digest=digest,
        submitter=submitter[:100],
        points=points,
        extra={"missing_tasks": list(score.missing_tasks),
               **({"checks_skipped": submission.checks["skipped"]} if submission.checks.get("skipped") else {}),
               **({"other_data": other_data} if other_data else {})},
    )
