"""The hooked FLOPs route: forward hooks that see the real shapes while a model runs (also on the ``meta`` device).

The rules are ELUE's (docs/elue.md, "FLOPs rules"); :mod:`.analytic` computes the same numbers in closed form.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from .hook_call import HookCall, SharedMacs
from .primitives import MFLOPS, layer_norm_macs, linear_macs

__all__ = ["ElueFlopsCounter", "HookCall", "SharedMacs", "register_rule", "default_rules", "hooked_flops_by_length"]


def _linear_rule(call: HookCall):
    x = call.input()
    return np.asarray(linear_macs(call.tokens(x), call.module.in_features, call.module.out_features))


def _layer_norm_rule(call: HookCall):
    import torch

    x = call.input()
    if isinstance(x, torch.nn.Parameter):  # e.g. DeBERTa's LayerNorm over the relative-position embeddings
        return SharedMacs(layer_norm_macs(x.numel(), call.module.elementwise_affine))
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

    ``fn(call: HookCall)`` returns the MACs of one call: a number (whole batch), a 1-D array with one value per
    row of the current batch (enables per-instance figures) or :class:`SharedMacs` (paid by every row). Later
    registrations override earlier ones.
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
    from .architectures import architecture_rules

    rules.update(architecture_rules())
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
            if isinstance(macs, SharedMacs):
                rows = 1 if self._current is None else self._current.size
                macs = np.full(rows, float(macs.macs))
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
