"""LPT tuner layer: prompt generators and the wrapper :class:`LPTLayer` of the encoder or decoder stack.

Shapes: ``b`` batch, ``n`` input length, ``d`` hidden size, ``m`` bottleneck, ``l`` prompt length.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions

from ..multi_exit import MultiExitEncoder
from .backbones import HookedBackbone, LatePromptCall, backbone_for
from .backbones.base import bind_call
from .config import LPTConfig, check_prompt_layer, normalize_generator_kind
from .masks import extend_attention_mask, token_keep_mask

__all__ = [
    "LPTLayer",
    "NaivePromptGenerator",
    "PoolingPromptGenerator",
    "StaticPrompt",
    "build_prompt_generator",
    "generator_parameter_count",
    "masked_adaptive_pool",
    "token_keep_mask",
    "extend_attention_mask",
]


# --------------------------------------------------------------------------------------------------------------------
# pure helpers
# --------------------------------------------------------------------------------------------------------------------


def generator_parameter_count(kind: str, token_dim: int, bottleneck: int, num_tokens: int) -> int:
    """Trainable parameters of a prompt generator (docs/lpt.md, "Prompt generators").

    NPG ``d*m + m + m*l*d + l*d``; APPG/MPPG ``d*m + m + m*d + d`` (independent of ``l``); w/o PG ``l*d``.
    """
    kind = normalize_generator_kind(kind)
    d, m, l = token_dim, bottleneck, num_tokens
    if kind == "npg":
        return d * m + m + m * l * d + l * d
    if kind in ("appg", "mppg"):
        return d * m + m + m * d + d
    return l * d


def masked_adaptive_pool(x: torch.Tensor, keep: torch.Tensor, output_size: int, mode: str) -> torch.Tensor:
    """Adaptive average/max pooling of each row's real tokens (in order) to ``output_size`` positions.

    ``x`` (b, n, c), ``keep`` (b, n) bool. Bins follow :func:`torch.nn.functional.adaptive_avg_pool1d`: bin ``i`` of a
    row with ``N`` real tokens covers ranks ``floor(i*N/l) .. ceil((i+1)*N/l) - 1``; bins overlap when ``N < l``.
    Works for any padding side. Returns (b, output_size, c).
    """
    if mode not in ("avg", "max"):
        raise ValueError(f"mode must be 'avg' or 'max', got {mode!r}")
    lengths = keep.sum(dim=1)
    if bool((lengths == 0).any()):
        raise ValueError("Every example needs at least one non-padding token for the pooling prompt generator.")
    rank = keep.long().cumsum(dim=1) - 1  # (b, n)
    bins = torch.arange(output_size, device=x.device)
    start = (bins[None, :] * lengths[:, None]) // output_size  # (b, l)
    end = ((bins[None, :] + 1) * lengths[:, None] + output_size - 1) // output_size
    member = keep[:, None, :] & (rank[:, None, :] >= start[..., None]) & (rank[:, None, :] < end[..., None])
    if mode == "avg":
        weights = member.to(x.dtype)
        return torch.bmm(weights, x) / weights.sum(dim=-1, keepdim=True)
    masked = x[:, None, :, :].masked_fill(~member[..., None], float("-inf"))
    return masked.amax(dim=2)


def _first_token_index(keep: torch.Tensor) -> torch.Tensor:
    """Index of the first real token of each row ([CLS] / <s> for right padding: 0)."""
    return keep.int().argmax(dim=1)


# --------------------------------------------------------------------------------------------------------------------
# prompt generators
# --------------------------------------------------------------------------------------------------------------------


class NaivePromptGenerator(nn.Module):
    """NPG: ``Reshape(W2 ReLU(W1 h_[CLS] + b1) + b2)`` -> (b, l, d), then dropout."""

    def __init__(self, token_dim: int, bottleneck: int, num_tokens: int, dropout: float = 0.0):
        super().__init__()
        self.num_tokens, self.token_dim = num_tokens, token_dim
        self.proj_down = nn.Linear(token_dim, bottleneck)
        self.proj_up = nn.Linear(bottleneck, num_tokens * token_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor, keep: torch.Tensor, source: torch.Tensor | None = None):
        """``source`` (b,): the token each row's prompt is generated from; default the first real token ([CLS])."""
        rows = torch.arange(hidden_states.shape[0], device=hidden_states.device)
        index = _first_token_index(keep) if source is None else source
        prompt = self.proj_up(torch.relu(self.proj_down(hidden_states[rows, index])))
        return self.dropout(prompt.view(-1, self.num_tokens, self.token_dim))


class PoolingPromptGenerator(nn.Module):
    """APPG / MPPG: ``W2 ReLU(Pool(W1 h + b1)) + b2`` with adaptive average or max pooling over real tokens."""

    def __init__(self, token_dim: int, bottleneck: int, num_tokens: int, dropout: float = 0.0, mode: str = "avg"):
        super().__init__()
        if mode not in ("avg", "max"):
            raise ValueError(f"mode must be 'avg' or 'max', got {mode!r}")
        self.num_tokens, self.mode = num_tokens, mode
        self.proj_down = nn.Linear(token_dim, bottleneck)
        self.proj_up = nn.Linear(bottleneck, token_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor, keep: torch.Tensor, source: torch.Tensor | None = None):
        pooled = masked_adaptive_pool(self.proj_down(hidden_states), keep, self.num_tokens, self.mode)
        return self.dropout(self.proj_up(torch.relu(pooled)))


class StaticPrompt(nn.Module):
    """LPT w/o PG: one learned (l, d) prompt shared by all instances (default embedding init, no dropout)."""

    def __init__(self, token_dim: int, num_tokens: int):
        super().__init__()
        self.embedding = nn.Embedding(num_tokens, token_dim)

    def forward(self, hidden_states: torch.Tensor, keep: torch.Tensor, source: torch.Tensor | None = None):
        return self.embedding.weight[None].expand(hidden_states.shape[0], -1, -1)


def build_prompt_generator(kind: str, token_dim: int, bottleneck: int, num_tokens: int, dropout: float) -> nn.Module:
    """The generator module for ``kind`` (``npg``, ``appg``, ``mppg`` or ``none``)."""
    kind = normalize_generator_kind(kind)
    if kind == "npg":
        return NaivePromptGenerator(token_dim, bottleneck, num_tokens, dropout)
    if kind in ("appg", "mppg"):
        mode = "avg" if kind == "appg" else "max"
        return PoolingPromptGenerator(token_dim, bottleneck, num_tokens, dropout, mode=mode)
    return StaticPrompt(token_dim, num_tokens)


def _no_grad_if_frozen(modules, hidden_states: torch.Tensor):
    """``torch.no_grad()`` when nothing in ``modules`` or the input needs a gradient (no activations are stored)."""
    if hidden_states.requires_grad or any(p.requires_grad for m in modules for p in m.parameters()):
        return nullcontext()
    return torch.no_grad()


# --------------------------------------------------------------------------------------------------------------------
# tuner layer
# --------------------------------------------------------------------------------------------------------------------


class LPTLayer(nn.Module, BaseTunerLayer):
    """Wraps an encoder (the module owning the ``layer`` list); inserts the late prompt after ``prompt_layer`` layers.

    * BERT / RoBERTa encoders: :meth:`forward` runs layers ``0..k-1`` (under ``no_grad`` when frozen), generates the
      prompt from their output, prepends it, extends the mask and runs the remaining layers; the prompt rows are
      stripped from ``last_hidden_state`` so [CLS] stays at index 0 and [MASK] at its original index.
    * Multi-exit encoders (:class:`elue_hf.multi_exit.MultiExitEncoder`, e.g. ElasticBERT's): the wrapper is a
      multi-exit encoder too (``run_layer`` inserts the prompt before layer ``k``, ``exit_states`` drops it again), so
      the multi-exit model (including early exit, which indexes finished rows out of the batch) drives it unchanged.
    * DeBERTa-v2/v3 encoders, GPT-2 and Llama-style decoder stacks: a family adapter from
      :mod:`elue_hf.lpt.backbones` runs the body's own forward with call-scoped hooks on layers ``k..L-1`` (insert
      the prompt, rewrite masks and positions, strip the prompt rows after the last layer). Decoders generate the
      prompt from the last context token; :meth:`generation_session` keeps it fixed during ``generate()``.
    """

    adapter_layer_names = ("lpt_generator",)
    other_param_names = ("lpt_prompt_layer", "lpt_num_tokens")

    def __init__(self, base_layer: nn.Module, adapter_name: str, config: LPTConfig):
        super().__init__()
        self.base_layer = base_layer
        self.lpt_generator = nn.ModuleDict({})
        self.lpt_prompt_layer: dict[str, int] = {}
        self.lpt_num_tokens: dict[str, int] = {}
        self._disable_adapters = False
        self.merged_adapters = []
        self._generation_prompts: dict | None = None  # prompts built once per generate() call (see generation_session)
        self._source_override: torch.Tensor | None = None  # decoders: the context's last token, from the labels
        self.update_layer(adapter_name, config)
        self._active_adapter = adapter_name

    # -- construction -------------------------------------------------------------------------------------------------

    @property
    def backbone(self) -> HookedBackbone | None:
        """The family adapter driving the wrapped body (None: the BERT/RoBERTa/ElasticBERT encoder paths)."""
        return backbone_for(self.get_base_layer())

    @property
    def num_layers(self) -> int:
        backbone = self.backbone
        base = self.get_base_layer()
        return len(backbone.layers(base) if backbone is not None else base.layer)

    def update_layer(self, adapter_name: str, config: LPTConfig) -> None:
        """Create (or replace) the generator of ``adapter_name`` from ``config`` (token_dim etc. already filled)."""
        k = config.prompt_layer
        check_prompt_layer(k, self.num_layers)
        if self.backbone is not None:
            self.backbone.check(self.get_base_layer(), k)
        if hasattr(self.get_base_layer(), "check_prompt_layer"):  # elue_hf.multiexit: the family's own limits
            self.get_base_layer().check_prompt_layer(k)
        dropout = config.prompt_dropout if config.prompt_dropout is not None else 0.0
        generator = build_prompt_generator(
            config.generator, config.token_dim, config.bottleneck_size, config.num_prompt_tokens, dropout
        )
        reference = next(self.get_base_layer().parameters(), None)
        if reference is not None:
            generator.to(device=reference.device, dtype=reference.dtype if reference.is_floating_point() else None)
        self.lpt_generator[adapter_name] = generator
        self.lpt_prompt_layer[adapter_name] = k
        self.lpt_num_tokens[adapter_name] = config.num_prompt_tokens
        self.set_adapter(adapter_name, inference_mode=config.inference_mode)

    def merge(self, safe_merge: bool = False, adapter_names=None) -> None:
        raise ValueError(
            "LPT cannot be merged into the base weights: its prompt is generated per instance at run time. "
            "Use unload() to get the base model back."
        )

    def unmerge(self) -> None:  # nothing is ever merged
        return None

    # -- state ---------------------------------------------------------------------------------------------------------

    def _active(self) -> str | None:
        """The single active adapter, or None when disabled / none active."""
        if self.disable_adapters:
            return None
        active = [name for name in self.active_adapters if name in self.lpt_generator]
        if not active:
            return None
        if len(active) > 1:
            raise ValueError(f"LPT runs one adapter at a time; {len(active)} are active: {active}.")
        return active[0]

    def generate_prompt(self, adapter: str, hidden_states: torch.Tensor, keep: torch.Tensor, source=None):
        """(b, l, d) prompt of ``adapter`` from the layer-``k`` states ``hidden_states`` (b, n, d).

        ``keep`` (b, n) marks the tokens the generator may read; ``source`` (b,) the token NPG reads (default [CLS]).
        """
        generator = self.lpt_generator[adapter]
        weight = next(generator.parameters())  # PEFT may keep adapter weights in float32 under a bf16/fp16 backbone
        return generator(hidden_states.to(weight.dtype), keep, source).to(hidden_states.dtype)

    def insert_prompt(self, adapter: str, hidden_states: torch.Tensor, attention_mask):
        """Prepend the generated prompt to ``hidden_states``; return (hidden (b, l+n, d), extended mask)."""
        b, n, _ = hidden_states.shape
        keep = token_keep_mask(attention_mask, b, n, hidden_states.device)
        prompt = self.generate_prompt(adapter, hidden_states, keep)
        extended = extend_attention_mask(attention_mask, self.lpt_num_tokens[adapter])
        return torch.cat([prompt, hidden_states], dim=1), extended

    # -- BERT / RoBERTa ---------------------------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any):
        adapter = self._active()
        base = self.get_base_layer()
        if adapter is None:
            return base(*args, **kwargs)
        backbone = self.backbone
        if backbone is not None:
            return self._hooked_forward(backbone, adapter, args, kwargs)
        return self._encoder_forward(adapter, *args, **kwargs)

    def _encoder_forward(self, adapter: str, hidden_states: torch.Tensor, attention_mask=None, *args, **kwargs):
        base = self.get_base_layer()
        if isinstance(base, MultiExitEncoder):
            raise TypeError(
                f"{type(base).__name__} is a multi-exit encoder: its model drives it layer by layer through "
                "run_layer / exit_states / pool, which this wrapper implements; it has no whole-stack forward here."
            )
        return self._stack_forward(adapter, hidden_states, attention_mask, *args, **kwargs)

    # -- DeBERTa-v2, GPT-2, Llama-style decoders (family adapters in ``backbones``) ------------------------------------

    def _hooked_forward(self, backbone: HookedBackbone, adapter: str, args: tuple, kwargs: dict):
        base = self.get_base_layer()
        k, num = self.lpt_prompt_layer[adapter], self.lpt_num_tokens[adapter]
        keep, source, cached, extra = backbone.begin(base, bind_call(base, args, kwargs), k, num)
        if self._source_override is not None and not cached:
            source = self._source_override.to(keep.device)
        stored = None if self._generation_prompts is None else self._generation_prompts.get(adapter)
        if stored is not None and not cached:  # uncached generation: the prompt built from the context, reused
            source = stored[1]
        if source is not None:
            keep = keep & (torch.arange(keep.shape[1], device=keep.device)[None, :] <= source[:, None])

        def make_prompt(hidden: torch.Tensor) -> torch.Tensor:
            if stored is not None:
                if stored[0].shape[0] != hidden.shape[0]:
                    raise ValueError("The batch changed during generate(); LPT builds the prompt once per call.")
                return stored[0]
            prompt = self.generate_prompt(adapter, hidden, keep, source)
            if self._generation_prompts is not None:
                self._generation_prompts[adapter] = (prompt, source)
            return prompt

        call = LatePromptCall(base, k, num, make_prompt, source=source, cached=cached, extra=extra)
        return backbone.run(call, args, kwargs)

    @contextmanager
    def generation_session(self):
        """Within ``generate()``: the prompt is generated once from the context (the first forward) and reused by
        later forwards that run without a cache, so cached and uncached decoding see the same prompt."""
        previous, self._generation_prompts = self._generation_prompts, {}
        try:
            yield
        finally:
            self._generation_prompts = previous

    @contextmanager
    def context_source(self, source: torch.Tensor | None):
        """Within the block, decoders generate the prompt from token ``source`` (b,) instead of the last valid one."""
        previous, self._source_override = self._source_override, source
        try:
            yield
        finally:
            self._source_override = previous

    def _stack_forward(
        self,
        adapter: str,
        hidden_states: torch.Tensor,
        attention_mask=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        past_key_values=None,
        use_cache=None,
        **kwargs: Any,
    ):
        if encoder_hidden_states is not None or past_key_values is not None:
            raise ValueError("LPT supports bidirectional encoders only (no cross-attention, no key/value cache).")
        layers = self.get_base_layer().layer
        k, l = self.lpt_prompt_layer[adapter], self.lpt_num_tokens[adapter]
        with _no_grad_if_frozen(layers[:k], hidden_states):
            for layer in layers[:k]:
                hidden_states = layer(hidden_states, attention_mask, **kwargs)
        hidden_states, attention_mask = self.insert_prompt(adapter, hidden_states, attention_mask)
        for layer in layers[k:]:
            hidden_states = layer(hidden_states, attention_mask, **kwargs)
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=hidden_states[:, l:])

    # -- multi-exit encoders (ElasticBERT): the MultiExitEncoder step API -------------------------------------------

    def run_layer(self, i: int, hidden_states: torch.Tensor, attention_mask=None, **kwargs) -> torch.Tensor:
        """Run layer ``i``; the prompt is generated and prepended before layer ``k``, and the mask extended from there.

        Layers ``>= k`` return (b, l + n, d) hidden states (the prompt rows travel with their row when early exit
        drops finished rows). The caller's mask may be the original (b, 1, q, n) one: it is extended on the fly.
        """
        base = self.get_base_layer()
        adapter = self._active()
        if adapter is None:
            return base.run_layer(i, hidden_states, attention_mask, **kwargs)
        k, l = self.lpt_prompt_layer[adapter], self.lpt_num_tokens[adapter]
        if i < k:
            with _no_grad_if_frozen([base.layer[i]], hidden_states):
                return base.run_layer(i, hidden_states, attention_mask, **kwargs)
        if i == k:
            hidden_states, attention_mask = self.insert_prompt(adapter, hidden_states, attention_mask)
        elif attention_mask is not None and attention_mask.shape[-1] == hidden_states.shape[1] - l:
            attention_mask = extend_attention_mask(attention_mask, l)
        if hasattr(base, "check_prompt_layer"):  # elue_hf.multiexit: the adapter keeps the prompt global (ModernBERT's
            kwargs = {**kwargs, "prompt_tokens": l}  # sliding-window layers would otherwise hide it from far tokens)
        return base.run_layer(i, hidden_states, attention_mask, **kwargs)

    def exit_states(self, i: int, hidden_states: torch.Tensor) -> torch.Tensor:
        """Layer ``i``'s output without the prompt rows (a no-op below the prompt layer or when disabled), so [CLS]
        is at index 0 and [MASK] at its original index for the exit heads."""
        states = self.get_base_layer().exit_states(i, hidden_states)
        adapter = self._active()
        if adapter is None or i < self.lpt_prompt_layer[adapter]:
            return states
        return states[:, self.lpt_num_tokens[adapter] :]

    def pool(self, i: int, hidden_states: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooler ``i`` of the base encoder, on :meth:`exit_states` output (the prompt rows are already stripped, so
        a mean pooling's ``token_mask``, the input's own tokens, lines up)."""
        return self.get_base_layer().pool(i, hidden_states, token_mask)

    def __getattr__(self, name: str):
        # the wrapper stands in for the encoder: unknown attributes (config, exit_layer_indices, layer, ...) are the
        # base encoder's
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name == "base_layer":
                raise
            return getattr(self.base_layer, name)

    def __repr__(self) -> str:
        return "lpt." + super().__repr__()
