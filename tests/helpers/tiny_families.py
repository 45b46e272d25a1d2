"""Tiny random configs of every family the multi-exit model supports (tests only)."""

from __future__ import annotations

import torch
from transformers import (
    AutoModelForSequenceClassification,
    CamembertConfig,
    DebertaV2Config,
    DistilBertConfig,
    ElectraConfig,
    ModernBertConfig,
    RobertaConfig,
    XLMRobertaConfig,
)

__all__ = ["FAMILIES", "tiny_config", "tiny_classifier", "padded_batch"]

VOCAB = 99
_BERT_LIKE = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=64, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)

FAMILIES = ("roberta", "xlm-roberta", "camembert", "electra", "distilbert", "deberta-v2", "modernbert")


def tiny_config(family: str, num_labels: int = 3, attn: str = "eager", **overrides):
    """A 3-layer, hidden-32 config of ``family`` (DeBERTa-v3-style relative attention; ModernBERT with a local
    layer whose window is smaller than the test sequences); ``num_hidden_layers`` is passed to the constructor
    (ModernBERT derives its ``layer_types`` from it), the other ``overrides`` are set afterwards."""
    layers = overrides.pop("num_hidden_layers", 3)
    if family in ("roberta", "xlm-roberta", "camembert"):
        klass = {"roberta": RobertaConfig, "xlm-roberta": XLMRobertaConfig, "camembert": CamembertConfig}[family]
        config = klass(**{**_BERT_LIKE, "num_hidden_layers": layers}, pad_token_id=1)
    elif family == "electra":
        config = ElectraConfig(**{**_BERT_LIKE, "num_hidden_layers": layers}, embedding_size=16)
    elif family == "distilbert":
        config = DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=layers, n_heads=4, hidden_dim=37,
                                  max_position_embeddings=64)
    elif family == "deberta-v2":
        config = DebertaV2Config(**{**_BERT_LIKE, "num_hidden_layers": layers}, relative_attention=True,
                                 position_buckets=8, max_relative_positions=16,
                                 pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", share_att_key=True,
                                 type_vocab_size=0, conv_kernel_size=3, pooler_hidden_size=32)
    elif family == "modernbert":
        config = ModernBertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=layers,
                                  num_attention_heads=4, intermediate_size=37, max_position_embeddings=64,
                                  global_attn_every_n_layers=2,
                                  local_attention=4, pad_token_id=0, bos_token_id=2, eos_token_id=3,
                                  cls_token_id=2, sep_token_id=3)
    else:
        raise ValueError(family)
    config.num_labels = num_labels
    config._attn_implementation = attn
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


def tiny_classifier(family: str, num_labels: int = 3, seed: int = 0, attn: str = "eager", **overrides):
    """A random ``*ForSequenceClassification`` of ``family`` in eval mode."""
    torch.manual_seed(seed)
    config = tiny_config(family, num_labels, attn, **overrides)
    return AutoModelForSequenceClassification.from_config(config).eval()


def padded_batch(lengths=(9, 5, 7, 3), seed: int = 0):
    """``input_ids`` (ids 4..VOCAB-1, first token 2) and a right-padding ``attention_mask`` for rows of ``lengths``."""
    generator = torch.Generator().manual_seed(seed)
    n = max(lengths)
    ids = torch.randint(4, VOCAB, (len(lengths), n), generator=generator)
    ids[:, 0] = 2
    mask = torch.zeros_like(ids)
    for row, length in enumerate(lengths):
        mask[row, :length] = 1
        ids[row, length:] = 1  # a pad-like id, masked out
    return ids, mask
