"""A multi-exit model over any supported encoder: the backbone's own transformers modules plus one exit per chosen
layer, driven through the :class:`elue_hf.multi_exit.MultiExitEncoder` interface.

- :class:`MultiExitModel` (``AutoModel``) holds the family's base model at ``multiexit.backbone`` (its own weights
  and key names) and a :class:`MultiExitEncoder` at ``multiexit.encoder`` with one :class:`MultiExitPooler` per exit
  (``multiexit.encoder.pooler.<layer>``, absolute 0-based layer as in ElasticBERT); the family adapter
  (``adapters/``) says how to embed, run layer i and read an exit.
- :class:`MultiExitForSequenceClassification` (``AutoModelForSequenceClassification``) adds a classifier per exit
  (``classifiers.<j>``, or ``classifier`` for a static model) and shares ElasticBERT's classification forward: exit
  policies chosen per call, batched early exit dropping finished rows, multi-exit losses with gradient equilibrium.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.utils.output_capturing import selected_hidden_states

from ..elasticbert.modeling_elasticbert import (
    ElasticBertForSequenceClassification,
    ElasticBertModelOutput,
    load_checking_shapes,
    masked_mean,
    pooling_token_mask,
    run_exits,
)
from .adapters import adapter_for
from .configuration_multiexit import MultiExitConfig

__all__ = ["MultiExitPooler", "MultiExitEncoder", "MultiExitPreTrainedModel", "MultiExitModel",
           "MultiExitForSequenceClassification"]


class MultiExitPooler(nn.Module):
    """``norm(act(dense(dropout(summary))))``: the family's own classification head up to its classifier; the
    summary is the first token's state (``pooling="cls"``) or the masked token mean (``"mean"``)."""

    def __init__(self, config: MultiExitConfig):
        super().__init__()
        self.pooling = config.pooling
        self.dropout = nn.Dropout(config.pooler_dropout)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size, bias=config.pooler_bias)
        self.activation = ACT2FN[config.pooler_activation]
        self.norm = (nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps, bias=config.pooler_bias)
                     if config.pooler_norm else None)

    def forward(self, hidden_states: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        summary = masked_mean(hidden_states, token_mask) if self.pooling == "mean" else hidden_states[:, 0]
        pooled = self.activation(self.dense(self.dropout(summary)))
        return pooled if self.norm is None else self.norm(pooled)


class MultiExitEncoder(nn.Module):
    """The exits of a backbone: a :class:`elue_hf.multi_exit.MultiExitEncoder` whose layers are the backbone's own.

    It owns the poolers only; the backbone (owned by the model) is reached through a plain reference, so its
    weights are saved once, under ``multiexit.backbone``.
    """

    def __init__(self, config: MultiExitConfig, backbone: nn.Module):
        super().__init__()
        self.config = config
        self.adapter = adapter_for(config.backbone_type)
        self._backbone = [backbone]  # a list: not registered as a sub-module
        exits = set(config.exit_layer_indices)
        self.pooler = nn.ModuleList(
            [MultiExitPooler(config) if i in exits else None for i in range(config.num_hidden_layers)]
        )
        self.exit_layer_indices = list(config.exit_layer_indices)

    @property
    def backbone(self) -> nn.Module:
        return self._backbone[0]

    @property
    def layer(self) -> nn.ModuleList:
        return self.adapter.layers(self.backbone)

    @property
    def num_layers(self) -> int:
        return len(self.layer)

    def run_layer(self, i: int, hidden_states: torch.Tensor, attention_mask=None, prompt_tokens: int = 0,
                  **kwargs) -> torch.Tensor:
        """Layer ``i`` of the backbone. ``prompt_tokens``: that many leading rows are a late prompt (LPT), which every
        token may attend to and which attends to every token, also in a sliding-window layer (ModernBERT)."""
        kwargs = _prompt(prompt_tokens, kwargs)
        return self.adapter.run_layer(self.backbone, i, hidden_states, attention_mask, **kwargs)

    def run_layer_with_attentions(self, i: int, hidden_states: torch.Tensor, attention_mask=None,
                                  prompt_tokens: int = 0, **kwargs):
        """``run_layer`` plus layer ``i``'s attention weights (None unless the backbone runs eager attention)."""
        return self.adapter.run_layer_with_attentions(self.backbone, i, hidden_states, attention_mask,
                                                      **_prompt(prompt_tokens, kwargs))

    def check_prompt_layer(self, prompt_layer: int) -> None:
        """Raise ``ValueError`` when a late prompt cannot go in before layer ``prompt_layer`` of this backbone."""
        self.adapter.check_prompt_layer(self.backbone, prompt_layer)

    def exit_states(self, i: int, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.adapter.exit_states(self.backbone, i, hidden_states)

    def pool(self, i: int, hidden_states: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.pooler[i](hidden_states, token_mask)

    def exit_modules(self, i: int) -> list[nn.Module]:
        """Layers ``0..i``, the family's per-forward extras (DeBERTa's ConvLayer) and pooler ``i``."""
        extra = [m for m in (getattr(getattr(self.backbone, "encoder", None), "conv", None),) if m is not None]
        norm = [m for m in (getattr(self.backbone, "final_norm", None),) if m is not None]
        return [*self.layer[: i + 1], *extra, *norm, self.pooler[i]]


def _prompt(prompt_tokens: int, kwargs: dict) -> dict:
    """``kwargs`` for the adapter, with ``prompt_tokens`` only when there is a prompt (default calls unchanged)."""
    return {**kwargs, "prompt_tokens": int(prompt_tokens)} if prompt_tokens else kwargs


class _Recorder:
    """A multi-exit encoder that also keeps every layer's output (``states``, for ``output_hidden_states=True``)
    and / or attention weights (``attentions``, for ``output_attentions=True``); a None list is not recorded."""

    def __init__(self, encoder: MultiExitEncoder, states: list | None, attentions: list | None):
        self.encoder, self.states, self.attentions = encoder, states, attentions
        self.num_layers, self.exit_layer_indices, self.training = (encoder.num_layers, encoder.exit_layer_indices,
                                                                   encoder.training)

    def run_layer(self, i, hidden_states, attention_mask=None, **kwargs):
        if self.attentions is None:
            hidden_states = self.encoder.run_layer(i, hidden_states, attention_mask, **kwargs)
        else:
            hidden_states, weights = self.encoder.run_layer_with_attentions(i, hidden_states, attention_mask, **kwargs)
            self.attentions.append(weights)
        if self.states is not None:
            self.states.append(hidden_states)
        return hidden_states

    def __getattr__(self, name):
        return getattr(self.encoder, name)


def _select(states: list, selection: list[int] | None) -> list:
    """``output_hidden_states`` given as indices (transformers' convention): the states not selected become None."""
    if selection is None:
        return states
    kept = {i % len(states) for i in selection if -len(states) <= i < len(states)}
    return [state if i in kept else None for i, state in enumerate(states)]


def _share_attention(config: MultiExitConfig) -> None:
    """Give the backbone the attention implementation asked of the multi-exit model, when its class supports it
    (DeBERTa-v2 has eager attention only)."""
    from transformers import AutoModel

    wanted = getattr(config, "_attn_implementation_internal", None)
    backbone_class = AutoModel._model_mapping.get(type(config.backbone_config), None)
    supported = {"sdpa": "_supports_sdpa", "flash_attention_2": "_supports_flash_attn", "flex_attention":
                 "_supports_flex_attn"}.get(wanted)
    if wanted == "eager" or (supported and getattr(backbone_class, supported, False)):
        config.backbone_config._attn_implementation = wanted


class MultiExitPreTrainedModel(PreTrainedModel):
    config_class = MultiExitConfig
    config: MultiExitConfig
    base_model_prefix = "multiexit"
    _auto_class = None  # never saved with remote code (ElasticBERT's classification class, a base here, sets one)
    supports_gradient_checkpointing = True  # the backbone's own layers are transformers' GradientCheckpointingLayers
    _supports_sdpa = True
    _supports_attention_backend = True

    @classmethod
    def is_custom_code(cls) -> bool:
        """False although the class lives outside transformers: its weights are set through transformers'
        ``initialization`` functions (the backbone's own ``_init_weights`` and PreTrainedModel's), so transformers'
        guard for remote code that writes weights in place must not apply. That guard skips every module without
        parameters of its own, e.g. ``ModernBertEmbeddings``, whose ``_init_weights`` sets its children: missing
        weights of a loaded ModernBERT backbone would keep the leaf default instead of ModernBERT's truncated normal."""
        return False

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``PreTrainedModel.from_pretrained``; shape mismatches raise a ``ValueError`` naming every key (as for
        ElasticBERT)."""
        load = PreTrainedModel.from_pretrained.__func__.__get__(cls)  # PreTrainedModel's, bound to this class
        return load_checking_shapes(load, cls.__name__, pretrained_model_name_or_path, *args, **kwargs)


class MultiExitModel(MultiExitPreTrainedModel):
    """The backbone with exits; returns every exit's states and pooled output (an ``ElasticBertModelOutput``)."""

    def __init__(self, config: MultiExitConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        config.validate_exit_fields()
        adapter = adapter_for(config.backbone_type)
        _share_attention(config)
        self.backbone = adapter.build(config.backbone_config)
        self.encoder = MultiExitEncoder(config, self.backbone)
        self.add_pooling_layer = add_pooling_layer
        self.post_init()

    @property
    def adapter(self):
        return adapter_for(self.config.backbone_type)

    @property
    def embeddings(self) -> nn.ModuleList:
        """The modules every instance runs before layer 1 (parameter counts)."""
        return nn.ModuleList(self.adapter.embedding_modules(self.backbone))

    def get_input_embeddings(self):
        return self.backbone.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.backbone.set_input_embeddings(value)

    def embed(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        """The backbone's embeddings and the mask its layers take (see ``adapters/base.py``)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        return self.adapter.embed(self.backbone, input_ids, attention_mask, token_type_ids, position_ids,
                                  inputs_embeds)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, output_hidden_states=None, output_attentions=None, return_dict=None,
                **kwargs) -> ElasticBertModelOutput:
        unknown = sorted(k for k in kwargs if k not in ("num_items_in_batch",))
        if unknown:
            raise TypeError(f"{type(self).__name__}.forward() got unexpected keyword argument(s) {unknown}")
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        hidden, mask = self.embed(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        states = [hidden] if output_hidden_states else None
        attentions = [] if output_attentions else None
        recording = output_hidden_states or output_attentions
        encoder = _Recorder(self.encoder, states, attentions) if recording else self.encoder
        token_mask = pooling_token_mask(self.config, attention_mask)
        out = run_exits(encoder, self.config, hidden, mask, pool=self.add_pooling_layer, token_mask=token_mask)
        if states is not None:  # as transformers does: the last entry is what the top exit reads (ModernBERT: normed)
            states[-1] = out.last_hidden_state
            states = _select(states, selected_hidden_states(output_hidden_states))
        out.hidden_states = tuple(states) if states is not None else None
        out.attentions = tuple(attentions) if attentions is not None else None
        return out if return_dict is not False else out.to_tuple()


class MultiExitForSequenceClassification(MultiExitPreTrainedModel, ElasticBertForSequenceClassification):
    """A classifier on every exit (or one, static); the forward is ElasticBERT's (see its docs): ``exit_criterion``
    per call, batched early exit, ``all_logits`` / ``exit_layer`` / per-exit losses with gradient equilibrium."""

    def __init__(self, config: MultiExitConfig):
        PreTrainedModel.__init__(self, config)
        self.num_labels = config.num_labels
        self.multiexit = MultiExitModel(config)
        self._build_exit_heads(config, config.classifier_dropout)
        self.post_init()

    @property
    def elasticbert(self) -> MultiExitModel:
        """The backbone under the name ElasticBERT's shared classification forward uses."""
        return self.multiexit

    def get_input_embeddings(self):
        return self.multiexit.get_input_embeddings()

    def set_input_embeddings(self, value):
        self.multiexit.set_input_embeddings(value)
