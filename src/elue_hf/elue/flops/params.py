"""Parameter counts as ELUE defines them (docs/elue.md, "Parameter counting").

Everything the instance can use: all parameters (frozen ones too — they still run at inference), tied or shared
tensors once, buffers excluded, every exit included. MParams = count / 1e6.
"""

from __future__ import annotations

__all__ = ["count_parameters", "encoder_classifier_params"]


def count_parameters(model) -> int:
    """Number of parameters of ``model``, each shared/tied tensor once, buffers excluded, frozen ones included."""
    seen: set = set()
    total = 0
    for _, param in model.named_parameters(remove_duplicate=False):
        key = id(param) if param.device.type == "meta" or param.numel() == 0 else (
            param.untyped_storage().data_ptr(), param.storage_offset(), tuple(param.shape), param.dtype
        )
        if key in seen:
            continue
        seen.add(key)
        total += param.numel()
    return total


def encoder_classifier_params(
    num_layers: int,
    num_exits: int = 1,
    hidden: int = 768,
    intermediate: int = 3072,
    vocab: int = 30522,
    max_positions: int = 512,
    type_vocab: int = 2,
    num_labels: int = 2,
    pooler: bool = True,
) -> int:
    """Analytic count of a BERT-shape classifier: embeddings + layers + (pooler + classifier) per exit.

    ElasticBERT-base static k: ``encoder_classifier_params(k)``; dynamic with 12 exits: ``(12, 12)`` (116.00 M).
    """
    d, f = hidden, intermediate
    embeddings = (vocab + max_positions + type_vocab) * d + 2 * d
    layer = 4 * (d * d + d) + 2 * d + (d * f + f) + (f * d + d) + 2 * d
    exit_ = (d * d + d if pooler else 0) + d * num_labels + num_labels
    return embeddings + num_layers * layer + num_exits * exit_
