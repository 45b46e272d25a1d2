"""FLOPs of a Late Prompt Tuning (LPT) classifier under ELUE's rules (docs/elue.md, "FLOPs rules"; docs/lpt.md).

An LPT classifier runs the frozen encoder; after ``k`` layers a prompt generator makes ``l`` prompt vectors that are
prepended to the sequence, so layers ``k + 1 .. L`` see ``n + l`` tokens (queries and keys). The generator costs
(ELUE counts Linears only; ReLU, pooling and dropout are free):

==========  ==========================  =====================================================
generator   reads                       MACs
==========  ==========================  =====================================================
npg         the first token, (d)        ``d m + m l d``  (Linear d -> m, Linear m -> l d)
appg, mppg  every real token, (n, d)    ``n d m + l m d``  (Linear d -> m per token, m -> d per prompt position)
none        nothing                     0  (one learned l x d prompt)
==========  ==========================  =====================================================

Pure functions of the dimensions, vectorised over instances like :mod:`.analytic`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..elue.flops.analytic import ModelDims, embedding_macs, exit_macs, layer_macs, macs_to_mflops

__all__ = ["PromptShape", "prompt_shape", "generator_macs", "late_prompt_macs", "late_prompt_flops"]

GENERATORS = ("npg", "appg", "mppg", "none")


@dataclass(frozen=True)
class PromptShape:
    """Where and how an LPT prompt goes in: after ``layer`` (k) frozen layers, ``tokens`` (l) vectors from a
    ``generator`` with bottleneck ``bottleneck`` (m)."""

    layer: int
    tokens: int
    generator: str
    bottleneck: int

    def __post_init__(self):
        if self.generator not in GENERATORS:
            raise ValueError(f"generator must be one of {GENERATORS}, got {self.generator!r}")
        if self.layer < 0 or self.tokens < 1 or self.bottleneck < 1:
            raise ValueError(f"prompt layer >= 0, tokens >= 1 and bottleneck >= 1 needed, got {self}")


def prompt_shape(adapter_config: Mapping, num_layers: int) -> PromptShape:
    """The :class:`PromptShape` of a saved LPT ``adapter_config.json`` (a dict; ``prompt_layer`` None = ``L // 2``)."""
    layer = adapter_config.get("prompt_layer")
    return PromptShape(int(num_layers // 2 if layer is None else layer), int(adapter_config["num_prompt_tokens"]),
                       str(adapter_config.get("generator", "npg")), int(adapter_config.get("bottleneck_size", 128)))


def generator_macs(shape: PromptShape, lengths, d: int):
    """MACs of the prompt generator per instance (table in the module docstring)."""
    n, d, m, tokens = np.asarray(lengths, dtype=np.int64), int(d), shape.bottleneck, shape.tokens
    if shape.generator == "npg":
        return np.broadcast_to(np.int64(d * m + m * tokens * d), n.shape).copy()
    if shape.generator in ("appg", "mppg"):
        return n * d * m + tokens * m * d
    return np.zeros_like(n)


def late_prompt_macs(dims: ModelDims, shape: PromptShape, lengths, exit_layer: int | None = None):
    """MACs per instance of an LPT classifier stopping at ``exit_layer`` (default: the last layer; a static exit):
    embedding LN, layers ``1..min(k, exit)`` at ``n`` tokens, the generator and layers ``k + 1 .. exit`` at ``n + l``
    tokens when the exit lies above the prompt, then the one exit."""
    top = dims.num_layers if exit_layer is None else int(exit_layer)
    if not 1 <= top <= dims.num_layers:
        raise ValueError(f"exit_layer must lie in [1, {dims.num_layers}], got {top}")
    n = np.asarray(lengths, dtype=np.int64)
    d, f, h = dims.hidden, dims.intermediate, dims.heads
    below, above = min(top, shape.layer), max(0, top - shape.layer)
    body = below * np.asarray(layer_macs(n, d, f, h)) + above * np.asarray(layer_macs(n + shape.tokens, d, f, h))
    prompt = generator_macs(shape, n, d) if above else 0
    return np.asarray(embedding_macs(n, d)) + body + prompt + exit_macs(d, dims.num_labels, dims.pooler)


def late_prompt_flops(dims: ModelDims, shape: PromptShape, lengths, exit_layer: int | None = None) -> np.ndarray:
    """MFLOPs per instance (``2 x`` :func:`late_prompt_macs`)."""
    return np.atleast_1d(macs_to_mflops(late_prompt_macs(dims, shape, lengths, exit_layer)))
