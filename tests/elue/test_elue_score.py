"""Reference curve, ELUE score, tracks, IMDb provisional handling, parameter counts."""

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elue_hf.elue.flops.params import count_parameters, encoder_classifier_params
from elue_hf.elue.score import TRACKS, param_track, score_points, score_submission
from elue_hf.elue.score.reference import (
    REFERENCE_ENV,
    ReferenceCurve,
    load_reference,
    recompute_imdb_reference,
    reference_curve_path,
)
from elue_hf.elue.submission import PredictionFile, SubmissionError, write_submission
from elue_hf.elue.tasks import TASK_KEYS, get_task

REF = load_reference()


def test_shipped_curve_has_only_published_points_with_sources():
    doc = json.loads(reference_curve_path().read_text())
    assert set(REF) == set(TASK_KEYS)
    for key, curve in REF.items():
        layers = [p["layers"] for p in doc["tasks"][key]["points"]]
        assert layers == ([3, 4, 6, 12] if key == "sst-2" else [3, 6, 12])
        assert all(p["performance_source"] and p["flops_source"] for p in doc["tasks"][key]["points"])
        assert curve.provisional == (key == "imdb")
    assert REF["sst-2"].performance == (84.1, 85.72, 87.0, 88.6)
    assert REF["mrpc"].mflops == (2280.2, 4559.0, 9116.7)


def test_reference_points_score_exactly_zero():
    for curve in REF.values():
        for f, p in zip(curve.mflops, curve.performance):
            assert curve(f) == p
    # ElasticBERT-3L/6L/12L rows, every task: exactly 0.0 (HashEE Tab. 2: ElasticBERT-3L 0.00)
    result = score_points({t: list(zip(c.performance, c.mflops)) for t, c in REF.items()})
    assert result["elue_score"] == 0.0 and all(v == 0.0 for v in result["tasks"].values())
    assert result["provisional"] is True  # IMDb FLOPs are provisional


def test_interpolation_and_linear_extrapolation():
    c = ReferenceCurve("sst-2", (100.0, 200.0, 400.0), (80.0, 84.0, 86.0))
    assert c(150.0) == pytest.approx(82.0) and c(300.0) == pytest.approx(85.0)
    assert c(50.0) == pytest.approx(78.0)  # below: the line through points 1 and 2, no clamping
    assert c(600.0) == pytest.approx(88.0)  # above: the line through the last two points
    np.testing.assert_allclose(c(np.array([100.0, 400.0, 0.0])), [80.0, 86.0, 76.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        ReferenceCurve("x", (1.0, 1.0), (2.0, 3.0))
    with pytest.raises(ValueError, match=">= 2"):
        ReferenceCurve("x", (1.0,), (2.0,))
    with pytest.raises(ValueError, match="finite"):
        c(float("nan"))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 1e5), st.floats(0, 100)), min_size=2, max_size=12, unique_by=lambda t: t[0]),
       st.floats(0.5, 2e5))
def test_curve_properties(points, f):
    pts = sorted(points)
    c = ReferenceCurve.from_points("x", [{"mflops": a, "performance": b} for a, b in pts])
    y = c(f)
    xs = [a for a, _ in pts]
    j = min(max(np.searchsorted(xs, f, side="right") - 1, 0), len(xs) - 2)
    (x0, y0), (x1, y1) = pts[j], pts[j + 1]
    assert y == pytest.approx(y0 + (y1 - y0) * (f - x0) / (x1 - x0), rel=1e-9, abs=1e-6)  # on the segment's line
    for a, b in pts:
        assert c(a) == b  # exact at every knot


def _sub(tmp_path, points, params=50_000_000):
    return write_submission(tmp_path / "sub", "m", "d", params, points)


def test_submission_at_reference_point_scores_zero_exactly(tmp_path):
    gold = np.array([1] * 1000)
    preds = np.array([1] * 841 + [0] * 159)  # 84.1% = SST-2 ElasticBERT-3L
    sub = _sub(tmp_path, [PredictionFile("sst-2", preds, flops=np.full(1000, 1060.3), label="3L")])
    result = score_submission(sub, {"sst-2": gold})
    assert result.tasks["sst-2"].score == 0.0 and result.tasks["sst-2"].files[0].residual == 0.0
    assert result.elue_score is None and result.partial and result.partial_elue_score == 0.0
    assert result.missing_tasks == ["imdb", "mrpc", "sts-b", "snli", "scitail"]
    assert result.flops_tier == "self-reported" and not result.provisional
    text = result.format_table()
    assert "ELUE score - (partial: 1/6 tasks" in text and "self-reported" in text


def test_full_submission_mean_over_tasks_provisional_and_tracks(tmp_path):
    rng = np.random.default_rng(0)
    points, gold = [], {}
    for i, key in enumerate(TASK_KEYS):
        t = get_task(key)
        n = 40
        gold[key] = rng.uniform(0, 5, n) if t.is_regression else rng.integers(0, t.num_labels, n)
        preds = gold[key] + rng.normal(0, 0.3, n) if t.is_regression else gold[key]
        for k, f in ((3, REF[key].mflops[0]), (12, REF[key].mflops[-1])):
            points.append(PredictionFile(key, preds, flops=np.full(n, f), label=f"k={k}",
                                         params=encoder_classifier_params(k)))
    result = score_submission(_sub(tmp_path, points, params=109_483_778), gold)
    expected = {key: np.mean([m["score"] - p for m, p in zip(
        [result.tasks[key].files[0].metrics, result.tasks[key].files[1].metrics],
        [REF[key].performance[0], REF[key].performance[-1]])]) for key in TASK_KEYS}
    for key in TASK_KEYS:
        assert result.tasks[key].score == pytest.approx(expected[key], abs=1e-12)
    assert result.elue_score == pytest.approx(np.mean(list(expected.values())), abs=1e-12)
    assert not result.partial and result.provisional and result.tasks["imdb"].provisional
    assert "(provisional)" in result.format_table()
    # tracks: static 3 layers = 45.69M -> 55M track and above; 12 layers = 109.48M -> 110M only
    labels = {name: [r["label"] for r in rows] for name, rows in result.tracks.items()}
    assert labels == {"40M": [], "55M": ["k=3"], "70M": ["k=3"], "110M": ["k=3", "k=12"]}
    row = result.tracks["55M"][0]
    assert row["average"] == pytest.approx(np.mean(list(row["performance"].values())))
    assert json.loads(json.dumps(result.to_dict()))["partial"] is False


def test_param_tracks_follow_the_spec_table():
    tracks = [param_track(encoder_classifier_params(k)) for k in range(1, 13)]
    assert tracks == ["40M"] * 2 + ["55M"] * 2 + ["70M"] * 2 + ["110M"] * 6
    assert param_track(40_000_000) == "40M" and param_track(110_000_001) is None
    assert [t for t, _ in TRACKS] == ["40M", "55M", "70M", "110M"]


def test_scoring_errors(tmp_path):
    sub = _sub(tmp_path, [PredictionFile("sts-b", [1.0, 1.0, 1.0], flops=[5.0] * 3)])
    with pytest.raises(SubmissionError, match="wrong row count: 3 predictions for 4"):
        score_submission(sub, {"sts-b": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(SubmissionError, match="metric is undefined"):
        score_submission(sub, {"sts-b": [1.0, 2.0, 3.0]})
    with pytest.raises(SubmissionError, match="no gold labels given for task sts-b"):
        score_submission(sub, {"sst-2": [1]})
    with pytest.raises(ValueError, match="MFLOPs finite and > 0"):
        score_points({"sst-2": [(80.0, -1.0)]})
    with pytest.raises(ValueError, match="unknown ELUE task"):
        score_points({"qqp": [(80.0, 10.0)]})


def test_gold_from_data_directory(tmp_path):
    from elue_hf.elue.data import load_test_labels
    from tests.helpers.elue_fixtures import write_synthetic_task

    write_synthetic_task(tmp_path / "data", "mrpc", {"test": 9})
    gold = load_test_labels(tmp_path / "data", "mrpc")
    sub = _sub(tmp_path, [PredictionFile("mrpc", gold, flops=[2280.2] * 9)])
    result = score_submission(sub, tmp_path / "data")
    assert result.tasks["mrpc"].files[0].metrics["acc_and_f1"] == 100.0
    assert result.tasks["mrpc"].score == pytest.approx(100.0 - 83.1)


def test_imdb_recompute_makes_scores_final(tmp_path, monkeypatch):
    doc = recompute_imdb_reference([278] * 10)
    got = [p["mflops"] for p in doc["tasks"]["imdb"]["points"]]
    assert got == list(REF["imdb"].mflops)  # the provisional values are exactly the n = 278 assumption
    doc = recompute_imdb_reference(np.r_[np.full(5, 100), np.full(5, 512)])
    entry = doc["tasks"]["imdb"]
    assert entry["flops_provisional"] is False and entry["mean_tokens"] == 306.0 and "note" in entry
    assert doc["tasks"]["sst-2"] == json.loads(reference_curve_path().read_text())["tasks"]["sst-2"]
    path = tmp_path / "ref.json"
    path.write_text(json.dumps(doc))
    monkeypatch.setenv(REFERENCE_ENV, str(path))
    assert load_reference()["imdb"].provisional is False
    assert load_reference()["imdb"].mflops[0] > REF["imdb"].mflops[0]  # n^2 term: mean over lengths > at the mean
    with pytest.raises(ValueError, match="exceed max_seq_length"):
        recompute_imdb_reference([600])
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not an elue-hf reference curve"):
        load_reference(tmp_path / "bad.json")


def test_parameter_counts_match_spec_and_models():
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    mp = [round(encoder_classifier_params(k) / 1e6, 2) for k in range(1, 13)]
    assert mp == [31.52, 38.61, 45.69, 52.78, 59.87, 66.96, 74.04, 81.13, 88.22, 95.31, 102.40, 109.48]
    assert round(encoder_classifier_params(12, 12) / 1e6, 2) == 116.00
    with torch.device("meta"):
        base = BertForSequenceClassification(BertConfig(num_labels=2))
    assert count_parameters(base) == encoder_classifier_params(12) == 109_483_778
    tiny = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=2,
                                                     num_attention_heads=2, intermediate_size=32))
    for p in tiny.bert.embeddings.parameters():
        p.requires_grad_(False)  # frozen weights still count
    assert count_parameters(tiny) == encoder_classifier_params(2, hidden=16, intermediate=32, vocab=50)
    shared = torch.nn.Linear(4, 4)
    assert count_parameters(torch.nn.Sequential(shared, shared)) == 20  # shared once


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 2), min_size=6, max_size=6), st.floats(10, 20000)),
                min_size=1, max_size=4),
       st.randoms(use_true_random=False))
def test_scorer_matches_independent_computation_and_ignores_file_order(tmp_path_factory, points, rnd):
    from elue_hf.elue.score.metrics import task_metric

    gold = np.array([0, 1, 2, 2, 1, 0])
    files = [PredictionFile("snli", preds, flops=[f] * 6, label=f"p{i}") for i, (preds, f) in enumerate(points)]
    shuffled = files[:]
    rnd.shuffle(shuffled)
    scores = []
    for order in (files, shuffled):
        root = tmp_path_factory.mktemp("prop")
        scores.append(score_submission(write_submission(root / "s", "m", "", 10, order), {"snli": gold}))
    expected = np.mean([task_metric("snli", p, gold)["acc"] - REF["snli"](f) for p, f in points])
    assert scores[0].tasks["snli"].score == pytest.approx(expected, abs=1e-9)
    assert scores[1].tasks["snli"].score == pytest.approx(scores[0].tasks["snli"].score, abs=1e-12)
