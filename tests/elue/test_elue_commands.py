"""``elue-hf evaluate / score / recompute-imdb-flops`` on tiny models and synthetic data."""

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from elue_hf.commands import evaluate as cli
from tests.helpers.elue_fixtures import synthetic_vocab, write_synthetic_elue

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module

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


def _bert_folder(folder):
    """A tiny BERT classifier folder with its tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=len(synthetic_vocab()), **TINY)).save_pretrained(folder)
    _tokenizer().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    data = write_synthetic_elue(root / "data", ["sst-2", "imdb", "sts-b"], sizes={"test": 10})
    model_dir = root / "model"
    _elasticbert().save_pretrained(model_dir)
    _tokenizer().save_pretrained(model_dir)
    return root, data, model_dir


def _evaluate(model_dir, data, out, *extra, task="sst-2"):
    return _run(["evaluate", "--model", str(model_dir), "--task", task, "--data-dir", str(data), "--output",
                 str(out), "--no-progress", *extra])


def test_evaluate_static_sweep_writes_scored_submission(workspace, capsys):
    root, data, model_dir = workspace
    out = root / "out_static"
    assert _evaluate(model_dir, data, out, "--static", "1,3") == 0
    text = capsys.readouterr().out
    assert "static k=1" in text and "static k=3" in text and "ELUE score -" in text
    assert (out / "submission.zip").exists() and (out / "pareto_sst-2.png").stat().st_size > 1000
    manifest = json.loads((out / "submission" / "submission.json").read_text())
    params = {f["label"]: f["params"] for f in manifest["files"]}
    assert params["static k=1"] < params["static k=3"] < manifest["params"]  # static-k counts only what it uses
    assert all(f["flops_source"] == "modules" for f in manifest["files"])
    assert manifest["description"].startswith("elue-hf evaluate on the ELUE SST-2 test set")


def test_evaluate_mixes_exit_modes_in_one_pass_with_progress_on_stderr(workspace, capsys):
    root, data, model_dir = workspace
    out = root / "out_mixed"
    argv = ["evaluate", "--model", str(model_dir), "--task", "sst-2", "--data-dir", str(data), "--output", str(out),
            "--static", "--entropy", "0.1,0.7", "--patience", "1,2"]
    assert _run(argv) == 0
    captured = capsys.readouterr()
    assert "7 operating points from one pass" in captured.out
    assert "SST-2: all exits" in captured.err  # the tqdm bar
    manifest = json.loads((out / "submission" / "submission.json").read_text())
    assert [f["label"] for f in manifest["files"]] == [
        "static k=1", "static k=2", "static k=3", "entropy 0.10", "entropy 0.70", "patience 1", "patience 2"]


def test_evaluate_refuses_a_used_output_folder_unless_overwrite(workspace, capsys):
    root, data, model_dir = workspace
    out = root / "out_reuse"
    assert _evaluate(model_dir, data, out, "--static", "1,2,3") == 0
    assert len(list((out / "submission" / "sst-2").glob("*.tsv"))) == 3
    with pytest.raises(ValueError, match="already holds an earlier run .*pass --overwrite"):
        _evaluate(model_dir, data, out, "--static", "3")
    (out / "notes.txt").write_text("mine")
    assert _evaluate(model_dir, data, out, "--static", "3", "--overwrite") == 0
    assert [p.name for p in (out / "submission" / "sst-2").glob("*.tsv")] == ["static_k=3.tsv"]  # no stale TSVs
    assert (out / "notes.txt").read_text() == "mine"  # only evaluate's own outputs were replaced
    capsys.readouterr()


def test_evaluate_default_output_is_a_new_folder_per_run(tmp_path):
    from elue_hf.commands.evaluate import prepare_output

    first = prepare_output(None, "models/tiny", "sst-2", root=str(tmp_path))
    first.mkdir(parents=True)
    second = prepare_output(None, "models/tiny", "sst-2", root=str(tmp_path))
    assert first.parent == tmp_path and first.name.startswith("tiny-sst-2-") and second != first


def test_evaluate_data_name_and_tokenizer_flags(workspace, capsys):
    root, data, model_dir = workspace
    bare = root / "bare_model"  # a converted folder without tokenizer files
    _elasticbert().save_pretrained(bare)
    with pytest.raises(ValueError, match="has no tokenizer files .*; pass --tokenizer"):
        _evaluate(bare, data, root / "out_bare", "--static", "3")
    out = root / "out_named"
    assert _evaluate(bare, data, out, "--static", "3", "--tokenizer", str(model_dir), "--data-name", "my reviews") == 0
    assert "illustrative, not an ELUE result" in capsys.readouterr().out
    manifest = json.loads((out / "submission" / "submission.json").read_text())
    assert manifest["description"].startswith("elue-hf evaluate on my reviews (SST-2 format)")
    assert manifest["extra"] == {"data_name": "my reviews"}
    capsys.readouterr()
    assert _run(["score", str(out / "submission.zip"), "--data-dir", str(data)]) == 0  # score says it too
    assert ("(scored on my reviews against the reference curve of the ELUE SST-2 test set: illustrative, not an "
            "ELUE result)") in capsys.readouterr().out


def test_evaluate_an_lpt_adapter_uses_its_base_models_tokenizer(workspace, capsys):
    from peft import get_peft_model
    from transformers import BertForSequenceClassification

    from elue_hf.lpt import LPTConfig

    root, data, _ = workspace
    base = BertForSequenceClassification.from_pretrained(_bert_folder(root / "lpt_base"))
    adapter = get_peft_model(base, LPTConfig(task_type="SEQ_CLS", num_prompt_tokens=2, bottleneck_size=8,
                                             prompt_layer=1, generator="npg"))
    adapter.save_pretrained(root / "lpt_adapter")  # no tokenizer files: the adapter names its base model
    assert _evaluate(root / "lpt_adapter", data, root / "out_lpt") == 0
    assert (root / "out_lpt" / "submission.zip").exists()


def test_evaluate_entropy_and_errors(workspace, capsys):
    root, data, model_dir = workspace
    assert _evaluate(model_dir, data, root / "out_entropy", "--entropy", "0.1,0.7") == 0
    assert "entropy 0.70" in capsys.readouterr().out
    for removed in (["--sweep", "1"], ["--exit", "entropy"]):  # the pre-0.1 flags are gone (CHANGELOG.md)
        with pytest.raises(SystemExit):
            _evaluate(model_dir, data, root / "x", *removed)
    with pytest.raises(ValueError, match="--data-dir DIR"):
        _run(["evaluate", "--model", str(model_dir), "--task", "sst-2", "--output", str(root / "x")])
    with pytest.raises(ValueError, match="needs 1"):
        _evaluate(model_dir, data, root / "x", task="sts-b")
    with pytest.raises(ValueError, match="static depth 4 has no exit"):
        _evaluate(model_dir, data, root / "x", "--static", "4")


def test_evaluate_plain_bert_gives_one_full_depth_point(workspace, capsys):
    root, data, _ = workspace
    bert_dir = _bert_folder(root / "bert")
    assert _evaluate(bert_dir, data, root / "out_bert") == 0
    manifest = json.loads((root / "out_bert" / "submission" / "submission.json").read_text())
    assert [f["label"] for f in manifest["files"]] == ["static k=3"]
    assert "consistent" in capsys.readouterr().out
    with pytest.raises(ValueError, match="needs an ElasticBERT"):
        _evaluate(bert_dir, data, root / "x", "--entropy", "0.5")


def test_score_command_and_recompute_imdb(workspace, capsys):
    root, data, model_dir = workspace
    _evaluate(model_dir, data, root / "out_imdb", "--static", "3", task="imdb")
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



def test_evaluate_resolves_its_task_once_at_the_command_line(workspace, monkeypatch):
    """``--task`` becomes an ElueTask when the arguments are parsed; the run below never parses the user's name
    again (the only names looked up later are the canonical keys of the submission it writes and reads back)."""
    import sys

    from elue_hf.elue.tasks import TASKS, ElueTask, get_task

    root, data, model_dir = workspace
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["evaluate", "--model", str(model_dir), "--task", "SST2", "--data-dir", str(data),
                              "--output", str(root / "out_once"), "--no-progress", "--static", "1,3"])
    assert isinstance(args.task, ElueTask) and args.task.key == "sst-2"
    names = []

    def profile(frame, event, _arg):
        if event == "call" and frame.f_code is get_task.__code__:
            names.append(frame.f_locals["name"])

    sys.setprofile(profile)
    try:
        assert args.func(args) == 0
    finally:
        sys.setprofile(None)
    # the user's spelling is never parsed again; what is looked up by name are the canonical keys of the files the
    # run writes and reads back (the submission manifest, the reference curve)
    assert "SST2" not in names and {n for n in names if isinstance(n, str)} <= set(TASKS)
