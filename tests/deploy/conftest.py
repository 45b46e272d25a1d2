"""Tiny random ElasticBERTs and their ONNX bundles, exported once per session (an export takes seconds)."""

from __future__ import annotations

import pytest


def tiny_model(pooling="cls", num_labels=2, num_output_layers=4, seed=0, vocab_size=120):
    import torch

    from elue_hf import ElasticBertConfig, ElasticBertForSequenceClassification

    torch.manual_seed(seed)
    config = ElasticBertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                               intermediate_size=64, max_output_layers=4, num_output_layers=num_output_layers,
                               num_labels=num_labels, pooling=pooling, max_position_embeddings=64)
    model = ElasticBertForSequenceClassification(config).eval()
    with torch.no_grad():  # spread the exits' confidences so that thresholds separate rows
        for head in getattr(model, "classifiers", []):
            head.weight.normal_(0, 2.0)
    return model


def random_batch(batch=12, seq=16, vocab=120, seed=1):
    import torch

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, seq), generator=g)
    lengths = torch.randint(3, seq + 1, (batch,), generator=g)
    mask = (torch.arange(seq)[None, :] < lengths[:, None]).long()
    ids = ids * mask
    types = torch.zeros_like(ids)
    types[:, seq // 2 :] = 1
    return ids, mask, types * mask


@pytest.fixture(scope="session")
def bundles(tmp_path_factory):
    """{(pooling, num_labels): (model, bundle folder)} for [CLS]/mean classification and a regression head."""
    from elue_hf.deploy import export_elasticbert

    out = {}
    for key in (("cls", 2), ("mean", 3), ("cls", 1)):
        model = tiny_model(*key)
        folder = tmp_path_factory.mktemp(f"bundle_{key[0]}_{key[1]}")
        out[key] = (model, export_elasticbert(model, folder, overwrite=True))
    return out
