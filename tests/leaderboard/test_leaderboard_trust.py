"""Only what was checked is ranked (issue 18 item 1): the lies that passed the cross-checks stay out of the default
ranking, and a verified entry shows the re-run's figures, never the submitter's."""

from __future__ import annotations

import numpy as np
import pytest

from elue_hf.elue.score.reference import load_reference
from elue_hf.elue.tasks import TASK_KEYS, TASKS, get_task
from elue_hf.leaderboard.ranking import elue_rows, rank_of, task_points, track_rows
from elue_hf.leaderboard.records import EntryRecord, PointRecord, with_verification, without_verification
from elue_hf.leaderboard.seed import seed_store
from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.leaderboard.submit import SubmitError, UploadLimits, submit_file
from elue_hf.spaces.leaderboard.views import elue_frame, task_frame, unranked_frame
from tests.helpers.leaderboard import gold_labels, make_submission, manifest_of, write_zip, zip_members

SST2 = get_task("sst-2")
LIMITS = UploadLimits(max_submissions_per_day=0)


@pytest.fixture(scope="module")
def gold():
    """SST-2 gold labels of the ELUE test set's size (2,210 rows), so entries are scored 'on the ELUE test set'."""
    return gold_labels(("sst-2",), n=SST2.test_size, seed=3)


def rerun_report(entry: EntryRecord, shift: float = 0.0, flops_factor: float = 1.0, params: int = 109_000_000):
    """A verification report as the re-run writes it: per file the re-run's metrics, MFLOPs and params."""
    return {"verified": True, "model": {"id": "me/model", "revision": None, "architecture": "elasticbert",
                                        "params": params},
            "files": {f"{p.task}/{p.label}.tsv": {
                "task": p.task, "label": p.label, "ok": True, "agreement": 0.995,
                "rerun_metrics": {"acc": p.performance + shift, "score": p.performance + shift},
                "rerun_mflops": p.mflops * flops_factor, "rerun_params": p.params}
                for p in entry.points}}


def verify(store: SQLiteStore, entry_id: str, report: dict) -> EntryRecord:
    store.enqueue_verification(entry_id, "kept.zip", "2026-01-01T00:00:00+00:00")
    job = store.claim_verification("2026-01-01T00:00:01+00:00")
    assert job.entry_id == entry_id
    assert store.finish_verification(entry_id, True, report, "2026-01-01T00:00:02+00:00")
    return store.get_entry(entry_id)


def lie(entry_id: str, residual: float, tier: str, params: int = 40_000_000) -> EntryRecord:
    """A stored lie as the issue found them: every task, a high ELUE score, a tier below verified."""
    points = tuple(PointRecord(task=t, label="k=1", performance=90.0 + residual, mflops=10.0, params=params,
                               residual=residual, flops_source="modules" if tier == "consistent" else "self-reported")
                   for t in TASK_KEYS)
    return EntryRecord(entry_id=entry_id, model_name=entry_id, source="submission", params=params,
                       elue_score=residual, partial_elue_score=residual, task_scores={t: residual for t in TASK_KEYS},
                       flops_tier=tier, points=points)


def test_the_seven_lies_never_rank_above_an_honest_verified_entry(tmp_path, gold):
    store = SQLiteStore(tmp_path / "lb.db")
    seed_store(store)
    honest = submit_file(store, make_submission(tmp_path, gold, name="honest", depths=(6,), accuracy=0.9), gold,
                         submitter="honest", limits=LIMITS)
    # Lies stored through the submit path: 6-layer-accurate predictions declared as 1-layer rows, self-reported FLOPs
    rows_lie = submit_file(store, make_submission(tmp_path, gold, name="one-layer-rows", depths=(1,), accuracy=0.95,
                                                  seed=1), gold, submitter="liar", limits=LIMITS)
    tiny_flops = submit_file(store, make_submission(tmp_path, gold, name="self-reported", depths=(1,), accuracy=0.95,
                                                    seed=2, self_reported=True), gold, submitter="liar", limits=LIMITS)
    # ... and as the issue found them stored: exits at layers 1-2, a tiny module spec (0.0 MParams), another tokenizer
    stored = [lie("early-exits-1", 2.89, "consistent"), lie("early-exits-2", 2.5, "consistent"),
              lie("tiny-spec", 1.82, "consistent", params=1), lie("tiny-flops", 1.82, "self-reported"),
              lie("short-tokenizer", 1.21, "consistent")]
    for entry in stored:
        store.add_entry(entry)
    lies = {rows_lie.entry.entry_id, tiny_flops.entry.entry_id, *(e.entry_id for e in stored)}
    assert rows_lie.entry.task_scores["sst-2"] > honest.entry.task_scores["sst-2"]  # the lies score higher
    assert rows_lie.rank.describe() == ("not ranked: consistent FLOPs, awaiting verification (listed apart from the "
                                        "ranking of verified entries and published rows)")
    verified = verify(store, honest.entry.entry_id, rerun_report(honest.entry))
    entries = store.entries()
    ranked_ids = {r["entry_id"] for r in elue_rows(entries)}
    assert verified.entry_id in ranked_ids and not ranked_ids & lies
    assert not {g["entry_id"] for t in ("40M", "55M", "70M", "110M") for g in track_rows(entries, t)} & lies
    info = rank_of(entries, verified.entry_id)
    assert info.unranked is None and "SST-2 rank" in info.describe() and "sst-2" in info.tasks
    for entry_id in lies:
        assert rank_of(entries, entry_id).describe().startswith("not ranked: ")
    sst = task_points(entries, "sst-2")
    assert not any(r["pareto"] for r in sst if r["entry_id"] in lies)
    assert not set(elue_frame(entries)["Entry"]) & lies and set(unranked_frame(entries)["Entry"]) == lies
    table = task_frame(entries, TASKS["sst-2"])
    assert set(table[table["Model"].isin(["one-layer-rows", "self-reported"])]["Pareto"]) == {""}


def test_a_verified_entry_shows_the_rerun_figures(tmp_path, gold):
    store = SQLiteStore(tmp_path / "lb.db")
    entry = submit_file(store, make_submission(tmp_path, gold, name="m", depths=(3, 6)), gold, limits=LIMITS).entry
    # the re-run agrees within its tolerances, but 0.5 points lower and with 0.86% more FLOPs than submitted
    report = rerun_report(entry, shift=-0.5, flops_factor=1.0086, params=123_456_789)
    shown = verify(store, entry.entry_id, report)
    curve = load_reference()["sst-2"]
    assert shown.verified and shown.params == 123_456_789
    for before, after in zip(entry.points, shown.points):
        assert after.performance == round(before.performance - 0.5, 1)
        assert after.mflops == pytest.approx(before.mflops * 1.0086) and after.flops_tier == "verified"
        assert after.residual == pytest.approx(after.performance - float(curve(after.mflops)))
    assert shown.task_scores["sst-2"] == pytest.approx(np.mean([p.residual for p in shown.points]))
    assert shown.partial_elue_score == pytest.approx(shown.task_scores["sst-2"])
    # the submitter's figures are kept aside; without the verification they come back (the Hub replicas rely on it)
    back = without_verification(shown)
    assert [p.performance for p in back.points] == [p.performance for p in entry.points]
    assert back.task_scores == entry.task_scores and back.params == entry.params and back.flops_tier == "consistent"
    assert with_verification(back, report) == shown  # deterministic: every replica settles on the same figures


def test_a_report_without_rerun_figures_raises_the_tier_only():
    entry = lie("old", 1.0, "consistent")
    raised = with_verification(entry, {"throughput": {"batch_1": 3.0}})
    assert raised.verified and raised.points[0].performance == entry.points[0].performance
    assert without_verification(raised) == entry


def test_declared_params_that_disagree_with_the_spec_are_refused(tmp_path, gold):
    store = SQLiteStore(tmp_path / "lb.db")
    zipped = make_submission(tmp_path, gold, name="p", depths=(3,))
    manifest = manifest_of(zipped)
    members = zip_members(zipped)
    for declared, message in ((1, "a point cannot use more parameters than the model holds"),
                              (manifest["params"] * 2, "but its module spec holds")):
        bad = write_zip(tmp_path / f"params-{declared}.zip", {
            **members, "submission.json": __import__("json").dumps({**manifest, "params": declared})})
        for store_result in (False, True):
            with pytest.raises(SubmitError, match=message):
                submit_file(store, bad, gold, limits=LIMITS, store_result=store_result)
    assert store.count() == 0
