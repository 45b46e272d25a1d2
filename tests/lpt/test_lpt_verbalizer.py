"""Verbalizer (MLM-head) mode, templates and label words."""

import pytest
import torch
import torch.nn.functional as F
from peft import get_peft_model
from transformers import BertForMaskedLM, BertForSequenceClassification, RobertaForMaskedLM

from elue_hf.lpt import LPTConfig, encode_with_template, get_template, label_word_ids
from elue_hf.lpt.templates import Template
from tests.helpers.lpt import bert_config, padded_batch, roberta_config, tiny_tokenizer, trainable_names

MASK_ID, WORDS = 4, [10, 11]


def _verbalizer(model, **overrides):
    options = dict(
        task_type="SEQ_CLS",
        head_mode="verbalizer",
        label_word_ids=WORDS,
        mask_token_id=MASK_ID,
        num_prompt_tokens=3,
        bottleneck_size=8,
        prompt_layer=2,
    )
    options.update(overrides)
    return get_peft_model(model, LPTConfig(**options))


def _masked_batch(pad_id=0, first_id=2):
    ids, mask = padded_batch(pad_id=pad_id, first_id=first_id)
    ids[ids == MASK_ID] = 7
    positions = torch.tensor([5, 1, 3, 2])
    ids[torch.arange(4), positions] = MASK_ID
    return ids, mask, positions


@pytest.mark.parametrize(
    "make, pad, first",
    [(lambda: BertForMaskedLM(bert_config()), 0, 2), (lambda: RobertaForMaskedLM(roberta_config()), 1, 0)],
    ids=["bert", "roberta"],
)
@pytest.mark.slow
def test_label_words_scored_by_the_frozen_mlm_head(make, pad, first):
    torch.manual_seed(0)
    pm = _verbalizer(make())
    ids, mask, positions = _masked_batch(pad, first)
    labels = torch.tensor([0, 1, 1, 0])
    out = pm(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (4, 2)
    # the same numbers from the full masked-LM pass through the LPT-wrapped encoder (prompt rows stripped)
    pm.eval()
    with torch.no_grad():
        eval_out = pm(input_ids=ids, attention_mask=mask, labels=labels)
        vocab = pm.base_model.model(input_ids=ids, attention_mask=mask).logits[torch.arange(4), positions]
    torch.testing.assert_close(eval_out.logits, vocab[:, WORDS])
    torch.testing.assert_close(eval_out.loss, F.cross_entropy(vocab, torch.tensor(WORDS)[labels]))  # full vocabulary
    out.loss.backward()
    assert {n for n, p in pm.named_parameters() if p.grad is not None} == trainable_names(pm)
    assert all(".lpt_generator." in n for n in trainable_names(pm))  # the MLM head stays frozen


def test_verbalizer_errors():
    with pytest.raises(ValueError, match="needs a masked-LM backbone"):
        _verbalizer(BertForSequenceClassification(bert_config()))
    pm = _verbalizer(BertForMaskedLM(bert_config()))
    ids, mask = padded_batch()
    ids[ids == MASK_ID] = 7
    with pytest.raises(ValueError, match="exactly one mask token"):
        pm(input_ids=ids, attention_mask=mask)


def test_templates_truncate_sentences_never_the_template(tmp_path):
    tok = tiny_tokenizer(tmp_path)
    template = get_template("elue-sst-2")
    assert label_word_ids(tok, template) == tok.convert_tokens_to_ids(["terrible", "great"])
    long_text = " ".join(["the movie is very good"] * 10)
    enc = encode_with_template(tok, template, [long_text, "a boring plot"], max_length=16)
    assert enc["input_ids"].shape == (2, 16)
    assert ((enc["input_ids"] == tok.mask_token_id).sum(1) == 1).all()
    first = tok.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    assert first[-5:] == ["it", "was", "[MASK]", ".", "[SEP]"]  # template tail intact
    short = tok.convert_ids_to_tokens(enc["input_ids"][1][enc["attention_mask"][1].bool()].tolist())
    assert short == ["[CLS]", "a", "boring", "plot", "it", "was", "[MASK]", ".", "[SEP]"]
    pair = encode_with_template(tok, get_template("elue-snli"), [long_text], [long_text], max_length=20)
    tokens = tok.convert_ids_to_tokens(pair["input_ids"][0].tolist())
    assert len(tokens) == 20 and tokens.count("[MASK]") == 1 and "?" in tokens and "," in tokens
    with pytest.raises(ValueError, match="longer than max_length"):
        encode_with_template(tok, template, ["good"], max_length=4)
    with pytest.raises(ValueError, match="not a single token"):
        label_word_ids(tok, ["films", "bad"])
    with pytest.raises(ValueError, match="not in the tokenizer's vocabulary"):
        label_word_ids(tok, ["wonderful", "bad"])
    with pytest.raises(ValueError, match="texts_pair"):
        encode_with_template(tok, get_template("elue-mrpc"), ["a"])
    with pytest.raises(ValueError, match="exactly one"):
        Template("{s1} {mask} {mask}", ("a", "b"))
    with pytest.raises(KeyError, match="STS-B"):
        get_template("sts-b")


def test_template_end_to_end_on_a_tiny_masked_lm(tmp_path):
    tok = tiny_tokenizer(tmp_path)
    template = get_template("elue-sst-2")
    torch.manual_seed(0)
    model = BertForMaskedLM(bert_config(vocab_size=len(tok)))
    pm = _verbalizer(model, label_word_ids=label_word_ids(tok, template), mask_token_id=tok.mask_token_id)
    enc = encode_with_template(tok, template, ["a good film", "the story is boring and bad"], max_length=32)
    out = pm(**enc, labels=torch.tensor([1, 0]))
    assert out.logits.shape == (2, 2) and torch.isfinite(out.loss)
