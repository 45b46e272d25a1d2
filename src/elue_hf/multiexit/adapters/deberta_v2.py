"""DeBERTa-v2 / v3: disentangled attention with relative positions, a ConvLayer after layer 1 (some v2 checkpoints)
and a ``ContextPooler`` head.

Each layer takes the (batch, 1, n, n) product mask that ``DebertaV2Encoder.get_attention_mask`` builds from the 2-D
padding mask, the relative positions of the current length (``get_rel_pos``) and the (normalised) relative
embeddings (``get_rel_embedding``); the ConvLayer reads the 2-D mask. The adapter carries the padding mask as
(batch, 1, 1, n) and builds the product mask from it at every layer, so rows and padding columns can leave between
layers. The relative positions and embeddings do not depend on the rows: :class:`RelativeCache` builds them once and
every layer (and, in inference, every forward) reuses them.
"""

from __future__ import annotations

import weakref

import torch

from .base import BackboneAdapter, padding_mask

__all__ = ["DebertaV2Adapter", "RelativeCache"]


def _tracing() -> bool:
    return torch.jit.is_tracing() or torch.compiler.is_compiling()


class RelativeCache:
    """What a ``DebertaV2Encoder`` computes from its relative-position settings alone, computed once.

    - ``rel_pos(encoder, n)``: ``encoder.get_rel_pos`` of length n. The relative position of query i and key j
      depends on i - j only, so the positions of a shorter sequence are the top-left block of a longer one's: the
      longest built so far is kept and sliced (batched exit trims padding between layers).
    - ``rel_embedding(encoder)``: ``encoder.get_rel_embedding()`` (the embedding table through its LayerNorm), kept
      while no gradient is recorded and those weights are unchanged (their version counters and storage); with
      gradients on, every call builds it anew so that each forward has its own graph.

    Nothing is kept while the model is traced or compiled (an export must compute them in its graph).
    """

    def __init__(self):
        self._positions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._embeddings: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def rel_pos(self, encoder, hidden: torch.Tensor):
        n = hidden.shape[1]
        if _tracing():
            return encoder.get_rel_pos(hidden)
        cached = self._positions.get(encoder)
        if cached is None or cached.shape[-1] < n or cached.device != hidden.device:
            cached = encoder.get_rel_pos(hidden)
            if cached is None:
                return None
            self._positions[encoder] = cached
        return cached[:, :n, :n]

    def rel_embedding(self, encoder):
        if torch.is_grad_enabled() or _tracing() or not encoder.relative_attention:
            return encoder.get_rel_embedding()
        weights = [p for module in (encoder.rel_embeddings, getattr(encoder, "LayerNorm", None)) if module is not None
                   for p in module.parameters()]
        key = tuple((p.data_ptr(), p._version, p.device) for p in weights)
        cached = self._embeddings.get(encoder)
        if cached is None or cached[0] != key:
            cached = (key, encoder.get_rel_embedding())
            self._embeddings[encoder] = cached
        return cached[1]


class DebertaV2Adapter(BackboneAdapter):
    model_types = ("deberta-v2",)
    family = "DeBERTa-v2"
    relative = RelativeCache()

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

    def check_prompt_layer(self, backbone, prompt_layer):
        if backbone.encoder.conv is not None and prompt_layer < 1:
            raise ValueError(
                "This DeBERTa-v2 model has a convolution after layer 0 (conv_kernel_size > 0), which would mix the "
                "prompt into the first tokens: set prompt_layer >= 1."
            )

    def run_layer(self, backbone, i, hidden, mask=None, prompt_tokens=0, **kwargs):
        return self.run_layer_with_attentions(backbone, i, hidden, mask, _weights=False, **kwargs)[0]

    def run_layer_with_attentions(self, backbone, i, hidden, mask=None, _weights=True, prompt_tokens=0, **kwargs):
        """DeBERTa's layers return their attention weights themselves (``output_attentions=True``). A late prompt
        (``prompt_tokens`` leading rows) takes the first relative positions, as if it stood before [CLS]: relative
        positions depend on i - j only, so those between real tokens are unchanged."""
        encoder = backbone.encoder
        if mask is None:
            mask = padding_mask(None, hidden)
        input_mask = mask[:, 0, 0, :].long()  # DeBERTa's own 0/1 form (its ConvLayer computes 1 - mask)
        output, weights = encoder.layer[i](hidden, encoder.get_attention_mask(input_mask),
                                           relative_pos=self.relative.rel_pos(encoder, hidden),
                                           rel_embeddings=self.relative.rel_embedding(encoder),
                                           output_attentions=_weights)
        if i == 0 and encoder.conv is not None:
            output = encoder.conv(hidden, output, input_mask)
        return output, weights
