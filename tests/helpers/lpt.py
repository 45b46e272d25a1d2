"""Tiny backbones, inputs and a tiny WordPiece tokenizer shared by the LPT tests."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertTokenizer, RobertaConfig

import elue_hf.lpt  # noqa: F401  (registers LPT with PEFT)

VOCAB = 120

WORDS = (
    "[PAD] [UNK] [CLS] [SEP] [MASK] it was . ? , great terrible yes no maybe the a movie film plot is not good bad "
    "very fun boring and of story actors , ! ##s ##ly ##ing"
).split()


_COMMON = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64)


def _with_attention(config, attn: str):
    config._attn_implementation = attn  # "sdpa" (boolean masks) or "eager" (additive float masks)
    return config


def bert_config(attn="sdpa", **overrides) -> BertConfig:
    return _with_attention(BertConfig(**{**_COMMON, "max_position_embeddings": 64, "num_labels": 2, **overrides}), attn)


def roberta_config(attn="sdpa", **overrides) -> RobertaConfig:
    fields = {**_COMMON, "max_position_embeddings": 70, "num_labels": 2, "pad_token_id": 1, "bos_token_id": 0}
    return _with_attention(RobertaConfig(**{**fields, "eos_token_id": 2, **overrides}), attn)


def elasticbert_config(attn="sdpa", **overrides):
    """The ElasticBERT tests' tiny config (4 layers, 4 exits, 3 labels) over this module's vocabulary."""
    from tests.helpers.elasticbert import tiny_config

    return _with_attention(tiny_config(**{"vocab_size": VOCAB, **overrides}), attn)


def padded_batch(batch_size=4, seq_len=10, vocab=VOCAB, seed=0, first_id=2, pad_id=0):
    """Random ids with right padding of various lengths (row 0 unpadded, the last row shortest)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch_size, seq_len), generator=g)
    lengths = torch.linspace(seq_len, 3, batch_size).round().long()
    mask = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()
    ids = torch.where(mask.bool(), ids, torch.full_like(ids, pad_id))
    ids[:, 0] = first_id
    return ids, mask


def tiny_tokenizer(tmp_path) -> BertTokenizer:
    """A real (tokenizers-backed) uncased WordPiece tokenizer over :data:`WORDS`."""
    path = tmp_path / "vocab.txt"
    seen = list(dict.fromkeys(WORDS))
    path.write_text("\n".join(seen) + "\n")
    return BertTokenizer(vocab=str(path), do_lower_case=True)


def trainable_names(model) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}
