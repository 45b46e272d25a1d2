"""Helpers shared by the family modules: config reading and the hooked rule for attention leaves."""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..hook_call import HookCall
from ..primitives import layer_norm_macs, linear_macs
from .registry import UnsupportedArchitecture
from .shape import attention_core_macs, attention_pairs

__all__ = ["config_int", "labels_of", "children_macs", "attention_leaf_rule", "import_class"]


def config_int(config, *names: str) -> int:
    """The first of ``names`` set on ``config``, as a positive int (clear error otherwise)."""
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            if isinstance(value, bool) or int(value) <= 0:
                raise UnsupportedArchitecture(
                    f"{type(config).__name__}.{name} must be a positive integer, got {value!r}"
                )
            return int(value)
    raise UnsupportedArchitecture(f"{type(config).__name__} lacks {' / '.join(names)}")


def labels_of(config, num_labels: int | None) -> int:
    return int(num_labels if num_labels is not None else getattr(config, "num_labels", 2))


def children_macs(module, n) -> np.ndarray:
    """Every ``nn.Linear`` and ``nn.LayerNorm`` inside ``module`` applied once to ``n`` tokens per row."""
    import torch.nn as nn

    total = np.zeros_like(np.asarray(n), dtype=np.int64)
    for child in module.modules():
        if isinstance(child, nn.Linear):
            total = total + linear_macs(n, child.in_features, child.out_features)
        elif isinstance(child, nn.LayerNorm):
            total = total + layer_norm_macs(n * int(np.prod(child.normalized_shape)), child.elementwise_affine)
    return total


def attention_leaf_rule(heads: Callable, inner: Callable, window: Callable | None = None) -> Callable:
    """Rule for a self-attention module counted as one leaf: its Linears / LayerNorms on the row's true length plus
    scale, QK^T, softmax and A.V over the attended pairs. ``heads``, ``inner`` and ``window`` read the module."""

    def rule(call: HookCall):
        n = call.tokens(call.input())
        pairs = attention_pairs(n, None if window is None else window(call.module))
        return children_macs(call.module, n) + attention_core_macs(pairs, heads(call.module), inner(call.module))

    return rule


def import_class(module: str, name: str):
    """``transformers.models.<module>.<name>`` or None when this transformers lacks it."""
    import importlib

    try:
        return getattr(importlib.import_module(f"transformers.models.{module}"), name)
    except (ImportError, AttributeError):  # pragma: no cover - other transformers versions
        return None
