"""DistilBERT: BERT layers (q/k/v/out_lin inside one attention module) and a pre_classifier d x d + classifier head.

Same per-layer MACs as BERT; ``config.dim`` / ``hidden_dim`` / ``n_heads`` / ``n_layers`` name the sizes."""

from __future__ import annotations

from ._common import attention_leaf_rule, config_int, import_class, labels_of
from .bert import bert_like_shape
from .registry import Architecture

__all__ = ["ARCHITECTURE"]


def _shape(config, num_labels=None):
    return bert_like_shape(
        "distilbert",
        config_int(config, "dim", "hidden_size"),
        config_int(config, "hidden_dim", "intermediate_size"),
        config_int(config, "n_heads", "num_attention_heads"),
        config_int(config, "n_layers", "num_hidden_layers"),
        labels_of(config, num_labels),
    )


def _rules() -> dict:
    klass = import_class("distilbert.modeling_distilbert", "DistilBertSelfAttention")
    rule = attention_leaf_rule(heads=lambda m: m.n_heads, inner=lambda m: m.dim)
    return {} if klass is None else {klass: rule}


ARCHITECTURE = Architecture("distilbert", ("distilbert",), _shape, _rules)
