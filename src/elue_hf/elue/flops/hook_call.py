"""What a hooked counting rule sees and returns (:mod:`.hooks`): :class:`HookCall` and :class:`SharedMacs`.

A leaf module (NumPy only), so the family rules of :mod:`.architectures` can be written against it without importing
the counter itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["HookCall", "SharedMacs"]


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


@dataclass(frozen=True)
class SharedMacs:
    """What a rule returns for a batch-independent computation (e.g. a LayerNorm over a weight tensor): it runs once
    per forward, so every instance of the batch pays it in full (ELUE counts per instance, as at batch size 1)."""

    macs: float
