"""FLOPs as ELUE counts them (docs/elue.md, "FLOPs rules", token-level rule included).

Two routes to the same number:

- **analytic** — small pure functions of (length, layers run, exits evaluated, active tokens per layer); they take
  Python ints or NumPy arrays (vectorised over instances) and return MACs; ``*_flops`` helpers return MFLOPs
  (FLOPs = 2 x MACs, 1 MFLOP = 1e6 FLOPs);
- **hooked** — :class:`ElueFlopsCounter`, forward hooks that see the real shapes while a model runs (also on the
  ``meta`` device, where no arithmetic happens).

ELUE's rules: ``nn.Linear`` numel(input) x out_features (bias ignored); ``nn.LayerNorm`` numel(input) x 2 (x 1 without
affine weights); embeddings 0; BERT/RoBERTa/ElasticBERT self-attention as one leaf: Q/K/V projections plus, per head,
scale + QK^T + softmax + A.V; nothing for GELU, tanh, dropout, residual adds, bias or mask adds. Each instance is
counted at its true, unpadded length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import numpy as np

__all__ = [
    "MFLOPS",
    "macs_to_mflops",
    "linear_macs",
    "layer_norm_macs",
    "embedding_macs",
    "attention_macs",
    "layer_macs",
    "exit_macs",
    "encoder_classifier_macs",
    "ModelDims",
    "dims_from_config",
    "elasticbert_flops",
    "bert_classifier_flops",
    "model_flops",
    "ElueFlopsCounter",
    "HookCall",
    "register_rule",
    "default_rules",
    "hooked_flops_by_length",
]

MFLOPS = 1e6


# ----------------------------------------------------------------------------------------------- analytic maths


def _num(x):
    """Integers stay exact (int64), anything else becomes float64; 0-d results come back as Python scalars."""
    arr = np.asarray(x)
    if arr.dtype == object:
        arr = arr.astype(np.float64)
    if arr.dtype.kind not in "iufb":
        raise TypeError(f"expected numbers, got dtype {arr.dtype}")
    return arr.astype(np.int64) if arr.dtype.kind in "iub" else arr.astype(np.float64)


def _out(x):
    if isinstance(x, (int, float)):
        return x
    x = np.asarray(x)
    return x.item() if x.ndim == 0 else x


def _nums(n, m):
    """Token counts as exact Python ints when both are ints (fast path for scalars), else NumPy arrays."""
    m = n if m is None else m
    if type(n) is int and type(m) is int:
        return n, m
    return _num(n), _num(m)


def macs_to_mflops(macs):
    """ELUE reports FLOPs = 2 x MACs, in MFLOPs."""
    return _out(2.0 * _num(macs) / MFLOPS)


def linear_macs(tokens, in_features, out_features):
    """``nn.Linear`` on ``tokens`` input vectors: tokens x in x out (bias ignored)."""
    return _out(_num(tokens) * int(in_features) * int(out_features))


def layer_norm_macs(numel, affine: bool = True):
    """``nn.LayerNorm``: numel(input) x 2 with affine weights, x 1 without."""
    return _out(_num(numel) * (2 if affine else 1))


def embedding_macs(n, d):
    """Embedding block: lookups and sums are free; only its LayerNorm counts (2 n d)."""
    return layer_norm_macs(_num(n) * int(d))


def attention_macs(n, d, heads, m=None):
    """Self-attention leaf with ``m`` query tokens over ``n`` key/value tokens (m=None: m = n).

    Q over m tokens, K and V over n tokens (d x d each), then per head scale (m n), QK^T (m n d_h), softmax (m n)
    and A.V (m n d_h): (2n + m) d^2 + 2 n m (h + d).
    """
    n, m = _nums(n, m)
    d, h = int(d), int(heads)
    return _out((2 * n + m) * d * d + 2 * n * m * (h + d))


def layer_macs(n, d, d_ff, heads, m=None):
    """MACs of one BERT post-LN layer, ``n`` key tokens and ``m`` active query tokens (m=None: m = n).

    ``2 n d^2 + 2 m d^2 + 2 n m (h + d) + 2 m d d_ff + 4 m d``; at m = n this is ELUE's
    ``4 n d^2 + 2 n d d_ff + 2 n^2 (h + d) + 4 n d`` (docs/elue.md, "FLOPs rules").
    """
    n, m = _nums(n, m)
    d, d_ff = int(d), int(d_ff)
    rest = m * d * d + 2 * m * d * d_ff + 4 * m * d  # attention output dense, FFN, the two LayerNorms
    return _out(attention_macs(n, d, heads, m) + rest)


def exit_macs(d, num_labels, pooler: bool = True):
    """One exit on the [CLS] vector: pooler d^2 (if present) + classifier d x C."""
    d = int(d)
    return (d * d if pooler else 0) + d * int(num_labels)


def encoder_classifier_macs(
    lengths,
    d: int,
    d_ff: int,
    heads: int,
    num_layers,
    num_labels: int,
    num_exits=1,
    active_tokens=None,
    pooler: bool = True,
):
    """MACs per instance of an encoder classifier: embedding LN + the layers run + the exits evaluated.

    ``lengths`` (N,) true token counts; ``num_layers`` layers run per instance (scalar or (N,)); ``num_exits``
    exits (pooler + classifier) evaluated per instance; ``active_tokens`` optional (N, L) active query tokens per
    layer (token-level exit; columns past an instance's ``num_layers`` are ignored; None = every token active).
    """
    n = _num(lengths)
    layers = _num(num_layers)
    if np.any(n < 0) or np.any(layers < 0) or np.any(_num(num_exits) < 0):
        raise ValueError("lengths, num_layers and num_exits must be >= 0")
    if active_tokens is None:
        body = layers * _num(layer_macs(n, d, d_ff, heads))
    else:
        m = _num(active_tokens)
        if m.ndim != n.ndim + 1:
            raise ValueError(
                f"active_tokens must have one more axis than lengths (per-layer counts), got shapes {m.shape} "
                f"and {n.shape}"
            )
        if np.any(m > n[..., None]) or np.any(m < 0):
            raise ValueError("active_tokens must lie in [0, length] for every layer")
        width = m.shape[-1]
        if np.any(layers > width):
            raise ValueError(f"active_tokens covers {width} layers but an instance runs {int(np.max(layers))}")
        ran = np.arange(width) < np.asarray(layers)[..., None]
        body = (_num(layer_macs(n[..., None], d, d_ff, heads, m=m)) * ran).sum(axis=-1)
    total = _num(embedding_macs(n, d)) + body + _num(num_exits) * exit_macs(d, num_labels, pooler)
    return _out(total)


# ------------------------------------------------------------------------------------------- model dimensions


@dataclass(frozen=True)
class ModelDims:
    """What the ELUE formula needs from a BERT-family classifier config."""

    hidden: int
    intermediate: int
    heads: int
    num_layers: int
    num_labels: int
    exit_layers: tuple[int, ...]  # 1-based layers that carry an exit (pooler + classifier)
    pooler: bool = True  # BERT pooler / RoBERTa head dense: d^2 per exit

    def exits_up_to(self, exit_layer):
        """Number of exits at layers <= ``exit_layer`` (vectorised)."""
        layers = np.asarray(self.exit_layers)
        return _out(np.searchsorted(layers, _num(exit_layer), side="right"))


def dims_from_config(config, num_labels: int | None = None) -> ModelDims:
    """Read d, d_ff, heads, layers, labels and the exit layout from a BERT / RoBERTa / ElasticBERT config."""
    missing = [a for a in ("hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers")
               if getattr(config, a, None) is None]
    if missing:
        raise ValueError(f"config {type(config).__name__} lacks {missing}; not a BERT-family encoder config")
    layers = int(config.num_hidden_layers)
    labels = int(num_labels if num_labels is not None else getattr(config, "num_labels", 2))
    if getattr(config, "model_type", "") == "elasticbert":
        num_out = int(getattr(config, "num_output_layers", None) or layers)
    else:
        num_out = 1  # BERT / RoBERTa: one head on the last layer
    if not 1 <= num_out <= layers:
        raise ValueError(f"num_output_layers={num_out} must lie in [1, num_hidden_layers={layers}]")
    exits = tuple(range(layers - num_out + 1, layers + 1))
    return ModelDims(
        hidden=int(config.hidden_size),
        intermediate=int(config.intermediate_size),
        heads=int(config.num_attention_heads),
        num_layers=layers,
        num_labels=labels,
        exit_layers=exits,
    )


def _dims(config_or_dims, num_labels=None) -> ModelDims:
    return config_or_dims if isinstance(config_or_dims, ModelDims) else dims_from_config(config_or_dims, num_labels)


def elasticbert_flops(config, length, exit_layer=None, mode: str = "static", active_tokens=None, num_labels=None):
    """MFLOPs per instance of an ElasticBERT classifier, vectorised over instances (docs/elue.md, "FLOPs rules").

    - ``mode="static"``: the first ``exit_layer`` layers + one pooler + one classifier (static-k model, or a
      multi-exit model read at exit k);
    - ``mode="dynamic"``: the layers run + the pooler and classifier of **every exit evaluated** on the way
      (exits at layers <= ``exit_layer``).

    ``exit_layer`` is 1-based (default: all layers); ``active_tokens`` (N, L) enables the token-level rule.
    """
    dims = _dims(config, num_labels)
    exit_layer = dims.num_layers if exit_layer is None else exit_layer
    k = _num(exit_layer)
    if np.any(k < 1) or np.any(k > dims.num_layers):
        raise ValueError(f"exit_layer must lie in [1, {dims.num_layers}], got {exit_layer!r}")
    if mode == "static":
        exits = 1
    elif mode == "dynamic":
        exits = dims.exits_up_to(k)
        if np.any(_num(exits) < 1):
            raise ValueError(f"exit_layer {exit_layer!r} is below the first exit (layer {dims.exit_layers[0]})")
    else:
        raise ValueError(f"mode must be 'static' or 'dynamic', got {mode!r}")
    macs = encoder_classifier_macs(
        length, dims.hidden, dims.intermediate, dims.heads, k, dims.num_labels, exits, active_tokens, dims.pooler
    )
    return macs_to_mflops(macs)


def bert_classifier_flops(config, length, num_layers=None, active_tokens=None, num_labels=None):
    """MFLOPs per instance of a BERT/RoBERTa sequence classifier (pooler/head dense + classifier), vectorised."""
    dims = _dims(config, num_labels)
    k = dims.num_layers if num_layers is None else num_layers
    macs = encoder_classifier_macs(
        length, dims.hidden, dims.intermediate, dims.heads, k, dims.num_labels, 1, active_tokens, dims.pooler
    )
    return macs_to_mflops(macs)


def model_flops(config, length, exit_layer=None, mode: str = "static", active_tokens=None, num_labels=None):
    """Dispatch on ``config.model_type``: ElasticBERT rule for "elasticbert", classifier rule otherwise."""
    if getattr(config, "model_type", None) == "elasticbert" or isinstance(config, ModelDims):
        return elasticbert_flops(config, length, exit_layer, mode, active_tokens, num_labels)
    return bert_classifier_flops(config, length, exit_layer, active_tokens, num_labels)


# --------------------------------------------------------------------------------------------- hooked counter


@dataclass
class HookCall:
    """What a counting rule sees for one module call.

    ``lengths`` holds the true token count of each row of the current top-level batch (or None when unknown);
    :meth:`tokens` turns a (batch, seq, ...) tensor into per-row token counts, using ``lengths`` only when the
    tensor is aligned with that batch (same batch size and padded length).
    """

    module: Any
    args: tuple
    kwargs: dict
    output: Any
    lengths: Any  # np.ndarray (B,) or None
    padded_length: int | None

    def input(self):
        """The first tensor argument (positional or ``hidden_states=``)."""
        for value in list(self.args) + list(self.kwargs.values()):
            if hasattr(value, "shape"):
                return value
        raise ValueError(f"no tensor input reached {type(self.module).__name__}")

    def rows(self, x) -> int:
        return 1 if x.dim() <= 1 else int(x.shape[0])

    def tokens(self, x) -> np.ndarray:
        """Per-row token count of ``x`` (rows = first axis; tokens = all axes between first and last)."""
        shape = tuple(int(s) for s in x.shape)
        if len(shape) <= 1:
            return np.ones(1, dtype=np.int64)
        per_row = int(np.prod(shape[1:-1], dtype=np.int64)) if len(shape) > 2 else 1
        aligned = (
            self.lengths is not None
            and len(shape) == 3
            and shape[0] == len(self.lengths)
            and shape[1] == self.padded_length
        )
        return self.lengths.astype(np.int64) if aligned else np.full(shape[0], per_row, dtype=np.int64)


def _linear_rule(call: HookCall):
    x = call.input()
    return np.asarray(linear_macs(call.tokens(x), call.module.in_features, call.module.out_features))


def _layer_norm_rule(call: HookCall):
    x = call.input()
    width = int(np.prod(call.module.normalized_shape))
    return np.asarray(layer_norm_macs(call.tokens(x) * width, call.module.elementwise_affine))


def _zero_rule(call: HookCall):
    return 0


def _self_attention_rule(call: HookCall):
    """BERT/RoBERTa/ElasticBERT self-attention leaf at each row's true length (docs/elue.md, "FLOPs rules")."""
    mod = call.module
    x = call.input()
    n = call.tokens(x)
    d_in, d_all, h = mod.query.in_features, mod.all_head_size, mod.num_attention_heads
    return 3 * n * d_in * d_all + 2 * n * n * (h + d_all)


_RULES: dict[type, Callable[[HookCall], Any]] = {}


def register_rule(module_type: type, fn: Callable[[HookCall], Any]) -> None:
    """Register how modules of ``module_type`` are counted (they become leaves: children are not hooked).

    ``fn(call: HookCall)`` returns the MACs of one call: a number (whole batch) or a 1-D array with one value per
    row of the current batch (enables per-instance figures). Later registrations override earlier ones.
    """
    if not isinstance(module_type, type):
        raise TypeError(f"module_type must be a class, got {module_type!r}")
    if not callable(fn):
        raise TypeError("fn must be callable")
    _RULES[module_type] = fn


def default_rules() -> dict[type, Callable[[HookCall], Any]]:
    """The built-in rules plus any registered ones (a fresh dict)."""
    import torch.nn as nn

    rules: dict[type, Callable] = {nn.Linear: _linear_rule, nn.LayerNorm: _layer_norm_rule, nn.Embedding: _zero_rule}
    from transformers.models.bert.modeling_bert import BertSelfAttention

    rules[BertSelfAttention] = _self_attention_rule
    try:
        from transformers.models.roberta.modeling_roberta import RobertaSelfAttention

        rules[RobertaSelfAttention] = _self_attention_rule
    except ImportError:  # pragma: no cover - older transformers
        pass
    rules.update(_RULES)
    return rules


def _rule_for(module, rules):
    for klass in type(module).__mro__:
        if klass in rules:
            return rules[klass]
    return None


class ElueFlopsCounter:
    """Count ELUE FLOPs of whatever runs inside ``with ElueFlopsCounter(model) as c:``.

    Attributes after the block: ``total_macs``, ``total_flops`` (= 2 x MACs), ``mflops``, ``by_module`` (MACs per
    module name) and, when every counted call was row-aligned with the batches, ``per_instance_mflops`` (one value per
    instance across all forwards, in call order).

    Per-row true lengths come from ``lengths=`` (or :meth:`set_lengths`) or, by default, from the ``attention_mask``
    keyword of each top-level call (not available on the ``meta`` device: pass ``lengths`` or use unpadded batches).
    Calls whose batch does not match the top-level batch (e.g. early-exit models that drop finished rows) are added
    to the totals but make ``per_instance_mflops`` unavailable; run such models one instance at a time.
    """

    def __init__(self, model, rules: dict | None = None, lengths=None, read_attention_mask: bool = True):
        self.model = model
        self.rules = default_rules() if rules is None else dict(rules)
        self.read_attention_mask = read_attention_mask
        self._fixed_lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
        self._handles: list = []
        self.reset()

    # -- bookkeeping
    def reset(self) -> None:
        self._total = 0.0
        self.by_module: dict[str, float] = {}
        self._per_instance: list[np.ndarray] = []
        self._current: np.ndarray | None = None
        self._per_instance_ok = True
        self._lengths = None
        self._padded = None

    def set_lengths(self, lengths) -> None:
        """True token counts of the rows of the next forward call(s)."""
        self._fixed_lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)

    def new_batch(self, batch_size: int | None = None, lengths=None, padded_length: int | None = None) -> None:
        """Start a new group of instances when driving sub-modules by hand (a top-level call does this itself)."""
        self._close_batch()
        self._lengths = None if lengths is None else np.asarray(lengths, dtype=np.int64)
        self._padded = padded_length
        self._current = None if batch_size is None else np.zeros(int(batch_size), dtype=np.float64)

    @property
    def total_macs(self):
        """MACs counted so far (an exact int while every rule returned integers)."""
        return int(self._total) if float(self._total).is_integer() else self._total

    @property
    def total_flops(self):
        return 2 * self.total_macs

    @property
    def mflops(self) -> float:
        return self.total_flops / MFLOPS

    @property
    def per_instance_mflops(self) -> np.ndarray:
        self._close_batch()
        if not self._per_instance_ok:
            raise ValueError(
                "per-instance FLOPs are unavailable: some module ran on a batch that did not match the top-level "
                "batch (e.g. rows dropped by early exit); count one instance per forward instead"
            )
        if not self._per_instance:
            return np.zeros(0)
        return 2.0 * np.concatenate(self._per_instance) / MFLOPS

    # -- hooks
    def _close_batch(self) -> None:
        if self._current is not None:
            self._per_instance.append(self._current)
            self._current = None

    def _pre_forward(self, module, args, kwargs):
        self._close_batch()
        x = kwargs.get("input_ids", args[0] if args else None)
        if x is None:
            x = kwargs.get("inputs_embeds")
        shape = tuple(x.shape) if hasattr(x, "shape") else ()
        batch = int(shape[0]) if len(shape) >= 1 else None
        padded = int(shape[1]) if len(shape) >= 2 else None
        lengths = self._fixed_lengths
        mask = kwargs.get("attention_mask")
        if lengths is None and self.read_attention_mask and mask is not None and mask.dim() == 2:
            if mask.device.type == "meta":
                raise ValueError("attention_mask on the meta device has no values: pass lengths= to the counter")
            lengths = mask.detach().to("cpu").long().sum(-1).numpy()
            padded = int(mask.shape[1])
        if lengths is not None and batch is not None and len(lengths) != batch:
            raise ValueError(f"counter has {len(lengths)} lengths but the batch has {batch} rows")
        self._lengths, self._padded = lengths, padded
        self._current = np.zeros(batch if batch is not None else 1, dtype=np.float64)

    def _make_hook(self, name, rule):
        def hook(module, args, kwargs, output):
            call = HookCall(module, args, kwargs, output, self._lengths, self._padded)
            macs = rule(call)
            arr = np.asarray(macs, dtype=np.float64)
            total = float(arr.sum())
            self._total += total
            self.by_module[name] = self.by_module.get(name, 0) + total
            if arr.ndim == 1:
                if self._current is None:
                    self._current = np.zeros(arr.size, dtype=np.float64)
                if arr.size == self._current.size:
                    self._current += arr
                    return
            elif total == 0:
                return
            elif self._current is not None and self._current.size == 1:
                self._current += total
                return
            self._per_instance_ok = False

        return hook

    def __enter__(self) -> "ElueFlopsCounter":
        self._handles.append(self.model.register_forward_pre_hook(self._pre_forward, with_kwargs=True))
        skip: list[str] = []
        for name, module in self.model.named_modules():
            if any(name.startswith(prefix + ".") for prefix in skip):
                continue
            rule = _rule_for(module, self.rules)
            if rule is None:
                continue
            skip.append(name)
            self._handles.append(module.register_forward_hook(self._make_hook(name, rule), with_kwargs=True))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._close_batch()


def hooked_flops_by_length(
    model,
    lengths: Sequence[int] | Iterable[int],
    max_batch: int = 256,
    forward_kwargs: dict | None = None,
    rules: dict | None = None,
) -> np.ndarray:
    """Per-instance MFLOPs from the hooked counter, running ``model`` once per distinct length (no padding).

    Instances of equal length are stacked into unpadded batches of ``input_ids`` (token id 1, any id works), so the
    hooks see every instance at its true length; the model may live on the ``meta`` device, where shapes flow
    through the hooks but no arithmetic is done. Returns MFLOPs in the order of ``lengths``.
    """
    import torch

    lengths = np.asarray(list(lengths), dtype=np.int64)
    if lengths.ndim != 1 or np.any(lengths < 1):
        raise ValueError("lengths must be a 1-D sequence of positive token counts")
    device = next(model.parameters()).device
    out = np.zeros(len(lengths), dtype=np.float64)
    with torch.no_grad(), ElueFlopsCounter(model, rules=rules, read_attention_mask=False) as counter:
        for n in np.unique(lengths):
            rows = np.flatnonzero(lengths == n)
            for start in range(0, len(rows), max_batch):
                chunk = rows[start : start + max_batch]
                ids = torch.ones((len(chunk), int(n)), dtype=torch.long, device=device)
                counter.reset()
                model(input_ids=ids, **(forward_kwargs or {}))
                out[chunk] = counter.per_instance_mflops
    return out
