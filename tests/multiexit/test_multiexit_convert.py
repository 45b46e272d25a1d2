"""``convert_to_multi_exit`` and ``elue-hf convert`` for every family (tiny random checkpoints in folders)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, GPT2Config, GPT2Model

import elue_hf  # noqa: F401
from elue_hf.cli import main
from elue_hf.elasticbert import convert_bert_to_elasticbert
from elue_hf.multiexit import convert_to_multi_exit
from tests.helpers.tiny_families import FAMILIES, padded_batch, tiny_classifier
from tests.helpers.tiny_models import save_tiny_bert, synthetic_tokenizer


@pytest.fixture(scope="module", params=FAMILIES)
def family_dir(request, tmp_path_factory):
    """A fine-tuned-looking classifier folder of one family, with a tokenizer."""
    folder = tmp_path_factory.mktemp(request.param)
    tiny_classifier(request.param).save_pretrained(folder)
    synthetic_tokenizer().save_pretrained(folder)
    return folder


def test_cli_converts_every_family_keeping_its_head_and_tokenizer(family_dir, tmp_path, capsys):
    out = tmp_path / "multi"
    assert main(["convert", "--model", str(family_dir), "--output-dir", str(out), "--exits", "1,2"]) == 0
    printed = capsys.readouterr().out
    assert "multi-exit" in printed and "exits on layers [1, 2, 3]" in printed and "3 labels" in printed
    assert "auto_map" not in json.loads((out / "config.json").read_text())
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    source = AutoModelForSequenceClassification.from_pretrained(family_dir).eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        assert torch.allclose(model(input_ids=ids, attention_mask=mask).logits,
                              source(input_ids=ids, attention_mask=mask).logits, atol=1e-5)
    assert len(AutoTokenizer.from_pretrained(out)("the dog runs")["input_ids"]) > 2


def test_exits_subset_and_static(family_dir):
    model = convert_to_multi_exit(str(family_dir), exits=[2])
    assert model.config.exit_layers == [2, 3] and len(model.classifiers) == 2
    assert model.multiexit.encoder.pooler[0] is None
    static = convert_to_multi_exit(str(family_dir), exits=[3], num_labels=1)
    assert static.is_static and static.config.num_labels == 1


def test_mean_pooling_and_a_new_label_count(family_dir):
    model = convert_to_multi_exit(str(family_dir), pooling="mean", num_labels=5)
    assert model.config.pooling == "mean" and model.classifiers[-1].out_features == 5
    ids, mask = padded_batch()
    with torch.no_grad():
        assert model(input_ids=ids, attention_mask=mask).all_logits.shape == (4, 3, 5)


def test_unsupported_model_is_one_sentence(tmp_path, capsys):
    GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)).save_pretrained(tmp_path / "gpt2")
    assert main(["convert", "--model", str(tmp_path / "gpt2"), "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "model_type 'gpt2'" in err and "RoBERTa" in err and "ModernBERT" in err and "Traceback" not in err
    with pytest.raises(ValueError, match="outside the model's layers"):
        convert_to_multi_exit(tiny_classifier("roberta"), exits="2,9")
    with pytest.raises(ValueError, match="comma-separated"):
        convert_to_multi_exit(tiny_classifier("roberta"), exits="two")


def test_bert_still_becomes_the_same_elasticbert(tmp_path):
    bert_dir = save_tiny_bert(tmp_path / "bert", num_labels=2)
    torch.manual_seed(0)
    ours = convert_to_multi_exit(str(bert_dir), num_labels=4)
    torch.manual_seed(0)
    reference = convert_bert_to_elasticbert(bert_dir, num_labels=4)
    assert ours.config.model_type == "elasticbert"
    ours_state, ref_state = ours.state_dict(), reference.state_dict()
    assert ours_state.keys() == ref_state.keys()
    assert all(torch.equal(ours_state[k], ref_state[k]) for k in ref_state if not k.startswith("classifiers."))
    with pytest.raises(ValueError, match="top range"):
        convert_to_multi_exit(str(bert_dir), exits="1,3")


def test_bert_classifier_keeps_its_head(tmp_path):
    bert_dir = save_tiny_bert(tmp_path / "bert", num_labels=2)
    source = AutoModelForSequenceClassification.from_pretrained(bert_dir).eval()
    converted = convert_to_multi_exit(str(bert_dir))
    ids, mask = padded_batch()
    ids = ids.clamp(max=source.config.vocab_size - 1)
    with torch.no_grad():
        assert torch.allclose(converted(input_ids=ids, attention_mask=mask).logits,
                              source(input_ids=ids, attention_mask=mask).logits, atol=1e-5)
