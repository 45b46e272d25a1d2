"""The embedded MiniLM, converted to ElasticBERT, exported with `elue-hf export`: the ONNX exit equals the PyTorch
exit on real text (RT snippets), and predict(texts) gives the pipeline's fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow  # converts and exports a real 6-layer model

ATOL = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from elue_hf.assets import minilm_path
    from elue_hf.cli import main
    from elue_hf.elasticbert import convert_bert_to_elasticbert

    folder = tmp_path_factory.mktemp("minilm")
    torch.manual_seed(0)
    model = convert_bert_to_elasticbert(minilm_path(), pooling="mean", save_directory=folder / "model")
    with torch.no_grad():  # untrained exits: spread their confidences so that a threshold separates rows
        for head in model.classifiers:
            head.weight.normal_(0, 0.3)
    model.save_pretrained(folder / "model")
    assert main(["export", str(folder / "model"), str(folder / "bundle")]) == 0
    return model, folder / "bundle"


@pytest.fixture(scope="module")
def texts():
    from elue_hf.assets import load_rotten_tomatoes

    return list(load_rotten_tomatoes()["test"]["sentence"])  # the whole held-out split


def test_onnx_exit_equals_torch_exit_on_real_text(exported, texts):
    from transformers import AutoTokenizer

    from elue_hf.deploy import OnnxElasticBertForSequenceClassification

    model, bundle = exported
    runtime = OnnxElasticBertForSequenceClassification.from_pretrained(bundle, threads=1)
    tokenizer = AutoTokenizer.from_pretrained(bundle)
    with torch.no_grad():  # threshold at the median entropy of a first batch: rows leave at several layers
        enc = tokenizer(texts[:64], padding=True, truncation=True, return_tensors="pt")
        threshold = float(torch.special.entr(model(**enc).all_logits.softmax(-1)).sum(-1).median())
    options = {"exit_criterion": "entropy", "entropy_threshold": threshold}
    got_layers, want_layers, got_logits, want_logits = [], [], [], []
    for start in range(0, len(texts), 64):
        batch = texts[start : start + 64]
        enc = tokenizer(batch, padding=True, truncation=True, return_tensors="pt")
        ids, mask, types = runtime.encode(batch)
        np.testing.assert_array_equal(ids, enc["input_ids"].numpy())  # the torch-free tokenizer is the same
        with torch.no_grad():
            want = model(**enc, **options)
        got = runtime.forward(ids, mask, types, **options)
        got_layers.append(got.exit_layer), want_layers.append(want.exit_layer.numpy())
        got_logits.append(got.logits), want_logits.append(want.logits.numpy())
    got_layers, want_layers = np.concatenate(got_layers), np.concatenate(want_layers)
    got_logits, want_logits = np.concatenate(got_logits), np.concatenate(want_logits)
    assert len(set(want_layers.tolist())) > 2
    agree = (got_layers == want_layers).mean()
    assert agree >= 0.999, f"exit layers agree on {agree:.4f} of the rows"
    assert (got_logits.argmax(-1) == want_logits.argmax(-1)).mean() >= 0.999
    same = got_layers == want_layers
    np.testing.assert_allclose(got_logits[same], want_logits[same], atol=ATOL, rtol=0)


def test_predict_reports_label_score_exit_layer_and_mflops(exported, texts):
    from elue_hf.deploy import OnnxElasticBertForSequenceClassification
    from elue_hf.elue.flops import elasticbert_flops

    model, bundle = exported
    runtime = OnnxElasticBertForSequenceClassification.from_pretrained(bundle, threads=1)
    results = runtime.predict(texts[:5], batch_size=2, exit_criterion="entropy", entropy_threshold=0.5)
    assert len(results) == 5
    for text, result in zip(texts[:5], results):
        assert set(result) == {"label", "score", "exit_layer", "mflops"}
        assert result["label"] in model.config.id2label.values()
        length = len(runtime.tokenizer.encode(text).ids)
        want = elasticbert_flops(model.config, length, result["exit_layer"], "dynamic")
        assert result["mflops"] == pytest.approx(float(want))


def test_cli_refuses_a_non_empty_folder(exported, capsys):
    from elue_hf.cli import main

    _, bundle = exported
    assert main(["export", str(bundle.parent / "model"), str(bundle)]) == 2
    assert "exists and is not empty" in capsys.readouterr().err


def test_int8_bundle_agrees_with_fp32_on_real_text(exported, texts, tmp_path):
    """int8 (quantize_dynamic) against the fp32 bundle at one entropy threshold: the agreement is printed (-s) and
    bounded loosely here (the exits are untrained, so many predictions have tiny margins that int8 noise flips);
    docs/deploy.md reports the measured figures."""
    from elue_hf.deploy import OnnxElasticBertForSequenceClassification, export_elasticbert

    model, bundle = exported
    int8 = export_elasticbert(bundle.parent / "model", tmp_path / "int8", quantize="int8")
    fp32 = OnnxElasticBertForSequenceClassification.from_pretrained(bundle, threads=1)
    q = OnnxElasticBertForSequenceClassification.from_pretrained(int8, threads=1)
    options = {"exit_criterion": "entropy", "entropy_threshold": 0.6}
    a, b = fp32.predict(texts, batch_size=64, **options), q.predict(texts, batch_size=64, **options)
    same_label = np.mean([x["label"] == y["label"] for x, y in zip(a, b)])
    same_layer = np.mean([x["exit_layer"] == y["exit_layer"] for x, y in zip(a, b)])
    mean_fp32, mean_int8 = np.mean([x["exit_layer"] for x in a]), np.mean([y["exit_layer"] for y in b])
    print(f"int8 vs fp32 on {len(texts)} RT snippets: same label {same_label:.3f}, same exit layer {same_layer:.3f}, "
          f"mean exit layer {mean_fp32:.2f} -> {mean_int8:.2f}")
    assert same_label >= 0.8 and same_layer >= 0.8
