"""ELECTRA (discriminator): BERT layers after an embedding block of width E (its LayerNorm over E) and, when
E != d, the ``embeddings_project`` Linear E -> d per token; head dense d x d + out_proj d x C (= pooler +
classifier)."""

from __future__ import annotations

from ._common import attention_leaf_rule, config_int, import_class, labels_of
from .registry import Architecture
from .shape import EncoderShape, ExitShape, LayerShape

__all__ = ["ARCHITECTURE"]


def _shape(config, num_labels=None) -> EncoderShape:
    d = config_int(config, "hidden_size")
    emb = config_int(config, "embedding_size", "hidden_size")
    num_layers = config_int(config, "num_hidden_layers")
    layer = LayerShape(d, config_int(config, "intermediate_size"), config_int(config, "num_attention_heads"))
    return EncoderShape("electra", embedding_norm=emb, embedding_proj=(emb, d) if emb != d else None,
                        layers=(layer,) * num_layers, exit=ExitShape(d, labels_of(config, num_labels)),
                        exit_layers=(num_layers,))


def _rules() -> dict:
    klass = import_class("electra.modeling_electra", "ElectraSelfAttention")
    rule = attention_leaf_rule(heads=lambda m: m.num_attention_heads, inner=lambda m: m.all_head_size)
    return {} if klass is None else {klass: rule}


ARCHITECTURE = Architecture("electra", ("electra",), _shape, _rules)
