"""Decoder-only causal LMs: GPT-2 and the rotary families (Llama, Qwen2/Qwen3, Mistral, Gemma/Gemma2/Gemma3).

Decisions (see ``docs/lpt-backbones.md``):

* **Placement.** After layer ``k`` the ``l`` prompt vectors are prepended to the sequence, as in the LPT code's GPT-2
  variant: every token of layers ``> k`` may attend to them. Among themselves the prompt rows are causal (row ``j`` sees
  prompt rows ``<= j``, no tokens), exactly the causal triangle over the concatenation.
* **Generator input.** The prompt is generated from the **last valid context token** at layer ``k`` (``source``), found
  from the 2D padding mask, so left and right padding give the same rows. Pooling generators pool the valid tokens up to
  the source. With ``labels`` (causal-LM training) the context ends before the first labelled token
  (:func:`context_source_from_labels`), so the prompt never reads a token whose prediction is in the loss.
* **Positions.** Absolute-position models (GPT-2) add positions at the embeddings: the prompt has none. Rotary models
  give the prompt rows the position of their source token (``cos``/``sin`` and ``position_ids`` are copied from it).
* **Cache.** The prompt's keys and values live in the cache of the layers after the insertion only. Positions come
  from layer 0's cache, which holds tokens only, so token positions are those of the base model. A decoding step
  (prompt already cached) builds the mask of those layers from the 2D padding mask, over [prompt; cached tokens; new
  tokens] (:func:`decoding_step_mask`): transformers sizes each mask type from its first layer, which may itself hold
  the prompt or not, so its masks cannot simply be extended there.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from transformers.cache_utils import DynamicCache

from ..masks import extend_causal_mask
from .base import (
    HookedBackbone,
    LatePromptCall,
    call_argument,
    repeat_at_source,
    set_call_argument,
)

__all__ = [
    "CausalDecoderBackbone",
    "GPT2Backbone",
    "ROTARY_MODEL_TYPES",
    "RotaryDecoderBackbone",
    "context_source_from_labels",
    "decoding_step_mask",
    "last_valid_index",
    "layer_windows",
]

SUPPORTED_ATTENTION = ("eager", "sdpa")


def last_valid_index(keep: torch.Tensor) -> torch.Tensor:
    """(b,) index of the last ``True`` of each row of a (b, n) bool mask (any padding side); 0 for an empty row."""
    positions = torch.arange(keep.shape[1], device=keep.device)
    return torch.where(keep, positions, -1).amax(dim=1).clamp(min=0)


def context_source_from_labels(labels: torch.Tensor, keep: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """(b,) prompt source for causal-LM training: the last valid token **before** the first labelled position.

    Labels are aligned with the inputs (the model shifts them), so the first labelled token ``f`` is predicted at
    ``f - 1``: the context is ``[0, f)`` and the prompt is generated from its last valid token. A row without labels
    uses its last valid token; a row labelled from its first valid token on uses that first token.
    """
    if labels.shape != keep.shape:
        raise ValueError(f"labels {tuple(labels.shape)} and attention mask {tuple(keep.shape)} differ in shape.")
    positions = torch.arange(keep.shape[1], device=keep.device)
    labelled = (labels != ignore_index) & keep
    first_label = torch.where(labelled, positions, keep.shape[1]).amin(dim=1)
    before = keep & (positions[None, :] < first_label[:, None])
    first_valid = keep.int().argmax(dim=1)
    return torch.where(before.any(dim=1), last_valid_index(before), first_valid)


def _cache_length(cache, layer_idx: int) -> int:
    if cache is None:
        return 0
    try:
        return int(cache.get_seq_length(layer_idx))
    except (IndexError, KeyError):
        return 0


class CausalDecoderBackbone(HookedBackbone):
    """Shared logic of the decoder stacks: context, source token, cache state, mask and positions."""

    target_module = "model"
    layer_attr = "layers"

    def check(self, module: nn.Module, prompt_layer: int) -> None:
        attention = getattr(module.config, "_attn_implementation", None) or "eager"
        if attention not in SUPPORTED_ATTENTION:
            raise ValueError(
                f"LPT on {type(module).__name__} needs attn_implementation 'sdpa' or 'eager' (it extends the 4D "
                f"attention mask for the prompt); the model uses {attention!r}."
            )

    def begin(self, module: nn.Module, bound: inspect.BoundArguments, k: int, num_tokens: int):
        ids = call_argument(bound, "input_ids")
        embeds = call_argument(bound, "inputs_embeds")
        reference = ids if ids is not None else embeds
        if reference is None:
            raise ValueError("LPT: the decoder needs input_ids or inputs_embeds.")
        b, n = reference.shape[0], reference.shape[1]
        cache = call_argument(bound, "past_key_values")
        if cache is not None and not isinstance(cache, DynamicCache):
            raise ValueError(
                f"LPT keeps the prompt's keys and values in a DynamicCache; got {type(cache).__name__} (e.g. a static "
                "cache from cache_implementation='static'). Use the default dynamic cache."
            )
        cached_tokens, prompt_keys = _cache_length(cache, 0), _cache_length(cache, k)
        cached = prompt_keys > 0
        if (cached_tokens or prompt_keys) and prompt_keys != cached_tokens + num_tokens:
            raise ValueError(
                f"The KV cache holds {cached_tokens} tokens at layer 0 and {prompt_keys} entries at layer {k}; LPT "
                f"expects its {num_tokens} prompt entries in front of the tokens from layer {k} on: the cache was not "
                "built through this LPT adapter."
            )
        mask = call_argument(bound, "attention_mask")
        if mask is None:
            padding = torch.ones(b, cached_tokens + n, dtype=torch.bool, device=reference.device)
        elif isinstance(mask, torch.Tensor) and mask.dim() == 2 and mask.shape[1] == cached_tokens + n:
            padding = mask.bool()
        else:
            raise ValueError(
                "LPT on a decoder reads the context from the 2D padding mask (b, cached + new tokens); got "
                f"{type(mask).__name__} {tuple(getattr(mask, 'shape', ()))}."
            )
        windows = layer_windows(module.config, len(self.layers(module)))
        if cached:
            _check_prompt_kept(cache, windows, k, num_tokens)
        keep = padding[:, -n:]
        extra = {"padding": padding, "windows": windows, "eager": module.config._attn_implementation == "eager"}
        return keep, last_valid_index(keep), cached, extra

    def rewrite_layer_call(self, call: LatePromptCall, bound: inspect.BoundArguments, index: int) -> None:
        if call.cached:  # a decoding step: the mask over [prompt; cached tokens; new tokens], built here
            hidden = bound.arguments[list(bound.signature.parameters)[1]]
            set_call_argument(bound, "attention_mask", _decoding_mask(call, index, hidden))
            return
        mask = call_argument(bound, "attention_mask")
        set_call_argument(bound, "attention_mask", extend_causal_mask(mask, call.num_tokens, call.inserted))
        if not call.inserted:
            return
        position_ids = call_argument(bound, "position_ids")
        if isinstance(position_ids, torch.Tensor):
            set_call_argument(bound, "position_ids", repeat_at_source(position_ids, call.source, call.num_tokens))
        embeddings = call_argument(bound, "position_embeddings")
        if embeddings is not None:
            if not isinstance(embeddings, (tuple, list)):
                raise ValueError(f"Unsupported position_embeddings {type(embeddings).__name__} (want (cos, sin)).")
            rotated = tuple(repeat_at_source(t, call.source, call.num_tokens) for t in embeddings)
            set_call_argument(bound, "position_embeddings", rotated)


def layer_windows(config, num_layers: int) -> list[int | None]:
    """Per layer, the sliding window (None: full attention), from ``layer_types`` or Mistral's ``sliding_window``."""
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    if types is None:
        return [window] * num_layers
    return [window if kind == "sliding_attention" else None for kind in types[:num_layers]]


def _check_prompt_kept(cache, windows: list[int | None], k: int, num_tokens: int) -> None:
    """A sliding-window cache keeps ``window - 1`` entries: refuse to decode once it may have dropped the prompt."""
    for i in range(k, len(windows)):
        if windows[i] is not None and _cache_length(cache, i) > windows[i] - 1:
            raise ValueError(
                f"Layer {i} attends within a sliding window of {windows[i]} and its cache now holds "
                f"{_cache_length(cache, i)} entries ({num_tokens} prompt + tokens): it has dropped the late prompt. "
                "Decode without the cache (use_cache=False) or keep the sequence within the window."
            )


def _decoding_mask(call: LatePromptCall, index: int, hidden: torch.Tensor) -> torch.Tensor:
    extra = call.extra
    allowed = decoding_step_mask(extra["padding"], hidden.shape[1], call.num_tokens, extra["windows"][index])
    if not extra["eager"]:
        return allowed
    return torch.zeros(allowed.shape, dtype=hidden.dtype, device=hidden.device).masked_fill(
        ~allowed, torch.finfo(hidden.dtype).min
    )


def decoding_step_mask(padding: torch.Tensor, query_length: int, num_tokens: int, window: int | None = None):
    """(b, 1, q, l + T) bool mask of a cached decoding step with the prompt's ``l`` entries in front of the cache.

    ``padding`` (b, T) marks the real tokens among the ``T`` cached + new tokens; the new tokens are the last ``q``.
    A new token sees every prompt entry and the real tokens up to itself (within ``window`` for sliding layers).
    """
    b, total = padding.shape
    positions = torch.arange(total, device=padding.device)
    queries = positions[total - query_length :]
    allowed = (positions[None, :] <= queries[:, None]) & padding[:, None, :]
    if window is not None:
        allowed = allowed & (queries[:, None] - positions[None, :] < window)
    prompt = torch.ones(b, query_length, num_tokens, dtype=torch.bool, device=padding.device)
    return torch.cat([prompt, allowed], dim=-1)[:, None]


#: Llama-style families of transformers 5.23 whose decoder layers take ``attention_mask``, ``position_embeddings``
#: (cos, sin) and ``position_ids`` and whose stack is ``model.layers``; each is tested against the hand-inserted
#: reference and for cached == uncached generation (tests/lpt/test_lpt_decoders.py).
ROTARY_MODEL_TYPES = (
    "llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "gemma3_text",
    # the same layer interface, verified the same way
    "apertus", "arcee", "bitnet", "cohere", "cohere2", "doge", "ernie4_5", "exaone4", "glm", "glm4", "granite",
    "helium", "hunyuan_v1_dense", "ministral", "mixtral", "nemotron", "olmo", "olmo2", "olmo3", "phi3", "qwen2_moe",
    "qwen3_moe", "seed_oss", "smollm3", "stablelm", "starcoder2",
)  # fmt: skip


class RotaryDecoderBackbone(CausalDecoderBackbone):
    """Llama-style stacks (``model.layers``; rotary ``position_embeddings`` passed to each layer)."""

    model_types = ROTARY_MODEL_TYPES


class GPT2Backbone(CausalDecoderBackbone):
    """GPT-2 (``transformer.h``; absolute positions added at the embeddings, so the prompt carries none)."""

    model_types = ("gpt2",)
    target_module = "transformer"
    layer_attr = "h"

    def check(self, module: nn.Module, prompt_layer: int) -> None:
        super().check(module, prompt_layer)
        if getattr(module.config, "add_cross_attention", False):
            raise ValueError("LPT supports GPT-2 as a decoder-only LM, not with cross-attention layers.")
