"""BERT, RoBERTa, ElasticBERT, XLM-RoBERTa and CamemBERT (post-LN layers, pooler on [CLS]): the original ELUE rule
(docs/elue.md). ``BertSelfAttention`` and ``RobertaSelfAttention`` are counted by :mod:`..hooks`; the copies in the
XLM-RoBERTa and CamemBERT modules (not subclasses) get the same rule here."""

from __future__ import annotations

from . import Architecture
from ._common import attention_leaf_rule, import_class
from .shape import EncoderShape, ExitShape, LayerShape

__all__ = ["ARCHITECTURE", "bert_like_shape", "shape_from_dims"]


def bert_like_shape(family: str, d: int, d_ff: int, heads: int, num_layers: int, labels: int,
                    exit_layers: tuple[int, ...] | None = None, pooler: bool = True) -> EncoderShape:
    """Embedding LayerNorm over d, ``num_layers`` identical post-LN layers, exits with a d x d pooler."""
    layer = LayerShape(d, d_ff, heads)
    return EncoderShape(family, embedding_norm=d, layers=(layer,) * num_layers, exit=ExitShape(d, labels, pooler),
                        exit_layers=exit_layers or (num_layers,))


def shape_from_dims(dims, family: str = "bert") -> EncoderShape:
    """The :class:`EncoderShape` of a :class:`..analytic.ModelDims` (same numbers as the ModelDims formulas)."""
    return bert_like_shape(family, dims.hidden, dims.intermediate, dims.heads, dims.num_layers, dims.num_labels,
                           dims.exit_layers, dims.pooler)


def _shape(config, num_labels=None) -> EncoderShape:
    from ..analytic import dims_from_config

    return shape_from_dims(dims_from_config(config, num_labels), getattr(config, "model_type", "bert"))


def _rules() -> dict:
    rule = attention_leaf_rule(heads=lambda m: m.num_attention_heads, inner=lambda m: m.all_head_size)
    classes = (import_class("xlm_roberta.modeling_xlm_roberta", "XLMRobertaSelfAttention"),
               import_class("camembert.modeling_camembert", "CamembertSelfAttention"))
    return {klass: rule for klass in classes if klass is not None}


ARCHITECTURE = Architecture("bert", ("bert", "roberta", "elasticbert", "xlm-roberta", "camembert"), _shape, _rules)
