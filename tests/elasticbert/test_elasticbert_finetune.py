"""`elue-hf train` end to end on tiny models and synthetic data; the public per-exit compute_metrics."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, EvalPrediction

from elue_hf.cli import main
from elue_hf.elasticbert import compute_metrics, make_compute_metrics, preprocess_logits_for_metrics
from elue_hf.finetune import load_classification_data, parse_data_files
from tests.helpers.elue_fixtures import write_synthetic_task
from tests.helpers.tiny_models import save_tiny_bert

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module

_FAST = ["--max-steps", "3", "--batch-size", "8", "--learning-rate", "1e-3", "--use-cpu", "--logging-steps", "1"]


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("bert"))


def test_train_cli_on_an_elue_folder_saves_a_loadable_model(bert_dir, tmp_path, capsys):
    write_synthetic_task(tmp_path / "elue", "mrpc")
    out = tmp_path / "out"
    assert main(["train", "--model", str(bert_dir), "--data-dir", str(tmp_path / "elue"), "--task", "mrpc",
                 "--output-dir", str(out), *_FAST]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "eval_results.json").read_text())
    for layer in (1, 2, 3):  # every exit evaluated with the task's metric (MRPC: acc, F1, their mean)
        assert 0 <= metrics[f"eval_exit_{layer}_acc_and_f1"] <= 100 and f"eval_exit_{layer}_f1" in metrics
    per_exit = [metrics[f"eval_exit_{k}_acc"] for k in (1, 2, 3)]
    assert metrics["eval_average_exit_acc"] == pytest.approx(np.mean(per_exit))
    assert "eval_average_exit_acc" in printed and str(out) in printed

    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "elasticbert" and model.config.num_output_layers == 3
    assert model.config.multi_exit_training == "gradient_equilibrium"
    assert model.config.id2label == {0: "not_paraphrase", 1: "paraphrase"}
    enc = tokenizer("the dog runs", "a cat sits", return_tensors="pt")
    assert tokenizer.unk_token_id not in enc["input_ids"][0].tolist()  # the real vocabulary came along
    with torch.no_grad():
        logits = model(**enc).logits
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()
    # training changed the converted weights
    fresh = AutoModelForSequenceClassification.from_pretrained(bert_dir)
    assert not torch.equal(fresh.bert.embeddings.word_embeddings.weight,
                           model.elasticbert.embeddings.word_embeddings.weight)


def test_train_cli_on_csv_files_with_string_labels(bert_dir, tmp_path):
    rows = ["text,sentiment"] + [f"{w} movie,{'pos' if i % 2 else 'neg'}" for i, w in
                                  enumerate(["good", "bad", "great", "awful", "fun", "dull"] * 3)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "dev.csv").write_text("\n".join(rows[:7]) + "\n")
    out = tmp_path / "out"
    assert main(["train", "--model", str(bert_dir), "--dataset", "csv", "--data-files",
                 f"train={tmp_path / 'train.csv'},validation={tmp_path / 'dev.csv'}", "--label-column", "sentiment",
                 "--num-output-layers", "2", "--multi-exit-training", "weighted", "--output-dir", str(out),
                 *_FAST]) == 0
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.label2id == {"neg": 0, "pos": 1} and model.config.num_output_layers == 2
    assert model.config.multi_exit_training == "weighted"
    metrics = json.loads((out / "eval_results.json").read_text())
    assert {"eval_exit_2_accuracy", "eval_exit_3_accuracy", "eval_average_exit_accuracy"} <= set(metrics)


def test_data_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="either an ELUE task folder"):
        load_classification_data()
    with pytest.raises(ValueError, match="needs --task"):
        load_classification_data(data_dir=tmp_path)
    (tmp_path / "t.csv").write_text("body,label\nhello there,1\nbye now,0\n")
    with pytest.raises(ValueError, match="which columns hold the text"):
        load_classification_data(dataset=str(tmp_path / "t.csv"))
    data = load_classification_data(dataset=str(tmp_path / "t.csv"), text_columns=["body"], eval_fraction=0.5)
    assert data.label_names == ["0", "1"] and data.train.num_rows == 1 and data.eval.num_rows == 1
    assert parse_data_files("train=a.csv, validation=b.csv") == {"train": "a.csv", "validation": "b.csv"}
    with pytest.raises(ValueError, match="SPLIT=FILE"):
        parse_data_files("train=a.csv,b.csv")


def _fake_outputs():
    """What Trainer hands compute_metrics for a 3-exit ElasticBERT: (logits, exit_layer, all_logits, exit_losses)."""
    all_logits = np.array([[[2.0, 0.0], [0.0, 2.0], [0.0, 2.0]],
                           [[2.0, 0.0], [2.0, 0.0], [0.0, 2.0]]])  # fmt: skip
    return (all_logits[:, -1], np.array([3, 3]), all_logits, np.array([0.1, 0.2, 0.3])), np.array([0, 1])


def test_compute_metrics_on_the_raw_four_tuple():
    predictions, labels = _fake_outputs()
    metrics = compute_metrics(EvalPrediction(predictions=predictions, label_ids=labels))
    assert metrics == {"exit_1_accuracy": 50.0, "exit_2_accuracy": 0.0, "exit_3_accuracy": 50.0,
                       "average_exit_accuracy": pytest.approx(100 / 3)}


def test_compute_metrics_after_preprocess_and_with_task_metrics():
    predictions, labels = _fake_outputs()
    kept = preprocess_logits_for_metrics(tuple(torch.as_tensor(p) for p in predictions), torch.as_tensor(labels))
    assert tuple(kept.shape) == (2, 3, 2)  # only the per-exit logits survive
    metrics = make_compute_metrics("mrpc", exit_layers=[4, 5, 6])(EvalPrediction(kept.numpy(), labels))
    assert metrics["exit_6_acc"] == 50.0 and metrics["exit_6_f1"] == pytest.approx(200 / 3)
    assert metrics["average_exit_acc_and_f1"] == pytest.approx(np.mean([metrics[f"exit_{k}_acc_and_f1"]
                                                                        for k in (4, 5, 6)]))
    plain = compute_metrics(EvalPrediction(predictions[0], labels))  # any classifier's (batch, labels) logits
    assert plain == {"exit_1_accuracy": 50.0, "average_exit_accuracy": 50.0}
    regression = compute_metrics(EvalPrediction(np.array([[[0.1]], [[0.9]], [[0.5]]]), np.array([0.0, 1.0, 0.4])))
    assert regression["exit_1_corr"] == pytest.approx(100.0, abs=1.0)
    with pytest.raises(ValueError, match="no logits"):
        compute_metrics(EvalPrediction((np.array([3, 3]),), labels))


def test_two_stage_schedule_trains_and_saves_a_stage_one_config(bert_dir, tmp_path):
    write_synthetic_task(tmp_path / "elue", "sst-2")
    out = tmp_path / "out"
    assert main(["train", "--model", str(bert_dir), "--data-dir", str(tmp_path / "elue"), "--task", "sst-2",
                 "--multi-exit-training", "two_stage", "--output-dir", str(out), *_FAST]) == 0
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.multi_exit_training == "two_stage" and model.config.training_stage == 1
    log = json.loads((out / "eval_results.json").read_text())
    assert log["epoch"] > 0 and "eval_average_exit_acc" in log
