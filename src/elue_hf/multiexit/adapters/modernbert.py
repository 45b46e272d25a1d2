"""ModernBERT: pre-LN layers with rotary position embeddings, alternating global / local (sliding-window) attention,
a final LayerNorm, and a head ``dense -> act -> norm`` on the [CLS] state or the token mean.

transformers 5 runs ModernBERT padded (there is no unpadded path to follow). Every layer gets the mask of its own
attention type (``create_bidirectional_mask`` or ``create_bidirectional_sliding_window_mask``) and the rotary
``(cos, sin)`` of its type, both rebuilt from the (batch, 1, 1, n) padding mask and the current length, so rows and
padding columns can leave between layers. An exit reads the layer's output through the backbone's ``final_norm``
(what the family's head was trained on), then pools.

A late prompt (LPT, ``prompt_tokens`` leading rows) takes rotary positions 0..l-1 and the text moves right by l;
rotary attention depends on position differences only, so attention between real tokens is unchanged. In a
sliding-window layer the prompt would be visible only to the first tokens: there its rows and columns are made
global (``or_mask_function``), so every token reads the prompt and the prompt reads every token in every layer.
"""

from __future__ import annotations

import torch
from transformers.masking_utils import create_bidirectional_mask, create_bidirectional_sliding_window_mask

from .base import BackboneAdapter, drop_token_types, padding_mask

__all__ = ["ModernBertAdapter"]


def _global_rows(count: int):
    """A mask function (transformers' ``or_mask_function``) letting the first ``count`` positions (a late prompt)
    attend to and be attended by every position, outside the sliding window; padding still applies."""

    def inner(batch_idx, head_idx, q_idx, kv_idx):
        return (q_idx < count) | (kv_idx < count)

    return inner


class ModernBertAdapter(BackboneAdapter):
    model_types = ("modernbert",)
    family = "ModernBERT"

    def head_settings(self, config) -> dict:
        return {"pooler_activation": config.classifier_activation, "pooler_dropout": 0.0, "pooler_norm": True,
                "pooler_bias": bool(config.classifier_bias), "classifier_dropout": config.classifier_dropout,
                "pooling": config.classifier_pooling}

    def head_weights(self, model):
        head = getattr(model, "head", None)
        if head is None or not hasattr(model, "classifier"):
            return {}
        weights = {"pooler.dense.weight": head.dense.weight, "pooler.norm.weight": head.norm.weight,
                   "classifier.weight": model.classifier.weight, "classifier.bias": model.classifier.bias}
        for name, module in (("pooler.dense.bias", head.dense), ("pooler.norm.bias", head.norm)):
            if module.bias is not None:
                weights[name] = module.bias
        return weights

    def layers(self, backbone):
        return backbone.layers

    def embedding_modules(self, backbone):
        return [backbone.embeddings]

    def embed(self, backbone, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
              inputs_embeds=None):
        drop_token_types(self.family, token_type_ids)
        if position_ids is not None:
            raise ValueError("ModernBERT's multi-exit model numbers positions itself (0..n-1); drop position_ids")
        hidden = backbone.embeddings(input_ids=input_ids, inputs_embeds=inputs_embeds)
        return hidden, padding_mask(attention_mask, hidden)

    def run_layer(self, backbone, i, hidden, mask=None, prompt_tokens=0, **kwargs):
        layer = backbone.layers[i]
        padding = None if mask is None else mask[:, 0, 0, :]
        if layer.attention_type == "sliding_attention":
            layer_mask = create_bidirectional_sliding_window_mask(
                config=backbone.config, inputs_embeds=hidden, attention_mask=padding,
                or_mask_function=_global_rows(prompt_tokens) if prompt_tokens else None,
            )  # fmt: skip
        else:
            layer_mask = create_bidirectional_mask(config=backbone.config, inputs_embeds=hidden, attention_mask=padding)
        positions = torch.arange(hidden.shape[1], device=hidden.device)[None]
        rotary = backbone.rotary_emb(hidden, positions, layer.attention_type)
        return layer(hidden, attention_mask=layer_mask, position_embeddings=rotary, **kwargs)

    def exit_states(self, backbone, i, hidden):
        return backbone.final_norm(hidden)
