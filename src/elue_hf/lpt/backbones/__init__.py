"""Per-family backbone adapters for LPT (DeBERTa-v2/v3, GPT-2, Llama-style decoders).

BERT, RoBERTa and ElasticBERT keep the encoder paths of :class:`~elue_hf.lpt.LPTLayer`; every other family is described
by a :class:`HookedBackbone` subclass (where its layer list is, what the generator reads, how a layer call's mask and
positions change when the prompt is in the sequence).
"""

from __future__ import annotations

from torch import nn

from ..masks import extend_causal_mask
from .base import HookedBackbone, LatePromptCall, repeat_at_source
from .deberta import DebertaV2Backbone
from .decoder import (
    CausalDecoderBackbone,
    GPT2Backbone,
    RotaryDecoderBackbone,
    context_source_from_labels,
    last_valid_index,
)

__all__ = [
    "BACKBONES",
    "CausalDecoderBackbone",
    "DebertaV2Backbone",
    "GPT2Backbone",
    "HookedBackbone",
    "LatePromptCall",
    "RotaryDecoderBackbone",
    "backbone_for",
    "backbone_for_model_type",
    "context_source_from_labels",
    "extend_causal_mask",
    "last_valid_index",
    "repeat_at_source",
]

#: The adapters, one instance per family.
BACKBONES: tuple[HookedBackbone, ...] = (DebertaV2Backbone(), GPT2Backbone(), RotaryDecoderBackbone())


def backbone_for(module: nn.Module) -> HookedBackbone | None:
    """The adapter driving ``module`` (the body LPT wraps), or None for the BERT/RoBERTa/ElasticBERT encoder paths."""
    return next((backbone for backbone in BACKBONES if backbone.matches(module)), None)


def backbone_for_model_type(model_type: str | None) -> HookedBackbone | None:
    """The adapter for a ``config.model_type``, or None."""
    return next((backbone for backbone in BACKBONES if model_type in backbone.model_types), None)
