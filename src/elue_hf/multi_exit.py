"""The multi-exit encoder interface: what LPT, HashEE and the ELUE runner need from an encoder with exits.

An encoder with *exits* lets a model stop after some layers and predict from there. ElasticBERT's encoder implements
this interface structurally (its modeling file, copied to the Hub for ``trust_remote_code`` users, imports nothing
from elue-hf); a wrapper around such an encoder (LPT's prompt insertion) implements it too, so the models drive it
unchanged.

The step API, for a model that runs layer by layer (early exit, prompt insertion):

* ``num_layers`` and ``exit_layer_indices`` (0-based layers carrying an exit, bottom to top);
* ``run_layer(i, hidden_states, attention_mask)``: the output of layer ``i``;
* ``exit_states(i, hidden_states)``: what exit ``i``'s heads read from layer ``i``'s output (the same tensor, or
  without rows the encoder added to the sequence);
* ``pool(i, states)``: exit ``i``'s pooled output;
* ``exit_modules(i)``: the encoder modules exit ``i``'s pooled output depends on (for parameter counts).

A *multi-exit model* (the backbone, e.g. ``ElasticBertModel``) holds such an ``encoder`` and offers
``embed(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds) -> (hidden_states, mask)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import torch
from torch import nn

__all__ = ["MULTI_EXIT_MODEL_TYPES", "MultiExitEncoder", "MultiExitModel", "is_multi_exit_model", "multi_exit_backbone",
           "num_exits", "run_to_exit"]

#: ``model_type`` of the package's multi-exit classifiers: ElasticBERT and the multi-exit model over other families
MULTI_EXIT_MODEL_TYPES = ("elasticbert", "multiexit")


def is_multi_exit_model(model_or_config) -> bool:
    """Whether ``model_or_config`` (a model or its config) is one of the package's multi-exit classifiers."""
    config = getattr(model_or_config, "config", model_or_config)
    return getattr(config, "model_type", None) in MULTI_EXIT_MODEL_TYPES


@runtime_checkable
class MultiExitEncoder(Protocol):
    """A layer stack with exits, driven one layer at a time (see the module docstring)."""

    @property
    def num_layers(self) -> int: ...

    @property
    def exit_layer_indices(self) -> Sequence[int]: ...

    def run_layer(self, i: int, hidden_states: torch.Tensor, attention_mask=None, **kwargs) -> torch.Tensor: ...

    def exit_states(self, i: int, hidden_states: torch.Tensor) -> torch.Tensor: ...

    def pool(self, i: int, hidden_states: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor: ...

    def exit_modules(self, i: int) -> list[nn.Module]: ...


@runtime_checkable
class MultiExitModel(Protocol):
    """A backbone whose ``encoder`` is a :class:`MultiExitEncoder` and that embeds its inputs itself."""

    encoder: MultiExitEncoder

    def embed(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        ...


def multi_exit_backbone(model: nn.Module) -> MultiExitModel | None:
    """The multi-exit backbone of ``model`` (itself or its ``base_model``), or ``None`` when it has none."""
    for candidate in (model, getattr(model, "base_model", None)):
        if isinstance(candidate, MultiExitModel) and isinstance(candidate.encoder, MultiExitEncoder):
            return candidate
    return None


def num_exits(encoder: MultiExitEncoder) -> int:
    return len(encoder.exit_layer_indices)


def run_to_exit(backbone: MultiExitModel, exit_layer: int, **inputs) -> torch.Tensor:
    """Run ``backbone`` up to the exit on 0-based layer ``exit_layer`` and return what that exit reads.

    ``inputs`` are :meth:`MultiExitModel.embed`'s arguments. No gradient rescaling: this is the static path.
    """
    encoder = backbone.encoder
    if exit_layer not in encoder.exit_layer_indices:
        raise ValueError(f"layer {exit_layer} has no exit; exits are on layers {list(encoder.exit_layer_indices)}")
    hidden, mask = backbone.embed(**inputs)
    for i in range(exit_layer + 1):
        hidden = encoder.run_layer(i, hidden, mask)
    return encoder.exit_states(exit_layer, hidden)
