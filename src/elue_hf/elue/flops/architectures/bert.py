"""BERT, RoBERTa, ElasticBERT, XLM-RoBERTa and CamemBERT (post-LN layers, pooler on [CLS]): the original ELUE rule
(docs/elue.md). ``BertSelfAttention`` and ``RobertaSelfAttention`` are counted by :mod:`..hooks`; the copies in the
XLM-RoBERTa and CamemBERT modules (not subclasses) get the same rule here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..primitives import _num, _out
from ._common import attention_leaf_rule, import_class
from .registry import Architecture, needs_encoder_shape
from .shape import EncoderShape, ExitShape, LayerShape

__all__ = ["ARCHITECTURE", "ModelDims", "dims_from_config", "bert_like_shape", "shape_from_dims"]


@dataclass(frozen=True)
class ModelDims:
    """What the ELUE formula needs from a BERT-family classifier config."""

    hidden: int
    intermediate: int
    heads: int
    num_layers: int
    num_labels: int
    exit_layers: tuple[int, ...]  # 1-based layers that carry an exit (pooler + classifier)
    pooler: bool = True  # BERT pooler / RoBERTa head dense: d^2 per exit

    def exits_up_to(self, exit_layer):
        """Number of exits at layers <= ``exit_layer`` (vectorised)."""
        layers = np.asarray(self.exit_layers)
        return _out(np.searchsorted(layers, _num(exit_layer), side="right"))


def dims_from_config(config, num_labels: int | None = None) -> ModelDims:
    """Read d, d_ff, heads, layers, labels and the exit layout from a BERT / RoBERTa / ElasticBERT config."""
    if needs_encoder_shape(config):
        raise ValueError(
            f"model_type {config.model_type!r} is not a BERT-layer model; use "
            "elue_hf.elue.flops.encoder_shape(config) (its own ELUE rule)"
        )
    missing = [a for a in ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers")
               if getattr(config, a, None) is None]
    if missing:
        raise ValueError(f"config {type(config).__name__} lacks {missing}; not a BERT-family encoder config")
    layers = int(config.num_hidden_layers)
    labels = int(num_labels if num_labels is not None else getattr(config, "num_labels", 2))
    if getattr(config, "model_type", "") == "elasticbert":
        num_out = int(getattr(config, "num_output_layers", None) or layers)
    else:
        num_out = 1  # BERT / RoBERTa: one head on the last layer
    if not 1 <= num_out <= layers:
        raise ValueError(f"num_output_layers={num_out} must lie in [1, num_hidden_layers={layers}]")
    exits = tuple(range(layers - num_out + 1, layers + 1))
    return ModelDims(
        hidden=int(config.hidden_size),
        intermediate=int(config.intermediate_size),
        heads=int(config.num_attention_heads),
        num_layers=layers,
        num_labels=labels,
        exit_layers=exits,
    )


def bert_like_shape(family: str, d: int, d_ff: int, heads: int, num_layers: int, labels: int,
                    exit_layers: tuple[int, ...] | None = None, pooler: bool = True) -> EncoderShape:
    """Embedding LayerNorm over d, ``num_layers`` identical post-LN layers, exits with a d x d pooler."""
    layer = LayerShape(d, d_ff, heads)
    return EncoderShape(family, embedding_norm=d, layers=(layer,) * num_layers, exit=ExitShape(d, labels, pooler),
                        exit_layers=exit_layers or (num_layers,))


def shape_from_dims(dims, family: str = "bert") -> EncoderShape:
    """The :class:`EncoderShape` of a :class:`ModelDims` (same numbers as the ModelDims formulas)."""
    return bert_like_shape(family, dims.hidden, dims.intermediate, dims.heads, dims.num_layers, dims.num_labels,
                           dims.exit_layers, dims.pooler)


def _shape(config, num_labels=None) -> EncoderShape:
    return shape_from_dims(dims_from_config(config, num_labels), getattr(config, "model_type", "bert"))


def _rules() -> dict:
    rule = attention_leaf_rule(heads=lambda m: m.num_attention_heads, inner=lambda m: m.all_head_size)
    classes = (import_class("xlm_roberta.modeling_xlm_roberta", "XLMRobertaSelfAttention"),
               import_class("camembert.modeling_camembert", "CamembertSelfAttention"))
    return {klass: rule for klass in classes if klass is not None}


ARCHITECTURE = Architecture("bert", ("bert", "roberta", "elasticbert", "xlm-roberta", "camembert"), _shape, _rules)
