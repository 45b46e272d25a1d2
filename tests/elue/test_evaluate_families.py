"""``elue-hf evaluate --model DIR`` on local classifiers of every FLOPs family (tiny random weights, synthetic data):
one static operating point, FLOPs from the family rule (verified through the module spec) or the generic route."""

import argparse
import json

import numpy as np
import pytest
import torch
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    BertTokenizer,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    MobileBertConfig,
    MobileBertForSequenceClassification,
    ModernBertConfig,
    ModernBertForSequenceClassification,
)

from elue_hf.commands import evaluate as cli
from elue_hf.elue.data import load_elue_split, token_lengths
from elue_hf.elue.flops import model_flops
from tests.helpers.elue_fixtures import synthetic_vocab, write_synthetic_elue

V = len(synthetic_vocab())
SMALL = dict(hidden_size=32, num_attention_heads=4, intermediate_size=48, max_position_embeddings=128, vocab_size=V)

MODELS = {
    "distilbert": lambda: DistilBertForSequenceClassification(
        DistilBertConfig(dim=32, hidden_dim=48, n_heads=4, n_layers=2, vocab_size=V, max_position_embeddings=128)),
    "albert": lambda: AlbertForSequenceClassification(AlbertConfig(embedding_size=16, num_hidden_layers=2, **SMALL)),
    "deberta-v2": lambda: DebertaV2ForSequenceClassification(DebertaV2Config(
        num_hidden_layers=2, relative_attention=True, position_buckets=16, pos_att_type="p2c|c2p",
        norm_rel_ebd="layer_norm", share_att_key=True, **SMALL)),
    "modernbert": lambda: ModernBertForSequenceClassification(ModernBertConfig(
        num_hidden_layers=3, local_attention=8, pad_token_id=0, bos_token_id=2, eos_token_id=3, cls_token_id=2,
        sep_token_id=3, **SMALL)),
    "mobilebert": lambda: MobileBertForSequenceClassification(MobileBertConfig(
        hidden_size=64, embedding_size=32, intra_bottleneck_size=16, true_hidden_size=16, num_attention_heads=2,
        intermediate_size=32, num_hidden_layers=2, num_feedforward_networks=2, vocab_size=V)),
}


def _run(argv):
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_synthetic_elue(tmp_path_factory.mktemp("data"), ["sst-2"], sizes={"test": 12})


@pytest.mark.slow
@pytest.mark.parametrize("family", list(MODELS))
def test_evaluate_scores_a_local_classifier_of_each_family(family, data, tmp_path, capsys):
    torch.manual_seed(0)
    model = MODELS[family]().eval()
    tokenizer = BertTokenizer(vocab=synthetic_vocab())
    if family in ("distilbert", "modernbert"):  # as their own tokenizers: no token_type_ids
        tokenizer.model_input_names = ["input_ids", "attention_mask"]
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    out = tmp_path / "out"
    assert _run(["evaluate", "--model", str(tmp_path / "model"), "--task", "sst-2", "--data-dir", str(data),
                 "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    manifest = json.loads((out / "submission" / "submission.json").read_text())
    assert len(manifest["files"]) == 1  # static: one operating point
    lengths = token_lengths(tokenizer, "sst-2", load_elue_split(data, "sst-2", "test"), 128)
    if family == "mobilebert":  # no family rule: generic route, self-reported FLOPs, flagged
        assert "generic route" in printed and manifest["extra"] == {"flops_route": "generic"}
        assert "module_spec" not in manifest or manifest["module_spec"] is None
        assert "self-reported" in printed
    else:
        assert "analytic route" in printed and "consistent" in printed
        assert manifest["module_spec"]["layer_1"]["kind"] == "layer"
        assert manifest["files"][0]["flops_source"] == "modules"
        expected = float(np.mean(model_flops(model.config, lengths)))
        assert manifest["files"][0]["mean_flops"] == pytest.approx(expected, rel=1e-9)
