"""What a backbone family must tell the multi-exit model: how to embed, how to run layer i, what an exit reads.

An adapter is stateless: every method receives the backbone (the family's own transformers base model, e.g.
``RobertaModel``) and calls that backbone's modules. Nothing here re-implements attention: the layers, masks and
position handling are the backbone's own.

``embed`` returns ``(hidden_states, mask)``. ``mask`` is whatever ``run_layer`` needs, but always a tensor of shape
(batch, 1, queries, keys) or None, because batched early exit selects rows (``mask[keep]``) and trims trailing padding
(``mask[..., :q, :n]``) between layers. Families whose layers need more than one mask (ModernBERT's global and local
attention) or a 2-D mask (DeBERTa's ConvLayer) carry the padding mask as (batch, 1, 1, keys) and build what each layer
needs from it in ``run_layer``.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask

__all__ = ["BackboneAdapter", "padding_mask", "drop_token_types"]


def padding_mask(attention_mask: torch.Tensor | None, hidden: torch.Tensor) -> torch.Tensor:
    """The 2-D padding mask as a boolean (batch, 1, 1, seq) tensor, True = a real token (all True when none is given).

    Boolean, so that wrappers reading masks (LPT's prompt insertion) see "True = attend" as in SDPA masks."""
    if attention_mask is None:
        attention_mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
    if attention_mask.dim() != 2:
        raise ValueError(
            f"this backbone takes a 2-D (batch, seq) attention_mask, got shape {tuple(attention_mask.shape)}"
        )
    return attention_mask.bool()[:, None, None, :]


def drop_token_types(family: str, token_type_ids: torch.Tensor | None) -> None:
    """Families without token-type embeddings accept all-zero ``token_type_ids`` (what a BERT-style collator may
    add) and refuse any other value, which the backbone could not represent."""
    if token_type_ids is not None and bool((token_type_ids != 0).any()):
        raise ValueError(
            f"{family} has no token-type embeddings, but token_type_ids with non-zero values were given; encode "
            f"with the {family} tokenizer (it returns no token_type_ids) or drop them"
        )


class BackboneAdapter:
    """The BERT-style default: ``embeddings`` + bidirectional mask, ``encoder.layer[i](hidden, mask)``."""

    #: ``model_type`` values this adapter drives
    model_types: tuple[str, ...] = ()
    #: name of the family's base model inside its ``*ForSequenceClassification`` (``base_model_prefix``)
    family = "encoder"

    # -- building ---------------------------------------------------------------------------------------------------

    def build(self, config) -> nn.Module:
        """The family's base model without its own pooler (exits bring theirs)."""
        from transformers import AutoModel

        return AutoModel.from_config(config)

    def head_settings(self, config) -> dict:
        """MultiExitConfig fields that shape every exit like the family's own classification head."""
        dropout = getattr(config, "classifier_dropout", None)
        dropout = config.hidden_dropout_prob if dropout is None else dropout
        return {"pooler_activation": "tanh", "pooler_dropout": dropout, "classifier_dropout": dropout}

    def head_weights(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """The classification head of a fine-tuned ``model`` as ``{"pooler.dense.weight": ..., "classifier.weight":
        ...}`` (empty when ``model`` has no head)."""
        return {}

    # -- running ----------------------------------------------------------------------------------------------------

    def layers(self, backbone: nn.Module) -> nn.ModuleList:
        return backbone.encoder.layer

    def embedding_modules(self, backbone: nn.Module) -> list[nn.Module]:
        """Modules every instance runs before layer 1 (parameter counts of a static-k point)."""
        return [backbone.embeddings]

    def embed(self, backbone, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
              inputs_embeds=None):
        hidden = backbone.embeddings(input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids,
                                     inputs_embeds=inputs_embeds)
        mask = create_bidirectional_mask(config=backbone.config, inputs_embeds=hidden, attention_mask=attention_mask)
        return hidden, mask

    def run_layer(self, backbone, i: int, hidden: torch.Tensor, mask=None, prompt_tokens: int = 0,
                  **kwargs) -> torch.Tensor:
        """Layer ``i`` on ``hidden`` (b, n, d). ``prompt_tokens`` leading rows are a late prompt (LPT); layers that
        attend globally need nothing for it (the mask already lets every real token see it)."""
        return self.layers(backbone)[i](hidden, mask, **kwargs)

    def check_prompt_layer(self, backbone, prompt_layer: int) -> None:
        """Raise ``ValueError`` when a late prompt cannot go in before layer ``prompt_layer`` (default: anywhere)."""

    def exit_states(self, backbone, i: int, hidden: torch.Tensor) -> torch.Tensor:
        """What exit ``i`` reads from layer ``i``'s output (post-LN families: the output itself)."""
        return hidden

    def run_layer_with_attentions(self, backbone, i: int, hidden: torch.Tensor, mask=None, **kwargs):
        """``run_layer`` that also returns layer ``i``'s attention weights (``output_attentions=True``; None unless the
        backbone runs eager attention).

        The weights are read the way transformers' own ``output_attentions`` reads them: a forward hook on the
        attention module the backbone declares in ``_can_record_outputs["attentions"]`` (its output ``(states,
        weights)``)."""
        weights = []
        hooks = [module.register_forward_hook(lambda _m, _a, out: weights.append(out[1]))
                 for module in self.layers(backbone)[i].modules() if isinstance(module, attention_class(backbone))]
        try:
            hidden = self.run_layer(backbone, i, hidden, mask, **kwargs)
        finally:
            for hook in hooks:
                hook.remove()
        return hidden, (weights[0] if weights else None)


def attention_class(backbone: nn.Module) -> type:
    """The attention module class whose output transformers records as ``attentions`` for ``backbone``."""
    spec = type(backbone)._can_record_outputs.get("attentions")
    spec = spec[0] if isinstance(spec, list) else spec
    spec = getattr(spec, "target_class", spec)
    if not isinstance(spec, type):
        raise ValueError(f"{type(backbone).__name__} declares no attention module to record attentions from")
    return spec
