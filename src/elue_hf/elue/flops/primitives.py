"""The ELUE MACs primitives: small pure functions of token counts and layer sizes (docs/elue.md, "FLOPs rules").

They take Python ints or NumPy arrays (vectorised over instances) and return MACs; FLOPs = 2 x MACs, reported in
MFLOPs (:func:`macs_to_mflops`). Every counting route builds on them: the closed-form BERT-layer rule
(:mod:`.analytic`), the other encoder families (:mod:`.architectures`) and the hooked rules (:mod:`.hooks`). This
module imports nothing from the package, so each of those can depend on it without depending on the others.
"""

from __future__ import annotations

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
]

MFLOPS = 1e6


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
    """One exit on the pooled vector: pooler d^2 (if present) + classifier d x C.

    The same for ``ElasticBertConfig(pooling="mean")``: the token mean is additions only, which ELUE does not count.
    """
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
