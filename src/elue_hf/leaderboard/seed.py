"""Seed entries: the ElasticBERT-base reference curve and the rows published in the ELUE and HashEE papers.

Every number comes from ``published.json`` (copied from the papers' tables; see docs/elasticbert.md, "Published
numbers", and docs/elue.md, "ELUE score and the reference curve") or from the ELUE core's shipped reference
curve; nothing is rescored, and every entry says where it comes from. Two values are *derived*, and marked so:

- HashEE Tab. 2 gives per-task speed-ups over BERT-base FLOPs; a point's MFLOPs is the 12-layer reference MFLOPs of
  that task (ElasticBERT-base and BERT-base have the same FLOPs) divided by the published speed-up (rounded to 0.1x);
- parameter counts of ElasticBERT-base depths come from the ELUE counting rule (docs/elue.md, "Parameter counting").
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Mapping

from ..elue.flops.params import encoder_classifier_params
from ..elue.score import score_points
from ..elue.score.reference import ReferenceCurve, load_reference
from ..elue.tasks import TASK_KEYS
from .records import EntryRecord, PointRecord

__all__ = ["published_data", "paper_entries", "reference_entry", "seed_entries", "seed_store", "REFERENCE_ENTRY_ID"]

REFERENCE_ENTRY_ID = "reference-elasticbert-base"
_SEED_DATE = "2022-07-10T00:00:00+00:00"  # NAACL 2022; seeded rows sort before any submission


@lru_cache(maxsize=1)
def _published_text() -> str:
    return resources.files("elue_hf.leaderboard").joinpath("published.json").read_text(encoding="utf-8")


def published_data() -> dict:
    """The published tables as stored in ``published.json`` (a fresh copy)."""
    doc = json.loads(_published_text())
    if doc.get("format") != "elue-hf-published/1":
        raise ValueError("published.json has an unknown format")
    return doc


def _layer_point(curve: ReferenceCurve, layers: int) -> float | None:
    for f, lay in zip(curve.mflops, curve.layers):
        if lay == layers:
            return float(f)
    return None


def _static_points(row: Mapping, params: int, table: str) -> list[PointRecord]:
    return [
        PointRecord(task=t, label="static (paper)", performance=perf, params=params, flops_source="none",
                    note=f"{table}; only the six-task mean FLOPs ({row['mean_mflops']:,} MFLOPs) is published")
        for t, perf in row["tasks"].items()
    ]


def _speedup_points(row: Mapping, curves: Mapping[str, ReferenceCurve], params: int | None) -> list[PointRecord]:
    points = []
    for t, (perf, speedup) in row["tasks"].items():
        full = _layer_point(curves[t], 12)
        mflops = None if full is None else full / float(speedup)
        note = f"{row['table']}: {speedup}x fewer FLOPs than BERT-base"
        if mflops is not None:
            note += f"; MFLOPs = 12-layer reference {full:g} / {speedup}"
            if curves[t].provisional:
                note += " (provisional IMDb FLOPs)"
        points.append(PointRecord(task=t, label="paper", performance=perf, mflops=mflops, params=params,
                                  flops_source="derived" if mflops is not None else "none", note=note))
    return points


def _paper_entry(row: Mapping, papers: Mapping, curves: Mapping[str, ReferenceCurve]) -> EntryRecord:
    paper = papers[row["paper"]]
    tables, points, extra = [], [], {"paper": row["paper"], "url": paper["url"]}
    params = None
    if "static_layers" in row:
        params = encoder_classifier_params(int(row["static_layers"]))
        extra["params_note"] = f"ELUE count of ElasticBERT-base static {row['static_layers']} layers"
    task_scores, elue = {}, None
    if "elue_scores" in row:
        block = row["elue_scores"]
        tables.append(block["table"])
        task_scores, elue = dict(block["tasks"]), block["average"]
    if "static" in row:
        block = row["static"]
        tables.append(block["table"])
        params = int(block["params_m"]) * 10**6
        extra.update(mean_mflops=float(block["mean_mflops"]), published_average=float(block["average"]),
                     params_note="published, rounded to 1M")
        points += _static_points(block, params, block["table"])
    if "speedup_table" in row:
        block = row["speedup_table"]
        tables.append(block["table"])
        elue = block["score"]
        points += _speedup_points(block, curves, params)
    return EntryRecord(
        entry_id=f"paper-{row['id']}", model_name=row["model"], source="paper",
        description=f"as published in {paper['short']}",
        citation=f"{paper['short']}, {' and '.join(tables)}: {paper['title']} ({paper['where']})",
        params=params, elue_score=elue, task_scores=task_scores,
        provisional=any(p.task == "imdb" and p.flops_source == "derived" and curves["imdb"].provisional
                        for p in points),
        created_at=_SEED_DATE, points=tuple(points), extra=extra,
    )


def paper_entries(reference=None) -> list[EntryRecord]:
    """One entry per (paper, model) row of ``published.json``."""
    doc = published_data()
    curves = reference if isinstance(reference, Mapping) else load_reference(reference)
    return [_paper_entry(row, doc["papers"], curves) for row in doc["entries"]]


def reference_entry(reference=None) -> EntryRecord:
    """The ElasticBERT-base reference curve as an entry: its published points, scoring exactly 0.0 by construction."""
    curves = reference if isinstance(reference, Mapping) else load_reference(reference)
    points = []
    for t in TASK_KEYS:
        curve = curves[t]
        for f, perf, layers, src in zip(curve.mflops, curve.performance, curve.layers, curve.sources):
            points.append(PointRecord(
                task=t, label=f"L={layers}", performance=perf, mflops=f,
                params=encoder_classifier_params(layers) if isinstance(layers, int) else None,
                residual=perf - float(curve(f)), reference_performance=float(curve(f)), flops_source="reference",
                note=src + (" (provisional IMDb FLOPs)" if curve.provisional else ""),
            ))
    scored = score_points({t: [(p.performance, p.mflops) for p in points if p.task == t] for t in curves}, curves)
    return EntryRecord(
        entry_id=REFERENCE_ENTRY_ID, model_name="ElasticBERT-base (reference curve)", source="reference",
        description="ElasticBERT-base static at the published depths: the baseline of the ELUE score",
        citation="ELUE reference curve: layers 3 (Sun et al. 2022, Tab. 2), 6 and 12 (Liu et al. 2022, Tab. 3), "
                 "SST-2 layer 4 (ELUE website chart); FLOPs by the ELUE rules",
        params=encoder_classifier_params(12), elue_score=scored["elue_score"],
        partial_elue_score=scored["partial_elue_score"], task_scores=scored["tasks"],
        provisional=any(c.provisional for c in curves.values()), created_at=_SEED_DATE,
        points=tuple(points), extra={"layers_params_note": "ELUE count of ElasticBERT-base static L layers"},
    )


def seed_entries(reference=None) -> list[EntryRecord]:
    curves = reference if isinstance(reference, Mapping) else load_reference(reference)
    return [reference_entry(curves), *paper_entries(curves)]


def seed_store(store, reference=None) -> int:
    """Add the reference and published entries missing from ``store`` (idempotent); returns how many were added."""
    return store.ensure_entries(seed_entries(reference))

