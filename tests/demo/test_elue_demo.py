"""``elue-hf evaluate / score / recompute-imdb-flops`` and the demo section, on tiny models and synthetic data."""

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch

from elue_hf.commands import evaluate as cli
from tests.helpers.elue_fixtures import synthetic_vocab, write_synthetic_elue

TINY = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=128)


def _run(argv):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


def _tokenizer():
    from transformers import BertTokenizer

    return BertTokenizer(vocab=synthetic_vocab())


def _elasticbert(num_labels=2, num_output_layers=3):
    from elue_hf.elasticbert import ElasticBertConfig, ElasticBertForSequenceClassification

    torch.manual_seed(0)
    cfg = ElasticBertConfig(vocab_size=len(synthetic_vocab()), **TINY, max_output_layers=3,
                            num_output_layers=num_output_layers, num_labels=num_labels)
    return ElasticBertForSequenceClassification(cfg).eval()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_synthetic_elue(root / "data", ["sst-2", "imdb", "sts-b"], sizes={"test": 10})
    model_dir = root / "model"
    _elasticbert().save_pretrained(model_dir)
    _tokenizer().save_pretrained(model_dir)
    return root, data, model_dir


def test_evaluate_static_sweep_writes_scored_submission(workspace, capsys):
    root, data, model_dir = workspace
    out = root / "out_static"
    assert _run(["evaluate", "--model", str(model_dir), "--task", "sst-2", "--data-dir", str(data),
                 "--output", str(out), "--sweep", "1,3"]) == 0
    text = capsys.readouterr().out
    assert "static k=1" in text and "static k=3" in text and "ELUE score -" in text
    assert (out / "submission.zip").exists() and (out / "pareto_sst-2.png").stat().st_size > 1000
    manifest = json.loads((out / "submission" / "submission.json").read_text())
    params = {f["label"]: f["params"] for f in manifest["files"]}
    assert params["static k=1"] < params["static k=3"] < manifest["params"]  # static-k counts only what it uses
    assert all(f["flops_source"] == "modules" for f in manifest["files"])


def test_evaluate_entropy_and_errors(workspace, capsys):
    root, data, model_dir = workspace
    assert _run(["evaluate", "--model", str(model_dir), "--task", "sst-2", "--data-dir", str(data),
                 "--output", str(root / "out_entropy"), "--exit", "entropy", "--sweep", "0.1,0.7"]) == 0
    assert "entropy H<0.7" in capsys.readouterr().out
    with pytest.raises(ValueError, match="needs --sweep"):
        _run(["evaluate", "--model", str(model_dir), "--task", "sst-2", "--data-dir", str(data),
              "--exit", "patience", "--output", str(root / "x")])
    with pytest.raises(ValueError, match="--data-dir DIR"):
        _run(["evaluate", "--model", str(model_dir), "--task", "sst-2", "--output", str(root / "x")])
    with pytest.raises(ValueError, match="needs 1"):
        _run(["evaluate", "--model", str(model_dir), "--task", "sts-b", "--data-dir", str(data),
              "--output", str(root / "x")])


def test_evaluate_plain_bert_gives_one_full_depth_point(workspace, capsys):
    from transformers import BertConfig, BertForSequenceClassification

    root, data, _ = workspace
    bert_dir = root / "bert"
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=len(synthetic_vocab()), **TINY)).save_pretrained(bert_dir)
    _tokenizer().save_pretrained(bert_dir)
    assert _run(["evaluate", "--model", str(bert_dir), "--task", "sst-2", "--data-dir", str(data),
                 "--output", str(root / "out_bert")]) == 0
    manifest = json.loads((root / "out_bert" / "submission" / "submission.json").read_text())
    assert [f["label"] for f in manifest["files"]] == ["static k=3"]
    assert "verified" in capsys.readouterr().out
    with pytest.raises(ValueError, match="needs an ElasticBERT"):
        _run(["evaluate", "--model", str(bert_dir), "--task", "sst-2", "--data-dir", str(data),
              "--exit", "entropy", "--sweep", "0.5", "--output", str(root / "x")])


def test_score_command_and_recompute_imdb(workspace, capsys):
    root, data, model_dir = workspace
    _run(["evaluate", "--model", str(model_dir), "--task", "imdb", "--data-dir", str(data),
          "--output", str(root / "out_imdb"), "--sweep", "3"])
    capsys.readouterr()
    zipped = root / "out_imdb" / "submission.zip"
    assert _run(["score", str(zipped), "--data-dir", str(data)]) == 0
    assert "(provisional IMDb reference FLOPs)" in capsys.readouterr().out
    ref = root / "ref.json"
    assert _run(["recompute-imdb-flops", "--data-dir", str(data), "--tokenizer", str(model_dir),
                 "--output", str(ref)]) == 0
    assert "10 instances" in capsys.readouterr().out
    assert json.loads(ref.read_text())["tasks"]["imdb"]["flops_provisional"] is False
    assert _run(["score", str(zipped), "--data-dir", str(data), "--reference", str(ref), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["provisional"] is False and result["tasks"]["imdb"]["files"][0]["flops_source"] == "modules"


def test_demo_section_on_a_tiny_context(tmp_path, capsys):
    import datasets

    from elue_hf.demo.context import DemoContext, OperatingPoint
    from elue_hf.demo import elue as demo
    from elue_hf.elue.flops import elasticbert_flops

    words = ["good movie", "bad plot", "great actor", "awful film", "fun story", "dull man"]
    test = datasets.Dataset.from_dict({"sentence": words, "label": [1, 0, 1, 0, 1, 0]})
    ctx = DemoContext(out_dir=tmp_path, tokenizer=_tokenizer(), data={"train": test, "test": test},
                      model=_elasticbert(), base_model_path=tmp_path, max_length=16)
    # 1. no upstream points: the section computes static points itself
    demo.run(ctx)
    text = capsys.readouterr().out
    assert "SST-2-like" in text and "ELUE score" in text
    assert all(p.mean_flops is not None for p in ctx.points) and len(ctx.points) == 3
    assert (tmp_path / "elue" / "submission_sst2_like.zip").exists()
    assert (tmp_path / "elue" / "pareto_sst2_like.png").exists()
    # 2. an upstream dynamic point gets its mean FLOPs from its own exit layers and lengths
    lengths, layers = [3, 4, 4, 4, 4, 4], [1, 3, 2, 1, 3, 3]
    ctx2 = DemoContext(out_dir=tmp_path / "two", tokenizer=_tokenizer(), data={"test": test}, model=_elasticbert(),
                       base_model_path=tmp_path)
    ctx2.points.append(OperatingPoint("ElasticBERT entropy", "H<0.3", 50.0, extra={
        "predictions": [1, 0, 0, 0, 1, 1], "exit_layers": layers, "lengths": lengths, "mode": "dynamic"}))
    ctx2.points.append(OperatingPoint("LPT", "no extras", 70.0, mean_flops=12.0))
    demo.run(ctx2)
    expected = np.mean(elasticbert_flops(ctx2.model.config, np.array(lengths), np.array(layers), "dynamic"))
    assert ctx2.points[0].mean_flops == pytest.approx(expected)
    assert ctx2.points[1].mean_flops == 12.0
    tsv = (tmp_path / "two" / "elue" / "flops_per_instance.tsv").read_text().splitlines()
    assert tsv[0] == "index\tElasticBERT entropy H<0.3" and len(tsv) == 7
