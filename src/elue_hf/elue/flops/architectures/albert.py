"""ALBERT: embeddings of width E with their LayerNorm, the E -> d projection (``embedding_hidden_mapping_in``,
counted per token), shared BERT layers counted **per use** (num_hidden_layers x inner_group_num uses), pooler +
classifier.

The attention module holds Q, K, V, the output dense and its LayerNorm, so the hooked rule counts all of them."""

from __future__ import annotations

from ._common import attention_leaf_rule, config_int, import_class, labels_of
from .registry import Architecture
from .shape import EncoderShape, ExitShape, LayerShape

__all__ = ["ARCHITECTURE"]


def _shape(config, num_labels=None) -> EncoderShape:
    d = config_int(config, "hidden_size")
    emb = config_int(config, "embedding_size")
    uses = config_int(config, "num_hidden_layers") * config_int(config, "inner_group_num")
    layer = LayerShape(d, config_int(config, "intermediate_size"), config_int(config, "num_attention_heads"))
    return EncoderShape("albert", embedding_norm=emb, embedding_proj=(emb, d), layers=(layer,) * uses,
                        exit=ExitShape(d, labels_of(config, num_labels)), exit_layers=(uses,))


def _rules() -> dict:
    klass = import_class("albert.modeling_albert", "AlbertAttention")
    rule = attention_leaf_rule(heads=lambda m: m.num_attention_heads, inner=lambda m: m.all_head_size)
    return {} if klass is None else {klass: rule}


ARCHITECTURE = Architecture("albert", ("albert",), _shape, _rules)
