"""BERT-layer families: RoBERTa, XLM-RoBERTa, CamemBERT (``RobertaClassificationHead``) and ELECTRA (the same head
with GELU, and an ``embeddings_project`` when the embedding width differs from the hidden size)."""

from __future__ import annotations

from .base import BackboneAdapter

__all__ = ["RobertaAdapter", "ElectraAdapter"]


def _classification_head(model) -> dict:
    head = getattr(model, "classifier", None)
    if head is None or not hasattr(head, "out_proj"):
        return {}
    return {
        "pooler.dense.weight": head.dense.weight, "pooler.dense.bias": head.dense.bias,
        "classifier.weight": head.out_proj.weight, "classifier.bias": head.out_proj.bias,
    }  # fmt: skip


class RobertaAdapter(BackboneAdapter):
    model_types = ("roberta", "xlm-roberta", "camembert")
    family = "RoBERTa"

    def build(self, config):
        from transformers import AutoModel

        model_class = AutoModel._model_mapping[type(config)]
        return model_class(config, add_pooling_layer=False)

    def head_weights(self, model):
        return _classification_head(model)


class ElectraAdapter(BackboneAdapter):
    model_types = ("electra",)
    family = "ELECTRA"

    def head_settings(self, config) -> dict:
        return {**super().head_settings(config), "pooler_activation": "gelu"}

    def head_weights(self, model):
        return _classification_head(model)

    def embedding_modules(self, backbone):
        project = getattr(backbone, "embeddings_project", None)
        return [backbone.embeddings] + ([project] if project is not None else [])

    def embed(self, backbone, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
              inputs_embeds=None):
        hidden, mask = super().embed(backbone, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        project = getattr(backbone, "embeddings_project", None)
        return (hidden if project is None else project(hidden)), mask
