"""DeBERTa-v2 / v3: disentangled attention with relative positions, a ConvLayer after layer 1 (some v2 checkpoints)
and a ``ContextPooler`` head.

Each layer takes the (batch, 1, n, n) product mask that ``DebertaV2Encoder.get_attention_mask`` builds from the 2-D
padding mask, the relative positions of the current length (``get_rel_pos``) and the (normalised) relative
embeddings (``get_rel_embedding``); the ConvLayer reads the 2-D mask. The adapter therefore carries the padding mask
as (batch, 1, 1, n) and rebuilds these from it at every layer, so rows and padding columns can leave between layers.
"""

from __future__ import annotations

import torch

from .base import BackboneAdapter, padding_mask

__all__ = ["DebertaV2Adapter"]


class DebertaV2Adapter(BackboneAdapter):
    model_types = ("deberta-v2",)
    family = "DeBERTa-v2"

    def build(self, config):
        if int(getattr(config, "z_steps", 0) or 0) > 1:
            raise ValueError("DeBERTa-v2 with z_steps > 1 (an enhanced mask decoder pass) cannot be made multi-exit")
        return super().build(config)

    def head_settings(self, config) -> dict:
        dropout = getattr(config, "cls_dropout", None)
        dropout = config.hidden_dropout_prob if dropout is None else dropout
        return {"pooler_activation": config.pooler_hidden_act, "pooler_dropout": config.pooler_dropout,
                "classifier_dropout": dropout}

    def head_weights(self, model):
        pooler = getattr(model, "pooler", None)
        if pooler is None or not hasattr(model, "classifier"):
            return {}
        if pooler.dense.in_features != model.config.hidden_size:
            raise ValueError("DeBERTa-v2 with pooler_hidden_size != hidden_size cannot be made multi-exit")
        return {
            "pooler.dense.weight": pooler.dense.weight, "pooler.dense.bias": pooler.dense.bias,
            "classifier.weight": model.classifier.weight, "classifier.bias": model.classifier.bias,
        }  # fmt: skip

    def embedding_modules(self, backbone):
        encoder = backbone.encoder
        extra = [m for m in (getattr(encoder, "rel_embeddings", None), getattr(encoder, "LayerNorm", None)) if m]
        return [backbone.embeddings, *extra]

    def embed(self, backbone, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
              inputs_embeds=None):
        reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
        if attention_mask is None:
            attention_mask = torch.ones(reference.shape[:2], dtype=torch.long, device=reference.device)
        if token_type_ids is None:
            token_type_ids = torch.zeros(reference.shape[:2], dtype=torch.long, device=reference.device)
        hidden = backbone.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
                                     mask=attention_mask, inputs_embeds=inputs_embeds)
        return hidden, padding_mask(attention_mask, hidden)

    def run_layer(self, backbone, i, hidden, mask=None, **kwargs):
        encoder = backbone.encoder
        if mask is None:
            mask = padding_mask(None, hidden)
        input_mask = mask[:, 0, 0, :].long()  # DeBERTa's own 0/1 form (its ConvLayer computes 1 - mask)
        output, _ = encoder.layer[i](hidden, encoder.get_attention_mask(input_mask),
                                     relative_pos=encoder.get_rel_pos(hidden),
                                     rel_embeddings=encoder.get_rel_embedding())
        if i == 0 and encoder.conv is not None:
            output = encoder.conv(hidden, output, input_mask)
        return output
