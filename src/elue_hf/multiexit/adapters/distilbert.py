"""DistilBERT: ``transformer.layer[i]`` blocks, no token-type embeddings, head ``pre_classifier`` + ReLU."""

from __future__ import annotations

from transformers.masking_utils import create_bidirectional_mask

from .base import BackboneAdapter, drop_token_types

__all__ = ["DistilBertAdapter"]


class DistilBertAdapter(BackboneAdapter):
    model_types = ("distilbert",)
    family = "DistilBERT"

    def head_settings(self, config) -> dict:
        return {"pooler_activation": "relu", "pooler_dropout": 0.0, "classifier_dropout": config.seq_classif_dropout}

    def head_weights(self, model):
        if not hasattr(model, "pre_classifier"):
            return {}
        return {
            "pooler.dense.weight": model.pre_classifier.weight, "pooler.dense.bias": model.pre_classifier.bias,
            "classifier.weight": model.classifier.weight, "classifier.bias": model.classifier.bias,
        }  # fmt: skip

    def layers(self, backbone):
        return backbone.transformer.layer

    def embed(self, backbone, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
              inputs_embeds=None):
        drop_token_types(self.family, token_type_ids)
        hidden = backbone.embeddings(input_ids, inputs_embeds, position_ids)
        mask = create_bidirectional_mask(config=backbone.config, inputs_embeds=hidden, attention_mask=attention_mask)
        return hidden, mask
