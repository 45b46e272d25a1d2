"""The generic route: ELUE FLOPs of any encoder classifier from ``torch.utils.flop_counter.FlopCounterMode``.

``FlopCounterMode`` counts the matrix products (Linear, matmul, bmm, conv: 2 x MACs, bias ignored, embeddings 0)
that really run. ELUE also counts, and this route adds, per ``aten`` call:

- LayerNorm (``native_layer_norm``): numel x 2 MACs with affine weights, x 1 without;
- softmax (``_softmax`` / ``_safe_softmax``): numel MACs, plus numel for the attention scale (ELUE counts one scale
  per score; the scale is an element-wise product the counter does not see).

Attention runs in eager mode (the SDPA kernels on CPU have no FLOP formula). Each distinct true length is run once,
batch size 1, unpadded. What this route cannot know: masked work (a local-attention layer computed as a full masked
n x n matrix counts n^2), normalisations that are not LayerNorm (e.g. MobileBERT's NoNorm, free here) and model
parts outside the forward. Results are flagged ``route="generic"``; the family rules of this package are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..primitives import MFLOPS

__all__ = ["GenericFlops", "GenericShape", "generic_flops_by_length", "elue_flop_mapping"]


def _softmax_flops(x_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * 2 * math.prod(x_shape)  # softmax + scale, 1 MAC each per score; FLOPs = 2 x MACs


def _layer_norm_flops(x_shape, normalized_shape=None, weight_shape=None, *args, out_shape=None, **kwargs) -> int:
    return 2 * math.prod(x_shape) * (2 if weight_shape is not None else 1)


def elue_flop_mapping() -> dict:
    """``custom_mapping`` for ``FlopCounterMode`` adding ELUE's LayerNorm and softmax/scale terms."""
    import torch

    aten = torch.ops.aten
    mapping = {aten._softmax: _softmax_flops, aten.native_layer_norm: _layer_norm_flops}
    if hasattr(aten, "_safe_softmax"):
        mapping[aten._safe_softmax] = _softmax_flops
    return mapping


@dataclass
class GenericFlops:
    """Per-instance MFLOPs from the generic route."""

    mflops: np.ndarray
    route: str = "generic"
    attn_implementation: str | None = None
    by_length: dict = field(default_factory=dict)  # true length -> MFLOPs


def _set_attention(model, implementation):
    setter = getattr(model, "set_attn_implementation", None)
    if implementation is None or setter is None:
        return
    try:
        setter(implementation)
    except (ValueError, ImportError):  # pragma: no cover - a model without that implementation
        pass


def generic_flops_by_length(model, lengths, forward_kwargs: dict | None = None) -> GenericFlops:
    """ELUE MFLOPs per instance of ``model`` (any ``*ForSequenceClassification``), one forward per distinct length."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    lengths = np.asarray(list(lengths), dtype=np.int64)
    if lengths.ndim != 1 or np.any(lengths < 1):
        raise ValueError("lengths must be a 1-D sequence of positive token counts")
    config = getattr(model, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    _set_attention(model, "eager")
    used = getattr(config, "_attn_implementation", None)
    device = next(model.parameters()).device
    if device.type == "meta":
        raise ValueError("the generic route runs the model: load it on a real device (not meta)")
    by_length: dict[int, float] = {}
    # FlopCounterMode's module tracker hooks autograd on inputs that require grad; a weight fed to a module as its
    # input (DeBERTa's relative embeddings) then breaks it under no_grad, so parameters are frozen while counting
    trainable = [p for p in model.parameters() if p.requires_grad]
    try:
        for param in trainable:
            param.requires_grad_(False)
        with torch.no_grad():
            for n in np.unique(lengths):
                ids = torch.ones((1, int(n)), dtype=torch.long, device=device)
                mask = torch.ones_like(ids)
                counter = FlopCounterMode(display=False, custom_mapping=elue_flop_mapping())
                with counter:
                    model(input_ids=ids, attention_mask=mask, **(forward_kwargs or {}))
                by_length[int(n)] = counter.get_total_flops() / MFLOPS
    finally:
        for param in trainable:
            param.requires_grad_(True)
        if previous is not None and previous != used:
            _set_attention(model, previous)
    mflops = np.asarray([by_length[int(n)] for n in lengths], dtype=np.float64)
    return GenericFlops(mflops, attn_implementation=used, by_length=by_length)


class GenericShape:
    """Stands in for a shape when no family rule exists: one full-depth static exit; FLOPs from the generic route
    (cached per length). ``route == "generic"``."""

    route = "generic"

    def __init__(self, model):
        self.model = model
        config = model.config
        self.family = getattr(config, "model_type", None) or type(model).__name__
        self.num_layers = int(getattr(config, "num_hidden_layers", 0) or 0) or 1
        self.exit_layers = (self.num_layers,)
        self.num_labels = int(getattr(config, "num_labels", 2))
        self._cache: dict[int, float] = {}

    def mflops(self, lengths) -> np.ndarray:
        lengths = np.asarray(list(lengths), dtype=np.int64)
        todo = sorted({int(n) for n in lengths} - set(self._cache))
        if todo:
            self._cache.update(generic_flops_by_length(self.model, todo).by_length)
        return np.asarray([self._cache[int(n)] for n in lengths], dtype=np.float64)
