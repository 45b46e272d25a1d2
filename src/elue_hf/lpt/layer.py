"""LPT tuner layer: prompt generators, attention-mask extension and the encoder wrapper :class:`LPTLayer`.

Shapes: ``b`` batch, ``n`` input length, ``d`` hidden size, ``m`` bottleneck, ``l`` prompt length.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from peft.tuners.tuners_utils import BaseTunerLayer
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions

from .config import LPTConfig, check_prompt_layer, normalize_generator_kind

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


def token_keep_mask(attention_mask: torch.Tensor | None, batch_size: int, seq_len: int, device=None) -> torch.Tensor:
    """(b, n) bool: which key positions are real tokens, read from any mask form the encoder receives.

    Accepts ``None`` (no padding), a 2D 0/1 mask, or a 4D (b, 1, q, n) mask that is boolean (``True`` = attend, SDPA)
    or additive float (``0`` = attend, eager).
    """
    if attention_mask is None:
        return torch.ones(batch_size, seq_len, dtype=torch.bool, device=device)
    if attention_mask.dim() == 2:
        return attention_mask.bool()
    if attention_mask.dim() != 4:
        raise ValueError(f"Expected a 2D or 4D attention mask, got shape {tuple(attention_mask.shape)}.")
    keep = attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
    keep = keep.any(dim=-2).any(dim=1)  # a key is a real token if some query may attend to it
    return keep.expand(batch_size, seq_len)


def extend_attention_mask(attention_mask: torch.Tensor | None, num_prompt_tokens: int) -> torch.Tensor | None:
    """Extend a 4D encoder mask for ``num_prompt_tokens`` prompt vectors prepended to the sequence.

    ``None`` stays ``None``. Boolean and additive float masks (b, h, q, n) get ``l`` leading key columns that attend
    (``True`` / ``0.0``); when the mask is square (q == n > 1) ``l`` leading query rows are added too, each allowing the
    prompt and every real token (the original's broadcast (b, 1, 1, n) mask made all query rows identical).
    """
    if attention_mask is None:
        return None
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.dim() != 4:
        raise ValueError(
            "LPT needs the encoder's 4D attention mask (None, bool or additive float, shape (b, 1, q, n)); got "
            f"{type(attention_mask).__name__} {tuple(getattr(attention_mask, 'shape', ()))}."
        )
    b, h, q, n = attention_mask.shape
    is_bool = attention_mask.dtype == torch.bool
    keep_value = True if is_bool else 0.0
    columns = attention_mask.new_full((b, h, q, num_prompt_tokens), keep_value)
    extended = torch.cat([columns, attention_mask], dim=-1)
    if q == 1:
        return extended
    if q != n:
        raise ValueError(f"Cannot extend an attention mask with {q} query rows and {n} key columns.")
    key_row = attention_mask.any(dim=-2, keepdim=True) if is_bool else attention_mask.amax(dim=-2, keepdim=True)
    prompt_cols = attention_mask.new_full((b, h, 1, num_prompt_tokens), keep_value)
    prompt_rows = torch.cat([prompt_cols, key_row], dim=-1).expand(b, h, num_prompt_tokens, num_prompt_tokens + n)
    return torch.cat([prompt_rows, extended], dim=-2)


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

    def forward(self, hidden_states: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(hidden_states.shape[0], device=hidden_states.device)
        first = hidden_states[rows, _first_token_index(keep)]
        prompt = self.proj_up(torch.relu(self.proj_down(first)))
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

    def forward(self, hidden_states: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        pooled = masked_adaptive_pool(self.proj_down(hidden_states), keep, self.num_tokens, self.mode)
        return self.dropout(self.proj_up(torch.relu(pooled)))


class StaticPrompt(nn.Module):
    """LPT w/o PG: one learned (l, d) prompt shared by all instances (default embedding init, no dropout)."""

    def __init__(self, token_dim: int, num_tokens: int):
        super().__init__()
        self.embedding = nn.Embedding(num_tokens, token_dim)

    def forward(self, hidden_states: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
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
    * ElasticBERT encoders (with ``layer_forward``/``pool``): the same three entry points are provided, so the
      multi-exit heads (including early exit, which indexes finished rows out of the batch) drive the loop unchanged.
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
        self.update_layer(adapter_name, config)
        self._active_adapter = adapter_name

    # -- construction -------------------------------------------------------------------------------------------------

    @property
    def num_layers(self) -> int:
        return len(self.get_base_layer().layer)

    def update_layer(self, adapter_name: str, config: LPTConfig) -> None:
        """Create (or replace) the generator of ``adapter_name`` from ``config`` (token_dim etc. already filled)."""
        k = config.prompt_layer
        check_prompt_layer(k, self.num_layers)
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

    def insert_prompt(self, adapter: str, hidden_states: torch.Tensor, attention_mask):
        """Prepend the generated prompt to ``hidden_states``; return (hidden (b, l+n, d), extended mask)."""
        b, n, _ = hidden_states.shape
        keep = token_keep_mask(attention_mask, b, n, hidden_states.device)
        generator = self.lpt_generator[adapter]
        weight = next(generator.parameters())  # PEFT may keep adapter weights in float32 under a bf16/fp16 backbone
        prompt = generator(hidden_states.to(weight.dtype), keep).to(hidden_states.dtype)
        extended = extend_attention_mask(attention_mask, self.lpt_num_tokens[adapter])
        return torch.cat([prompt, hidden_states], dim=1), extended

    # -- BERT / RoBERTa ---------------------------------------------------------------------------------------------

    def forward(self, hidden_states: torch.Tensor, attention_mask=None, *args: Any, **kwargs: Any):
        adapter = self._active()
        base = self.get_base_layer()
        if adapter is None:
            return base(hidden_states, attention_mask, *args, **kwargs)
        if hasattr(base, "layer_forward"):
            return self._multi_exit_forward(adapter, hidden_states, attention_mask, *args, **kwargs)
        return self._stack_forward(adapter, hidden_states, attention_mask, *args, **kwargs)

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

    # -- ElasticBERT (step API: layer_forward / pool, driven by the multi-exit heads) -----------------------------

    def layer_forward(self, i: int, hidden_states: torch.Tensor, attention_mask=None) -> torch.Tensor:
        """Run layer ``i``; the prompt is generated and prepended before layer ``k``, and the mask extended from there.

        Layers ``>= k`` return (b, l + n, d) hidden states (the prompt rows travel with their row when early exit
        drops finished rows). The caller's mask may be the original (b, 1, q, n) one: it is extended on the fly.
        """
        base = self.get_base_layer()
        adapter = self._active()
        if adapter is None:
            return base.layer_forward(i, hidden_states, attention_mask)
        k, l = self.lpt_prompt_layer[adapter], self.lpt_num_tokens[adapter]
        if i < k:
            with _no_grad_if_frozen([base.layer[i]], hidden_states):
                return base.layer_forward(i, hidden_states, attention_mask)
        if i == k:
            hidden_states, attention_mask = self.insert_prompt(adapter, hidden_states, attention_mask)
        elif attention_mask is not None and attention_mask.shape[-1] == hidden_states.shape[1] - l:
            attention_mask = extend_attention_mask(attention_mask, l)
        return base.layer_forward(i, hidden_states, attention_mask)

    def pool(self, i: int, hidden_states: torch.Tensor) -> torch.Tensor:
        """Pooler ``i`` on the [CLS] row: index ``l`` once the prompt has been inserted (layers ``>= k``)."""
        return self.get_base_layer().pool(i, self._strip(i, hidden_states))

    def _strip(self, i: int, hidden_states: torch.Tensor) -> torch.Tensor:
        """Drop the prompt rows from the output of layer ``i`` (a no-op below the prompt layer or when disabled)."""
        adapter = self._active()
        if adapter is None or i < self.lpt_prompt_layer[adapter]:
            return hidden_states
        return hidden_states[:, self.lpt_num_tokens[adapter] :]

    def _multi_exit_forward(self, adapter: str, hidden_states, attention_mask=None, *args, **kwargs):
        """The base encoder's own ``forward`` (gradient equilibrium and all) run through this wrapper's step API.

        The base class's ``forward`` is called with this wrapper as ``self``, so its loop's ``self.layer_forward`` and
        ``self.pool`` calls land here (``config`` and ``exit_layer_indices`` resolve to the base encoder's). Exit hidden
        states and ``last_hidden_state`` come back without the prompt rows; ``hidden_states`` (every
        layer, when requested) keep them for layers after the insertion (length l + n), as in the BERT path.
        """
        base = self.get_base_layer()
        output = type(base).forward(self, hidden_states, attention_mask, *args, **kwargs)
        exit_hidden = getattr(output, "exit_hidden_states", None)
        if exit_hidden is not None:
            output.exit_hidden_states = tuple(
                self._strip(i, h) for i, h in zip(base.exit_layer_indices, exit_hidden)
            )
        output.last_hidden_state = self._strip(len(base.layer) - 1, output.last_hidden_state)
        return output

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
