"""Seeded published rows, rankings, parameter tracks, Pareto data and the view tables."""

from __future__ import annotations

import numpy as np
import pytest

from elue_hf.elue.score.reference import load_reference
from elue_hf.elue.tasks import TASK_KEYS, TASKS
from elue_hf.leaderboard.ranking import (
    Filters,
    competition_ranks,
    elue_rows,
    operating_groups,
    rank_of,
    task_points,
    track_rows,
    unranked_reason,
    unranked_rows,
)
from elue_hf.leaderboard.records import EntryRecord, PointRecord
from elue_hf.leaderboard.seed import REFERENCE_ENTRY_ID, paper_entries, published_data, reference_entry, seed_entries
from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.spaces.leaderboard.views import (
    elue_frame,
    entry_frame,
    frontier_steps,
    pareto_frames,
    task_frame,
    track_frame,
    unranked_frame,
)

SST2 = TASKS["sst-2"]


@pytest.fixture(scope="module")
def seeds():
    return seed_entries()


def by_id(entries, entry_id):
    return next(e for e in entries if e.entry_id == entry_id)


def submission(entry_id, points, params=50_000_000, elue=None, task_scores=None, tier="verified", extra=None):
    return EntryRecord(entry_id=entry_id, model_name=entry_id, source="submission", params=params, elue_score=elue,
                       partial_elue_score=elue, task_scores=task_scores or {},
                       flops_tier=tier, extra=extra or {}, description=f"about {entry_id}",
                       points=tuple(PointRecord(**p) for p in points))


# -------------------------------------------------------------------------------------------------- seeding


def test_reference_entry_scores_exactly_zero_and_carries_its_sources():
    ref = reference_entry()
    assert ref.source == "reference" and ref.entry_id == REFERENCE_ENTRY_ID
    assert ref.elue_score == 0.0 and all(ref.task_scores[t] == 0.0 for t in TASK_KEYS)
    assert all(p.residual == 0.0 for p in ref.points)
    curves = load_reference()
    assert len(ref.points) == sum(len(c.mflops) for c in curves.values())
    sst = [p for p in ref.points if p.task == "sst-2"]
    assert [(p.label, p.performance, p.mflops) for p in sst] == [
        ("L=3", 84.1, 1060.3), ("L=4", 85.72, 1413.4), ("L=6", 87.0, 2119.4), ("L=12", 88.6, 4237.6)]
    assert [round(p.params / 1e6, 2) for p in sst] == [45.69, 52.78, 66.96, 109.48]  # docs/elue.md, parameters
    assert ref.provisional  # IMDb FLOPs are provisional in the shipped curve
    assert all("provisional" in p.note for p in ref.points if p.task == "imdb")


def test_paper_rows_are_copied_not_rescored(seeds):
    doc = published_data()
    papers = [e for e in seeds if e.source == "paper"]
    assert len(papers) == len(doc["entries"]) == 30
    assert len(seeds) == 31
    for e in papers:
        assert e.citation and e.extra["url"].startswith("https://arxiv.org/abs/")
        assert all(p.residual is None for p in e.points), "published rows are never rescored"
    bert = by_id(seeds, "paper-eb-bert-base")
    assert bert.elue_score == -3.7 and bert.task_scores["mrpc"] == -5.9 and bert.params == 109_000_000
    assert "Tab. 5 and Tab. 3" in bert.citation
    assert by_id(seeds, "paper-eb-deebert-bert").elue_score is None  # a dash in the paper
    assert "sts-b" not in by_id(seeds, "paper-eb-deebert-bert").task_scores
    assert by_id(seeds, "paper-hee-hashee").elue_score == 1.2


def test_static_rows_average_to_the_published_column(seeds):
    for e in seeds:
        if "published_average" in e.extra:
            (group,) = operating_groups(e)
            assert group["n_tasks"] == 6
            assert abs(group["average"] - e.extra["published_average"]) <= 0.05 + 1e-9, e.model_name
            assert group["mflops"] == e.extra["mean_mflops"]


def test_hashee_speedups_become_derived_flops_consistent_with_the_reference():
    curves = load_reference()
    eb3 = by_id(paper_entries(curves), "paper-hee-elasticbert-3l")
    for p in eb3.points:
        reference_l3 = curves[p.task].mflops[list(curves[p.task].layers).index(3)]
        assert p.flops_source == "derived"
        assert abs(p.mflops / reference_l3 - 1) < 0.0125, p.task  # speed-ups are rounded to 0.1x
    assert round(eb3.params / 1e6, 2) == 45.69
    hashee = by_id(paper_entries(curves), "paper-hee-hashee")
    sst = next(p for p in hashee.points if p.task == "sst-2")
    assert sst.mflops == pytest.approx(4237.6 / 4.8) and "4.8x" in sst.note


def test_seeding_is_idempotent(tmp_path):
    from elue_hf.leaderboard.seed import seed_store

    store = SQLiteStore(tmp_path / "lb.db")
    assert seed_store(store) == 31
    assert seed_store(store) == 0
    assert store.count() == 31
    assert by_id(store.entries(), REFERENCE_ENTRY_ID) == reference_entry()


# -------------------------------------------------------------------------------------------------- rankings


def test_competition_ranks():
    assert competition_ranks([3, 2, 2, 1]) == [1, 2, 2, 4]
    assert competition_ranks([]) == []
    assert competition_ranks([5.0]) == [1]


def test_elue_ranking_order_ties_and_partial_rows(seeds):
    rows = elue_rows(seeds)
    assert rows[0]["model"] == "HashEE" and rows[0]["rank"] == 1
    zeros = [r for r in rows if r["elue_score"] == 0.0]
    assert len(zeros) == 3 and {r["rank"] for r in zeros} == {2}  # ties share the rank
    assert rows[4]["rank"] == 5
    ranked = [r for r in rows if r["rank"] is not None]
    assert [r["elue_score"] for r in ranked] == sorted((r["elue_score"] for r in ranked), reverse=True)
    tail = rows[len(ranked):]
    assert {r["model"] for r in tail} == {"DeeBERT (BERT)", "DeeBERT (RoBERTa)", "ElasticBERT (entropy)"}
    assert all(r["rank"] is None for r in tail) and "5/6 tasks" in tail[0]["notes"]
    assert not {r["model"] for r in rows} & {"MobileBERT", "FastBERT"}  # no ELUE score published for them


def test_parameter_tracks_rank_by_average_performance(seeds):
    t40 = track_rows(seeds, "40M")
    assert [(r["model"], r["rank"]) for r in t40] == [("ALBERT-base", 1), ("MobileBERT", 2)]
    t55 = track_rows(seeds, "55M")
    assert [(r["model"], round(r["average"], 2)) for r in t55] == [
        ("ALBERT-base", 89.85), ("MobileBERT", 88.63), ("ElasticBERT-3L", 87.28)]
    t110 = {r["model"] for r in track_rows(seeds, "110M")}
    assert {"BERT-base", "ElasticBERT-base", "ElasticBERT-6L", "TinyBERT-6L"} <= t110
    assert not t110 & {"RoBERTa-base", "ElasticBERT-large", "ElasticBERT (reference curve)"}
    with pytest.raises(ValueError, match="unknown track"):
        track_rows(seeds, "12M")


def test_partial_groups_follow_the_complete_ones():
    full = [{"task": t, "label": "a", "performance": 50.0, "mflops": 100.0, "params": 30_000_000} for t in TASK_KEYS]
    one = [{"task": "sst-2", "label": "b", "performance": 99.0, "mflops": 100.0, "params": 30_000_000}]
    rows = track_rows([submission("sub-full", full), submission("sub-one", one)], "40M")
    assert [(r["entry_id"], r["rank"]) for r in rows] == [("sub-full", 1), ("sub-one", None)]
    assert "1/6 tasks" in rows[1]["notes"]


def test_task_points_mark_the_pareto_frontier_on_either_axis():
    points = [
        {"task": "sst-2", "label": "cheap", "performance": 80.0, "mflops": 100.0, "params": 90_000_000},
        {"task": "sst-2", "label": "dominated", "performance": 79.0, "mflops": 200.0, "params": 10_000_000},
        {"task": "sst-2", "label": "best", "performance": 90.0, "mflops": 400.0, "params": 50_000_000},
        {"task": "sst-2", "label": "no-flops", "performance": 85.0, "params": 20_000_000},
    ]
    entries = [submission("sub-a", points)]
    flops = {r["label"]: r["pareto"] for r in task_points(entries, "sst-2", "mflops")}
    assert flops == {"cheap": True, "dominated": False, "best": True, "no-flops": False}
    params = {r["label"]: r["pareto"] for r in task_points(entries, "sst-2", "params")}
    assert params == {"cheap": False, "dominated": True, "best": True, "no-flops": True}
    assert [r["label"] for r in task_points(entries, "sst-2")][0] == "best"  # best performance first
    with pytest.raises(ValueError, match="axis"):
        task_points(entries, "sst-2", "seconds")


def test_filters_search_sources_and_verified(seeds):
    sub = submission("sub-x", [{"task": "sst-2", "label": "a", "performance": 1.0, "mflops": 1.0}], tier="consistent")
    entries = [*seeds, sub]
    found = [e.model_name for e in entries if Filters(search="ElasticBERT 6L").accepts(e)]
    assert found == ["ElasticBERT-6L"]
    assert [e.entry_id for e in entries if Filters(sources={"submission"}).accepts(e)] == ["sub-x"]
    assert not Filters(verified_only=True).accepts(sub)
    assert Filters(verified_only=True).accepts(by_id(seeds, "paper-eb-bert-base"))
    with pytest.raises(ValueError, match="unknown sources"):
        Filters(sources={"rumours"})


def test_rank_of_a_new_entry(seeds):
    points = [{"task": t, "label": "k=3", "performance": 95.0, "mflops": 1000.0, "params": 45_000_000}
              for t in TASK_KEYS]
    mine = submission("sub-mine", points, params=45_000_000, elue=2.5, task_scores={t: 2.5 for t in TASK_KEYS})
    info = rank_of([*seeds, mine], "sub-mine")
    assert info.elue == (1, 21)  # 20 seeded rows publish an ELUE score
    assert info.tasks["sst-2"] == (1, 12)  # reference + ten Tab. 5 rows
    assert info.tracks["55M"] == (1, 4, "k=3") and "40M" not in info.tracks
    assert "ELUE rank 1 of 21" in info.describe()
    with pytest.raises(KeyError):
        rank_of(seeds, "sub-missing")


# ---------------------------------------------------------------------------------------------------- views


def test_view_frames(seeds):
    elue = elue_frame(seeds)
    assert list(elue.columns[:4]) == ["Rank", "Model", "ELUE score", "SST-2"]
    assert elue.iloc[0]["Model"] == "HashEE" and elue.iloc[0]["SST-2"] is None
    assert elue.iloc[0]["Rank"] == 1 and isinstance(elue.iloc[0]["Rank"], int)
    assert "from the paper" in elue.iloc[0]["Notes"]
    only_subs = elue_frame(seeds, Filters(sources={"submission"}))
    assert len(only_subs) == 0 and list(only_subs.columns) == list(elue.columns)
    t40 = track_frame(seeds, "40M")
    assert t40["Model"].tolist() == ["ALBERT-base", "MobileBERT"] and t40.iloc[0]["MParams"] == 12.0
    sst = task_frame(seeds, SST2, "mflops")
    assert "Accuracy" in sst.columns and sst.iloc[0]["Accuracy"] == 89.8  # ElasticBERT-large
    assert set(sst["Pareto"]) <= {"*", ""}
    assert "(Pearson+Spearman)/2" in task_frame(seeds, TASKS["sts-b"]).columns


def test_pareto_frames_draw_reference_and_frontier(seeds):
    curves = load_reference()
    points, lines, hidden = pareto_frames(seeds, SST2, "mflops", curves)
    assert hidden == 10  # the ten Tab. 3 rows have no per-task FLOPs
    assert set(points["series"]) == {"ElasticBERT-base reference", "Pareto frontier", "dominated"}
    ref = lines[lines["line"].str.startswith("ElasticBERT-base reference")]
    for x, y in zip(curves["sst-2"].mflops, curves["sst-2"].performance):
        assert y in ref.loc[ref["x"] == x, "performance"].tolist()
    assert ref["x"].min() <= points["x"].min()  # extrapolated to cover every point
    frontier = lines[lines["line"] == "Pareto frontier"]
    assert np.all(np.diff(frontier["x"]) >= 0) and np.all(np.diff(frontier["performance"]) >= 0)
    on_front = points[points["series"] == "Pareto frontier"]
    assert set(on_front["x"]) <= set(frontier["x"])

    ppoints, plines, phidden = pareto_frames(seeds, SST2, "params", curves)
    assert phidden == len(points) + hidden - len(ppoints)
    assert "MobileBERT" in set(ppoints["model"])
    assert sorted(plines[plines["line"] == "ElasticBERT-base reference"]["x"].round(2)) == [45.69, 52.78, 66.96, 109.48]


def test_submitted_points_have_their_own_series(seeds):
    mine = submission("mine", [{"task": "sst-2", "label": "static k=3", "performance": 99.0, "mflops": 500.0},
                               {"task": "sst-2", "label": "static k=1", "performance": 10.0, "mflops": 400.0}])
    points, _, _ = pareto_frames([*seeds, mine], SST2, "mflops", load_reference())
    ours = points[points["model"] == "mine"]
    assert set(ours["series"]) == {"submitted here"}  # on the frontier (99.0) or not (10.0): one colour
    assert "submitted here" not in set(points[points["model"] != "mine"]["series"])


def test_frontier_is_drawn_as_a_staircase():
    steps = frontier_steps([(3.0, 90.0), (1.0, 80.0), (2.0, 85.0)])
    assert [(s["x"], s["performance"]) for s in steps] == [
        (1.0, 80.0), (2.0, 80.0), (2.0, 85.0), (3.0, 85.0), (3.0, 90.0)]
    assert frontier_steps([]) == []


def test_entry_frame_lists_every_point():
    e = submission("sub-e", [{"task": "mrpc", "label": "k=1", "performance": 80.0, "mflops": 5.0,
                              "reference_performance": 81.0, "residual": -1.0, "flops_source": "self-reported"}])
    frame = entry_frame(e)
    assert frame.iloc[0].to_dict() == {"Task": "MRPC", "Point": "k=1", "Metric": 80.0, "MFLOPs": 5.0,
                                       "Reference": 81.0, "vs reference": -1.0, "MParams": None,
                                       "FLOPs": "self-reported"}


# ------------------------------------------------------------------------------------------- only what was checked


def full_entry(entry_id, score, tier="verified", extra=None, params=45_000_000):
    points = [{"task": t, "label": "k=3", "performance": 90.0 + score, "mflops": 1000.0, "params": params}
              for t in TASK_KEYS]
    return submission(entry_id, points, params=params, elue=score, task_scores={t: score for t in TASK_KEYS},
                      tier=tier, extra=extra)


def test_only_verified_submissions_on_the_elue_test_set_are_ranked(seeds):
    honest = full_entry("sub-honest", 0.5)
    lies = [full_entry("sub-consistent", 2.89, "consistent"), full_entry("sub-self", 1.82, "self-reported"),
            full_entry("sub-rt", 3.0, extra={"other_data": "scored on RT snippets, not the ELUE test set"})]
    entries = [*seeds, honest, *lies]
    ranked = elue_rows(entries)
    assert "sub-honest" in {r["entry_id"] for r in ranked}
    assert not {r["entry_id"] for r in ranked} & {e.entry_id for e in lies}
    assert rank_of(entries, "sub-honest").elue == (2, 21)  # HashEE's +1.20 first, then the honest +0.5
    for track in ("55M", "110M"):
        assert not {g["entry_id"] for g in track_rows(entries, track)} & {e.entry_id for e in lies}
    assert unranked_reason(lies[0]) == "not ranked: consistent FLOPs, awaiting verification"
    assert unranked_reason(lies[1]) == "not ranked: self-reported FLOPs, awaiting verification"
    assert unranked_reason(lies[2]) == "not ranked: scored on RT snippets, not the ELUE test set"
    assert unranked_reason(honest) is None and unranked_reason(by_id(seeds, "paper-eb-bert-base")) is None
    info = rank_of(entries, "sub-consistent")
    assert info.elue is None and not info.tasks and not info.tracks
    assert info.describe().startswith("not ranked: consistent FLOPs, awaiting verification")
    assert "ELUE rank 2 of 21 among verified entries and published rows" in rank_of(entries, "sub-honest").describe()
    listed = unranked_rows(entries)
    assert {r["entry_id"] for r in listed} == {e.entry_id for e in lies}
    frame = unranked_frame(entries)
    assert set(frame["Model"]) == {e.entry_id for e in lies} and "Rank" not in frame.columns
    assert set(frame["Description"]) == {f"about {e.entry_id}" for e in lies}
    assert not set(elue_frame(entries)["Model"]) & {e.entry_id for e in lies}


def test_unranked_points_never_join_the_pareto_frontier(seeds):
    cheat = submission("sub-cheat", [{"task": "sst-2", "label": "a", "performance": 99.0, "mflops": 1.0}],
                       tier="consistent")
    other = submission("sub-other", [{"task": "sst-2", "label": "b", "performance": 98.0, "mflops": 2.0}],
                       extra={"other_data": "scored on RT snippets, not the ELUE test set"})
    rows = {r["entry_id"]: r for r in task_points([*seeds, cheat, other], "sst-2")}
    assert not rows["sub-cheat"]["pareto"] and not rows["sub-cheat"]["ranked"]
    assert not rows["sub-other"]["pareto"] and rows["sub-other"]["other_data"]
    assert any(r["pareto"] for r in rows.values())  # the frontier is made of the ranked rows
    points, _, _ = pareto_frames([*seeds, cheat, other], SST2, "mflops", load_reference())
    series = dict(zip(points["model"], points["series"]))
    assert series["sub-cheat"] == "not ranked: not verified"
    assert series["sub-other"] == "not ranked: not the ELUE test set"
    notes = dict(zip(task_frame([*seeds, cheat, other], SST2)["Model"],
                     task_frame([*seeds, cheat, other], SST2)["Notes"]))
    assert notes["sub-other"].startswith("not ranked: scored on RT snippets")
