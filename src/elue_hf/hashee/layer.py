"""Token-level early exit inside one encoder layer (docs/hashee.md, "Forward mechanics").

At layer l (1-based) the active tokens of an example are its non-pad tokens t with exit e(t) >= l.

- **skip mode** (fast): the active rows of the whole batch are packed into a (1, T, d) block (T = sum of active counts);
  queries come from them only, keys and values from all n tokens of (batch, n, d) (pads masked as keys; exited
  tokens contribute their frozen states re-projected by this layer), attention runs on a padded (batch, m_max) query
  block, the attention output projection, LayerNorms and FFN run on the packed rows only, and the results are written
  back to their original positions. No per-example Python loop.
- **reference mode**: the unchanged layer computes every token; rows that are not active keep their input state
  (``where(active, new, old)``). Same function at full cost.

Architectures: BERT-style post-LN layers (BERT, RoBERTa, ElasticBERT, the bert2bert encoder), BART encoder layers
(post-LN) and T5 encoder blocks (pre-RMSNorm, relative position bias, returning tuples).
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

__all__ = [
    "TokenPlan",
    "LayerStep",
    "AttentionParts",
    "ActiveTokenAttention",
    "TRANSPOSED_PRODUCT_ROWS",
    "packed_linear",
    "LAYER_KINDS",
    "detect_layer_kind",
    "HashEEState",
    "HashEELayerMixin",
    "hashee_layer_class",
    "hashee_layer",
]


# --------------------------------------------------------------------------------------------------------------------
# Which tokens are active where
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class LayerStep:
    """Index sets of one layer: ``flat_index`` (T,) = row of each active token in the (batch*n, d) view, in
    (example, rank) order; ``slot_index`` (T,) = its row in the (batch*m_max) query block, or None at batch 1, where
    the packed rows are the query block (T = m_max); ``counts`` (batch,) active tokens per example."""

    layer: int
    m_max: int
    total: int
    counts: torch.Tensor
    flat_index: torch.Tensor
    slot_index: torch.Tensor | None
    positions: torch.Tensor  # (batch, m_max) original position of each query slot (padded slots: exited positions)


@dataclass
class TokenPlan:
    """Exit decision of one forward: per-token exits (0 on pads), key mask and per-layer active sets."""

    exits: torch.Tensor  # (batch, n) long, 0 = never active (padding)
    key_mask: torch.Tensor | None  # (batch, n) bool, None = no padding
    num_layers: int
    order: torch.Tensor = field(init=False)  # positions sorted by exit, descending (stable)
    counts: torch.Tensor = field(init=False)  # (num_layers, batch) active tokens per layer
    m_max: list[int] = field(init=False)
    totals: list[int] = field(init=False)
    _steps: dict = field(init=False, default_factory=dict)
    _masks: dict = field(init=False, default_factory=dict)

    def __post_init__(self):
        self.order = torch.argsort(self.exits, dim=1, descending=True, stable=True)
        layers = torch.arange(1, self.num_layers + 1, device=self.exits.device)
        self.counts = (self.exits[None, :, :] >= layers[:, None, None]).sum(-1)
        stats = torch.stack([self.counts.max(1).values, self.counts.sum(1)]).tolist()  # one host sync
        self.m_max, self.totals = stats

    @classmethod
    def build(cls, exits: torch.Tensor, attention_mask: torch.Tensor | None, num_layers: int) -> TokenPlan:
        key_mask = None
        if attention_mask is not None:
            if attention_mask.dim() != 2 or attention_mask.shape != exits.shape:
                raise ValueError(
                    f"HashEE needs a 2-D attention_mask of shape {tuple(exits.shape)} (batch, seq), "
                    f"got {tuple(attention_mask.shape)}"
                )
            key_mask = attention_mask.to(torch.bool)
            exits = torch.where(key_mask, exits, torch.zeros_like(exits))
            if bool(key_mask.all()):
                key_mask = None
        return cls(exits.clamp(max=num_layers), key_mask, num_layers)

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.exits.shape)

    def active(self, layer: int) -> torch.Tensor:
        """(batch, n) bool: tokens updated by ``layer`` (1-based)."""
        return self.exits >= layer

    def step(self, layer: int) -> LayerStep:
        if layer not in self._steps:
            batch, n = self.shape
            m_max = self.m_max[layer - 1]
            counts = self.counts[layer - 1]
            if batch == 1:  # the active tokens are the first m of the order: slices, no index building
                positions = self.order[:, :m_max]
                self._steps[layer] = LayerStep(layer, m_max, m_max, counts, positions[0], None, positions)
                return self._steps[layer]
            device = self.exits.device
            ranks = torch.arange(m_max, device=device)[None, :]
            valid = ranks < counts[:, None]
            rows = torch.arange(batch, device=device)[:, None]
            positions = self.order[:, :m_max]
            self._steps[layer] = LayerStep(
                layer=layer,
                m_max=m_max,
                total=self.totals[layer - 1],
                counts=counts,
                flat_index=(rows * n + positions)[valid],
                slot_index=(rows * m_max + ranks).expand(batch, m_max)[valid],
                positions=positions,
            )
        return self._steps[layer]

    def attention_mask(self, implementation: str, dtype: torch.dtype) -> torch.Tensor | None:
        """Key padding mask (batch, 1, 1, n): bool for SDPA, additive float for eager; None without padding."""
        if self.key_mask is None:
            return None
        key = (implementation == "eager", dtype)
        if key not in self._masks:
            keys = self.key_mask | ~self.key_mask.any(1, keepdim=True)  # an all-pad row attends somewhere (no NaN)
            mask = keys[:, None, None, :]
            if implementation == "eager":
                mask = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
                    ~mask, torch.finfo(dtype).min
                )
            self._masks[key] = mask
        return self._masks[key]


# --------------------------------------------------------------------------------------------------------------------
# Attention over active queries
# --------------------------------------------------------------------------------------------------------------------


class AttentionParts(NamedTuple):
    """What the active-token attention needs from an architecture's self-attention module."""

    module: nn.Module  # handed to the transformers attention interface (training flag, config)
    query: nn.Module
    key: nn.Module
    value: nn.Module
    heads: int
    head_dim: int
    scaling: float
    dropout: float
    implementation: str
    function: Callable  # the transformers attention function for ``implementation``


def _interface(module: nn.Module, implementation: str) -> Callable:
    eager = sys.modules[type(module).__module__].eager_attention_forward
    if implementation == "eager":
        return eager
    if implementation != "sdpa":  # flash / flex kernels take no (m, n) key-padding masks here
        return ALL_ATTENTION_FUNCTIONS["sdpa"]
    return ALL_ATTENTION_FUNCTIONS.get_interface("sdpa", eager)


def _parts(module, query, key, value, heads, head_dim, scaling, dropout) -> AttentionParts:
    implementation = _implementation(module.config)
    return AttentionParts(
        module, query, key, value, heads, head_dim, scaling, dropout, implementation,
        _interface(module, implementation),
    )  # fmt: skip


#: Packed row counts for which :func:`packed_linear` computes ``(W @ x^T)^T`` instead of ``x @ W^T`` on CPU. With
#: 7-15 rows MKL's ``x @ W^T`` (what ``nn.Linear`` runs) took 1.2-2x as long as the transposed product, and as long as
#: or longer than with 16 rows, on the machine of docs/hashee.md ("Batch 1"); at 5, 6 and 16 rows the two tied, below
#: 5 rows ``x @ W^T`` was faster. ``range(0)`` always runs the module itself.
TRANSPOSED_PRODUCT_ROWS = range(7, 16)


def packed_linear(linear: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``linear(x)`` for a few packed active rows, through the faster of the two CPU products (same values).

    Anything but a plain ``nn.Linear`` without hooks (a PEFT/LoRA or quantised layer, a module the FLOPs counter
    hooks), off CPU or outside :data:`TRANSPOSED_PRODUCT_ROWS`, runs the module itself."""
    rows = x.numel() // x.shape[-1]
    if (
        rows not in TRANSPOSED_PRODUCT_ROWS
        or x.device.type != "cpu"
        or type(linear) is not nn.Linear
        or linear._forward_hooks
        or linear._forward_pre_hooks
        or _GLOBAL_HOOKS[0]
        or _GLOBAL_HOOKS[1]
    ):
        return linear(x)
    columns = x.reshape(rows, x.shape[-1]).t()
    if linear.bias is None:
        out = torch.mm(linear.weight, columns)
    else:
        out = torch.addmm(linear.bias[:, None], linear.weight, columns)
    return out.t().reshape(*x.shape[:-1], out.shape[0])


_GLOBAL_HOOKS = (nn.modules.module._global_forward_hooks, nn.modules.module._global_forward_pre_hooks)


class ActiveTokenAttention(nn.Module):
    """Self-attention of the packed active tokens over all tokens of their example (no parameters of its own).

    A module of its own so that the ELUE FLOPs counter can count it as one leaf with its true (m, n) shapes.
    ``queries`` (1, T, d) are the packed active rows; returns their attention output before the output projection,
    shape (1, T, heads * head_dim).
    """

    def forward(
        self,
        parts: AttentionParts,
        queries: torch.Tensor,
        states: torch.Tensor,
        step: LayerStep,
        plan: TokenPlan,
        position_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        batch, n, _ = states.shape
        m_max, heads, head_dim = step.m_max, parts.heads, parts.head_dim
        inner = heads * head_dim
        q = packed_linear(parts.query, queries).reshape(-1, inner)
        if step.slot_index is not None:
            q = q.new_zeros(batch * m_max, inner).index_copy(0, step.slot_index, q)
        q_block = q.view(batch, m_max, heads, head_dim).transpose(1, 2)
        k = parts.key(states).view(batch, n, heads, head_dim).transpose(1, 2)
        v = parts.value(states).view(batch, n, heads, head_dim).transpose(1, 2)
        extra = {}
        if position_bias is not None:  # (1 or batch, heads, n, n) -> rows of the query slots
            bias = position_bias.expand(batch, heads, n, n)
            index = step.positions[:, None, :, None].expand(batch, heads, m_max, n)
            extra["position_bias"] = bias.gather(2, index)
        out, _ = parts.function(
            parts.module,
            q_block,
            k,
            v,
            plan.attention_mask(parts.implementation, q.dtype),
            dropout=parts.dropout if parts.module.training else 0.0,
            scaling=parts.scaling,
            is_causal=False,
            **extra,
        )
        if step.slot_index is None:
            return out.reshape(1, m_max, inner)
        return out.reshape(batch * m_max, inner).index_select(0, step.slot_index)[None]


def _implementation(config) -> str:
    return getattr(config, "_attn_implementation", None) or "eager"


# --------------------------------------------------------------------------------------------------------------------
# Architectures: what one layer does to its active rows
# --------------------------------------------------------------------------------------------------------------------


def _bert_parts(layer) -> AttentionParts:
    sa = layer.attention.self
    return _parts(
        sa, sa.query, sa.key, sa.value, sa.num_attention_heads, sa.attention_head_size, sa.scaling, sa.dropout.p
    )


#: Output / intermediate blocks whose forward is BERT's ``LayerNorm(dropout(dense(x)) + residual)`` and
#: ``act(dense(x))``; :func:`_bert_active` runs them with :func:`packed_linear` (others: their own forward).
_BERT_BLOCKS = frozenset(
    f"{prefix}{suffix}" for prefix in ("Bert", "Roberta") for suffix in ("SelfOutput", "Intermediate", "Output")
)


def _residual_block(block, x, residual) -> torch.Tensor:
    return block.LayerNorm(block.dropout(packed_linear(block.dense, x)) + residual)


def _no_hooks(*modules: nn.Module) -> bool:
    return not (_GLOBAL_HOOKS[0] or _GLOBAL_HOOKS[1]) and not any(
        module._forward_hooks or module._forward_pre_hooks for module in modules
    )


def _layer_norm(norm: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return nn.functional.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _lean_batch_one(layer, blocks, hidden, rows, step, plan) -> torch.Tensor | None:
    """The BERT block of batch 1 at inference as direct torch calls (no module calls for attention, LayerNorm and
    dropout), or None where it does not apply: training, attention other than SDPA, a LayerNorm that is not
    ``nn.LayerNorm``, or a hook on a module it would bypass (the ELUE FLOPs counter's, for example)."""
    sa, (attention_out, intermediate, output) = layer.attention.self, blocks
    norms = (attention_out.LayerNorm, output.LayerNorm)
    if (
        step.slot_index is not None
        or layer.training
        or _implementation(sa.config) != "sdpa"
        or not all(type(norm) is nn.LayerNorm for norm in norms)
        or not _no_hooks(layer.hashee_attention, *norms, sa.dropout, attention_out.dropout, output.dropout)
    ):
        return None
    heads, size, m, n = sa.num_attention_heads, sa.attention_head_size, step.m_max, hidden.shape[1]
    q = packed_linear(sa.query, rows).view(1, m, heads, size).transpose(1, 2)
    k = sa.key(hidden).view(1, n, heads, size).transpose(1, 2)
    v = sa.value(hidden).view(1, n, heads, size).transpose(1, 2)
    mask = plan.attention_mask("sdpa", q.dtype)
    context = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=sa.scaling)
    context = context.transpose(1, 2).reshape(1, m, heads * size)
    attention = _layer_norm(norms[0], packed_linear(attention_out.dense, context) + rows)
    states = intermediate.intermediate_act_fn(packed_linear(intermediate.dense, attention))
    return _layer_norm(norms[1], packed_linear(output.dense, states) + attention)


def _bert_active(layer, leaf, hidden, rows, step, plan, extra) -> torch.Tensor:
    blocks = (layer.attention.output, layer.intermediate, layer.output)
    bert_blocks = all(type(block).__name__ in _BERT_BLOCKS for block in blocks)
    if bert_blocks:
        lean = _lean_batch_one(layer, blocks, hidden, rows, step, plan)
        if lean is not None:
            return lean
    attention = leaf(_bert_parts(layer), rows, hidden, step, plan)
    if not bert_blocks:
        attention = layer.attention.output(attention, rows)
        return layer.output(layer.intermediate(attention), attention)
    attention = _residual_block(blocks[0], attention, rows)
    intermediate = blocks[1].intermediate_act_fn(packed_linear(blocks[1].dense, attention))
    return _residual_block(blocks[2], intermediate, attention)


def _bart_parts(layer) -> AttentionParts:
    sa = layer.self_attn
    return _parts(sa, sa.q_proj, sa.k_proj, sa.v_proj, sa.num_heads, sa.head_dim, sa.scaling, sa.dropout)


def _clamp_fp16(x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.float16 and not torch.isfinite(x).all():
        limit = torch.finfo(x.dtype).max - 1000
        x = x.clamp(-limit, limit)
    return x


def _bart_active(layer, leaf, hidden, rows, step, plan, extra) -> torch.Tensor:
    drop = nn.functional.dropout
    attention = packed_linear(layer.self_attn.out_proj, leaf(_bart_parts(layer), rows, hidden, step, plan))
    x = layer.self_attn_layer_norm(rows + drop(attention, p=layer.dropout, training=layer.training))
    y = drop(layer.activation_fn(packed_linear(layer.fc1, x)), p=layer.activation_dropout, training=layer.training)
    y = drop(packed_linear(layer.fc2, y), p=layer.dropout, training=layer.training)
    return _clamp_fp16(layer.final_layer_norm(x + y))


def _t5_parts(layer) -> AttentionParts:
    sa = layer.layer[0].SelfAttention
    return _parts(sa, sa.q, sa.k, sa.v, sa.n_heads, sa.key_value_proj_dim, 1.0, sa.dropout)


def _t5_position_bias(layer, n: int, position_bias, device) -> torch.Tensor:
    if position_bias is not None:
        return position_bias
    sa = layer.layer[0].SelfAttention
    if sa.has_relative_attention_bias:
        return sa.compute_bias(n, n, device=device)
    return torch.zeros((1, sa.n_heads, n, n), device=device, dtype=sa.q.weight.dtype)


def _t5_active(layer, leaf, hidden, rows, step, plan, extra) -> torch.Tensor:
    attention_layer = layer.layer[0]
    normed = attention_layer.layer_norm(hidden)  # keys/values read the normalised states of all tokens
    normed_rows = normed.reshape(-1, normed.shape[-1]).index_select(0, step.flat_index)[None]
    bias = extra["position_bias"]
    attention = leaf(_t5_parts(layer), normed_rows, normed, step, plan, position_bias=bias)
    x = _clamp_fp16(rows + attention_layer.dropout(attention_layer.SelfAttention.o(attention)))
    return _clamp_fp16(layer.layer[-1](x))


class LayerKind(NamedTuple):
    name: str
    active_forward: Callable  # (layer, attention leaf, hidden, packed rows, step, plan, extra) -> new packed rows
    returns_tuple: bool


LAYER_KINDS = {
    "bert": LayerKind("bert", _bert_active, False),
    "bart": LayerKind("bart", _bart_active, False),
    "t5": LayerKind("t5", _t5_active, True),
}


_POST_LN_BART_LAYERS = ("BartEncoderLayer", "PLBartEncoderLayer")
_T5_BLOCKS = ("T5Block", "MT5Block")


def detect_layer_kind(layer: nn.Module) -> LayerKind | None:
    """Recognise a supported encoder layer by its structure (None if unsupported)."""
    if hasattr(layer, "attention") and hasattr(getattr(layer.attention, "self", None), "query"):
        if getattr(layer, "is_decoder", False) or getattr(layer, "add_cross_attention", False):
            return None
        return LAYER_KINDS["bert"]
    name = type(layer).__name__
    if name in _POST_LN_BART_LAYERS:  # the same modules in pre-LN order (mBART, Pegasus) would need another path
        return LAYER_KINDS["bart"]
    if name in _T5_BLOCKS and not layer.is_decoder:
        return LAYER_KINDS["t5"]
    return None


# --------------------------------------------------------------------------------------------------------------------
# The HashEE layer: a declared module around one encoder layer
# --------------------------------------------------------------------------------------------------------------------


def _first(output):
    return output[0] if isinstance(output, tuple) else output


def _with_first(output, hidden):
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


class HashEEState:
    """What the HashEE layers of one model share: the exit plan of the current forward and the mode."""

    def __init__(self, mode: str):
        self.mode = mode
        self.plan: TokenPlan | None = None


class HashEELayerMixin:
    """The HashEE forward of one encoder layer, mixed into that layer's own class by :func:`hashee_layer_class`.

    In skip mode only the layer's active tokens are computed (their packed rows go through the layer's own
    sub-modules, attention through the parameter-free :class:`ActiveTokenAttention` child ``hashee_attention``); in
    reference mode, or when every real token is still active, the original ``forward`` runs and exited rows keep their
    input state. Being a subclass of the original layer class, a HashEE layer keeps its parameters, state-dict keys and
    everything transformers attaches to that class (output recording, gradient checkpointing).
    """

    hashee_index: int
    hashee_kind: LayerKind
    hashee_state: HashEEState

    def _hashee_reference(self, hidden, plan, args, kwargs):
        output = super().forward(hidden, *args, **kwargs)
        new = torch.where(plan.active(self.hashee_index + 1)[..., None], _first(output), hidden)
        return _with_first(output, new)

    def forward(self, hidden_states, *args, **kwargs):
        number, plan = self.hashee_index + 1, self.hashee_state.plan
        if plan is None:
            raise RuntimeError(
                f"HashEE layer {number} ran outside its encoder's forward, so the token ids (and their exit layers) "
                "are unknown; call the model (or its encoder) with input_ids"
            )
        if tuple(hidden_states.shape[:2]) != plan.shape:
            raise RuntimeError(
                f"HashEE layer {number} got hidden states of shape {tuple(hidden_states.shape)} but the exit plan "
                f"was made for input_ids of shape {plan.shape}"
            )
        step_total = plan.totals[number - 1]
        if self.hashee_state.mode == "reference" or step_total == plan.totals[0]:
            return self._hashee_reference(hidden_states, plan, args, kwargs)  # every real token active: full layer
        kind, extra = self.hashee_kind, {}
        if kind.name == "t5":
            bound = inspect.signature(super().forward).bind_partial(hidden_states, *args, **kwargs).arguments
            extra["position_bias"] = _t5_position_bias(
                self, plan.shape[1], bound.get("position_bias"), hidden_states.device
            )
        if step_total == 0:
            new = hidden_states
        else:
            step = plan.step(number)
            flat = hidden_states.reshape(-1, hidden_states.shape[-1])
            rows = flat.index_select(0, step.flat_index)[None]  # (1, T, d): the packed active rows
            out = kind.active_forward(self, self.hashee_attention, hidden_states, rows, step, plan, extra)
            new = flat.index_copy(0, step.flat_index, out[0].to(flat.dtype)).view_as(hidden_states)
        if kind.returns_tuple:
            return (new, extra["position_bias"], None)
        return new


_LAYER_CLASSES: dict[type, type] = {}


def hashee_layer_class(base_cls: type) -> type:
    """``HashEE<Base>``: the subclass of an encoder layer class with the HashEE forward (one class per base class)."""
    if issubclass(base_cls, HashEELayerMixin):
        raise TypeError(f"{base_cls.__name__} already runs HashEE")
    if base_cls not in _LAYER_CLASSES:
        _LAYER_CLASSES[base_cls] = type(f"HashEE{base_cls.__name__}", (HashEELayerMixin, base_cls), {})
    return _LAYER_CLASSES[base_cls]


def hashee_layer(layer: nn.Module, index: int, kind: LayerKind, state: HashEEState) -> nn.Module:
    """A HashEE copy of encoder layer ``index`` (0-based) sharing every parameter and sub-module of ``layer``.

    ``layer`` itself is left unchanged (it is what :func:`~elue_hf.hashee.remove_hashee` puts back)."""
    cls = hashee_layer_class(type(layer))
    new = cls.__new__(cls)
    new.__dict__.update(layer.__dict__)
    for name in ("_parameters", "_buffers", "_modules", "_non_persistent_buffers_set"):
        new.__dict__[name] = type(layer.__dict__[name])(layer.__dict__[name])
    new.hashee_index, new.hashee_kind, new.hashee_state = index, kind, state
    new.add_module("hashee_attention", ActiveTokenAttention())  # no parameters: the state dict is unchanged
    return new
