"""DeBERTa-v2 / v3 (``model_type`` ``deberta-v2``): a bidirectional encoder with disentangled relative attention.

Decisions (see ``docs/lpt-backbones.md``):

* The prompt is prepended after layer ``k`` (as for BERT); the generator reads [CLS] (NPG) or pools the real tokens.
* **Relative positions.** The prompt rows take relative positions as if they stood in front of [CLS]: the relative
  position matrix of layers ``>= k`` is rebuilt for ``l + n`` positions (same buckets and maximum distance). Relative
  distances between real tokens are unchanged, so the prompt adds no shift to them.
* **Mask.** DeBERTa's (b, 1, n, n) 0/1 mask is turned boolean and extended like BERT's: every query may attend to the
  prompt, prompt queries attend to the prompt and every real token.
* The convolution of DeBERTa-v2-xxlarge (``conv_kernel_size > 0``) mixes layer 0's input and output, so the prompt must
  go in after layer 0 there (``prompt_layer >= 1``).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ..masks import extend_attention_mask, token_keep_mask
from .base import HookedBackbone, LatePromptCall, call_argument, set_call_argument

__all__ = ["DebertaV2Backbone"]


class DebertaV2Backbone(HookedBackbone):
    """``DebertaV2Encoder`` (``deberta.encoder.layer``)."""

    model_types = ("deberta-v2",)
    target_module = "encoder"
    layer_attr = "layer"

    def _matches(self, module: nn.Module) -> bool:
        return type(module).__name__ == "DebertaV2Encoder"

    def check(self, module: nn.Module, prompt_layer: int) -> None:
        if getattr(module, "conv", None) is not None and prompt_layer < 1:
            raise ValueError(
                "This DeBERTa-v2 model has a convolution after layer 0 (conv_kernel_size > 0): set prompt_layer >= 1."
            )

    def begin(self, module: nn.Module, bound: inspect.BoundArguments, k: int, num_tokens: int):
        hidden = call_argument(bound, "hidden_states")
        if call_argument(bound, "query_states") is not None or call_argument(bound, "relative_pos") is not None:
            raise ValueError("LPT on DeBERTa-v2 does not support query_states / relative_pos overrides.")
        b, n = hidden.shape[0], hidden.shape[1]
        keep = token_keep_mask(_as_keep(call_argument(bound, "attention_mask")), b, n, hidden.device)
        return keep, None, False, {}

    def rewrite_layer_call(self, call: LatePromptCall, bound: inspect.BoundArguments, index: int) -> None:
        mask = call_argument(bound, "attention_mask")
        set_call_argument(bound, "attention_mask", extend_attention_mask(_as_keep(mask), call.num_tokens))
        if call_argument(bound, "relative_pos") is not None:
            hidden = call_argument(bound, "hidden_states")
            set_call_argument(bound, "relative_pos", call.module.get_rel_pos(hidden))


def _as_keep(mask):
    """DeBERTa's multiplicative 0/1 mask as a boolean ``True`` = attend mask (None stays None)."""
    if mask is None or not isinstance(mask, torch.Tensor) or mask.dtype == torch.bool:
        return mask
    return mask != 0
