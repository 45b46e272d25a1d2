"""Tiny ElasticBERT configs and inputs shared by the ElasticBERT tests."""

import torch

from elue_hf import ElasticBertConfig


def tiny_config(**overrides) -> ElasticBertConfig:
    fields = dict(
        vocab_size=97,
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        max_output_layers=4,
        num_output_layers=4,
        num_labels=3,
        layer_norm_eps=1e-8,
    )
    fields.update(overrides)
    return ElasticBertConfig(**fields)


def padded_batch(batch_size=6, seq_len=11, vocab=97, seed=0):
    """Random ids with right padding of various lengths (row 0 unpadded)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch_size, seq_len), generator=g)
    lengths = torch.randint(3, seq_len + 1, (batch_size,), generator=g)
    lengths[0] = seq_len
    mask = (torch.arange(seq_len)[None, :] < lengths[:, None]).long()
    ids = ids * mask
    ids[:, 0] = 2  # a [CLS]-like id
    return ids, mask
