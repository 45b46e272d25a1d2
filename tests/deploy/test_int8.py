"""int8 in PyTorch (``elue_hf.deploy.quantize_int8``, torchao) composing with the batched exit, and ``elue-hf evaluate
--quantize int8`` printing int8's cost at every operating point next to fp32 (tiny random models, synthetic data)."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

from elue_hf.cli import main
from elue_hf.deploy.int8 import Int8BackendMissing, int8_config, quantize_int8
from elue_hf.elue.inference import PointOutputs
from elue_hf.elue.tasks import get_task
from elue_hf.methods.int8_points import format_int8_comparison, int8_comparison
from tests.deploy.conftest import random_batch, tiny_model
from tests.helpers.elue_fixtures import synthetic_vocab, write_synthetic_elue
from tests.helpers.tiny_models import synthetic_tokenizer

try:
    import torchao  # noqa: F401

    HAVE_TORCHAO = True
except ImportError:
    HAVE_TORCHAO = False
# `make test` runs this file a second time with torchao on PYTHONPATH (from $(VENV)/int8-site, kept out of the main
# environment: once installed, transformers imports it on every model load and it logs warnings) and
# ELUE_HF_REQUIRE_TORCHAO=1, so the tests skipped here in the main run cannot be skipped there.
if os.environ.get("ELUE_HF_REQUIRE_TORCHAO") == "1" and not HAVE_TORCHAO:
    raise RuntimeError("ELUE_HF_REQUIRE_TORCHAO=1 but torchao cannot be imported")
needs_torchao = pytest.mark.skipif(not HAVE_TORCHAO, reason='torchao is not installed (pip install "elue-hf[int8]"); '
                                   "`make test` runs this file again with it")


@pytest.fixture
def no_torchao(monkeypatch):
    for name in ("torchao", "torchao.quantization"):
        monkeypatch.setitem(sys.modules, name, None)  # `import torchao` raises ImportError


def test_a_missing_backend_is_one_sentence(no_torchao, tmp_path, capsys):
    with pytest.raises(Int8BackendMissing, match=r'needs torchao: pip install "elue-hf\[int8\]"'):
        quantize_int8(tiny_model())
    assert issubclass(Int8BackendMissing, ImportError) and issubclass(Int8BackendMissing, ValueError)
    folder = tmp_path / "model"
    tiny_model().save_pretrained(folder)
    code = main(["evaluate", "--model", str(folder), "--task", "sst-2", "--data-dir", str(tmp_path), "--quantize",
                 "int8", "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "needs torchao" in err and "Traceback" not in err


def test_the_comparison_rows_and_table():
    task = get_task("sst-2")
    fp32 = [PointOutputs("entropy 0.30", "dynamic", [1, 0, 1, 1], [1, 2, 4, 4], [5, 6, 7, 8])]
    int8 = [PointOutputs("entropy 0.30", "dynamic", [1, 1, 1, 1], [1, 2, 3, 4], [5, 6, 7, 8])]
    (row,) = int8_comparison(task, fp32, int8, [(10.0, 9.5)], labels=np.array([1, 0, 1, 0]))
    assert row["agreement"] == 0.75 and row["exit_agreement"] == 0.75
    assert row["mean_exit_fp32"] == 2.75 and row["mean_exit_int8"] == 2.5
    assert row["score_fp32"] == 75.0 and row["score_int8"] == 50.0 and row["score_change"] == -25.0
    table = format_int8_comparison(task, [row])
    assert "entropy 0.30" in table and "-25.00" in table and "75.0%" in table
    (unscored,) = int8_comparison(task, fp32, int8, [(10.0, 9.5)])
    assert "score_fp32" not in unscored and "acc fp32" not in format_int8_comparison(task, [unscored])


@needs_torchao
def test_quantized_exits_work_and_batched_equals_one_row_at_a_time(tmp_path):
    from elue_hf import ElasticBertForSequenceClassification

    model = tiny_model()
    int8 = quantize_int8(model)
    assert type(model.classifiers[0].weight) is torch.nn.Parameter  # the fp32 model is left as it was
    assert type(int8.classifiers[0].weight).__name__ != "Parameter" and int8.config.elue_quantization == "int8"
    ids, mask, types = random_batch()
    with torch.no_grad():
        fp32_all = model(input_ids=ids, attention_mask=mask, exit_criterion="none").all_logits
        all_logits = int8(input_ids=ids, attention_mask=mask, exit_criterion="none").all_logits
        assert (all_logits - fp32_all).abs().max() < 0.25  # int8 noise on a tiny model, logits of size ~1-5
        model.save_pretrained(tmp_path)  # the static model of depth 2, quantized, is exit 2 of the quantized model
        static = quantize_int8(ElasticBertForSequenceClassification.from_pretrained(
            tmp_path, num_hidden_layers=2, num_output_layers=1).eval())
        assert torch.allclose(static(input_ids=ids, attention_mask=mask).logits, all_logits[:, 1], atol=1e-5)
        for criterion, option in (("entropy", {"entropy_threshold": 0.3}), ("patience", {"patience": 1})):
            batched = int8(input_ids=ids, attention_mask=mask, exit_criterion=criterion, **option)
            assert int(batched.exit_layer.min()) < 4  # rows really leave before the last layer
            for i in range(ids.shape[0]):  # nothing is shared between rows (unlike per-tensor scales)
                n = int(mask[i].sum())
                row = int8(input_ids=ids[i : i + 1, :n], attention_mask=mask[i : i + 1, :n],
                           exit_criterion=criterion, **option)
                assert int(row.exit_layer) == int(batched.exit_layer[i])
                # within 1e-3: a shape-dependent float rounding can move one activation across an int8 step
                assert torch.allclose(row.logits[0], batched.logits[i], atol=1e-3)


@needs_torchao
def test_transformers_load_argument_gives_the_same_model(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from elue_hf.deploy.int8 import int8_quantization_config

    model = tiny_model()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(
        tmp_path, quantization_config=int8_quantization_config())
    ids, mask, _ = random_batch()
    with torch.no_grad():
        a = loaded(input_ids=ids, attention_mask=mask, exit_criterion="none").all_logits
        b = quantize_int8(model)(input_ids=ids, attention_mask=mask, exit_criterion="none").all_logits
    assert torch.allclose(a, b, atol=1e-6)
    assert type(int8_config()).__name__ == "Int8WeightOnlyConfig"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from elue_hf import ElasticBertConfig, ElasticBertForSequenceClassification

    root = tmp_path_factory.mktemp("int8")
    data = write_synthetic_elue(root / "ELUE", ["sst-2"], sizes={"test": 32})
    torch.manual_seed(0)
    config = ElasticBertConfig(vocab_size=len(synthetic_vocab()), hidden_size=32, num_hidden_layers=3,
                               num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                               max_output_layers=3, num_output_layers=3, num_labels=2)
    model = ElasticBertForSequenceClassification(config)
    with torch.no_grad():
        for head in model.classifiers:
            head.weight.normal_(0, 2.0)
    models = root / "models"
    model.save_pretrained(models / "me--tiny")
    synthetic_tokenizer().save_pretrained(models / "me--tiny")
    return root, data, models


@needs_torchao
@pytest.mark.slow
def test_evaluate_quantize_int8_reports_every_point_next_to_fp32_and_verifies(workspace, capsys):
    from elue_hf.verify.rerun import rerun

    root, data, models = workspace
    out = root / "out"
    code = main(["evaluate", "--model", str(models / "me--tiny"), "--model-id", "me/tiny", "--task", "sst-2",
                 "--data-dir", str(data), "--output", str(out), "--no-progress", "--static", "--entropy", "0.3",
                 "--patience", "1", "--quantize", "int8"])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "int8 (torchao int8 weights) vs fp32 on SST-2" in text and "one pass each for fp32 and int8" in text
    rows = json.loads((out / "int8_vs_fp32.json").read_text())["points"]
    labels = ["static k=1", "static k=2", "static k=3", "entropy 0.30", "patience 1"]
    assert [r["label"] for r in rows] == labels
    for r in rows:
        assert 0.0 <= r["agreement"] <= 1.0 and {"score_fp32", "score_int8", "score_change"} <= set(r)
        if r["label"].startswith("static"):  # static points: exits cannot move, so the FLOPs are the same
            assert r["exit_agreement"] == 1.0 and r["mflops_fp32"] == r["mflops_int8"]
    manifest = json.loads((out / "submission" / "submission.json").read_text())
    assert manifest["extra"]["quantize"] == "int8" and manifest["model_name"] == "me--tiny (int8)"
    assert [f["label"] for f in manifest["files"]] == labels
    report = rerun(out / "submission.zip", data, [models], [models], allow_hub=False)  # re-run quantized
    assert report["verified"] is True, report
    assert report["model"]["architecture"] == "elasticbert (int8)"
