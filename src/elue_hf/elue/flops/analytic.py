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
    "shape_flops",
    "needs_encoder_shape",
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


def needs_encoder_shape(config) -> bool:
    """True for configs of a registered non-BERT family (DistilBERT, ALBERT, DeBERTa-v2, ModernBERT...), whose FLOPs
    come from :func:`.architectures.encoder_shape` rather than :class:`ModelDims`."""
    from .architectures import get_architecture

    arch = get_architecture(getattr(config, "model_type", None))
    return arch is not None and arch.family != "bert"


def dims_from_config(config, num_labels: int | None = None) -> ModelDims:
    """Read d, d_ff, heads, layers, labels and the exit layout from a BERT / RoBERTa / ElasticBERT config."""
    if needs_encoder_shape(config):
        raise ValueError(
            f"model_type {config.model_type!r} is not a BERT-layer model; use "
            "elue_hf.elue.flops.encoder_shape(config) (its own ELUE rule)"
        )
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


def _layers_and_exits(dims, exit_layer, mode: str):
    """Layers run (default all) and exits evaluated: static 1, dynamic every exit at layers <= exit_layer."""
    exit_layer = dims.num_layers if exit_layer is None else exit_layer
    k = _num(exit_layer)
    if np.any(k < 1) or np.any(k > dims.num_layers):
        raise ValueError(f"exit_layer must lie in [1, {dims.num_layers}], got {exit_layer!r}")
    if mode == "static":
        return k, 1
    if mode != "dynamic":
        raise ValueError(f"mode must be 'static' or 'dynamic', got {mode!r}")
    exits = dims.exits_up_to(k)
    if np.any(_num(exits) < 1):
        raise ValueError(f"exit_layer {exit_layer!r} is below the first exit (layer {dims.exit_layers[0]})")
    return k, exits


def elasticbert_flops(config, length, exit_layer=None, mode: str = "static", active_tokens=None, num_labels=None):
    """MFLOPs per instance of an ElasticBERT classifier, vectorised over instances (docs/elue.md, "FLOPs rules").

    - ``mode="static"``: the first ``exit_layer`` layers + one pooler + one classifier (static-k model, or a
      multi-exit model read at exit k);
    - ``mode="dynamic"``: the layers run + the pooler and classifier of **every exit evaluated** on the way
      (exits at layers <= ``exit_layer``).

    ``exit_layer`` is 1-based (default: all layers); ``active_tokens`` (N, L) enables the token-level rule.
    """
    dims = _dims(config, num_labels)
    k, exits = _layers_and_exits(dims, exit_layer, mode)
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


def shape_flops(shape, length, exit_layer=None, mode: str = "static"):
    """MFLOPs per instance of an :class:`.architectures.EncoderShape` (static: one exit; dynamic: every exit met)."""
    from .architectures.shape import encoder_shape_macs

    k, exits = _layers_and_exits(shape, exit_layer, mode)
    return macs_to_mflops(encoder_shape_macs(length, shape, k, exits))


def model_flops(config, length, exit_layer=None, mode: str = "static", active_tokens=None, num_labels=None):
    """Dispatch on ``config.model_type``: ElasticBERT rule for "elasticbert", the family rule of
    :mod:`.architectures` for DistilBERT / ALBERT / DeBERTa-v2 / ModernBERT (or an ``EncoderShape``), the BERT
    classifier rule otherwise."""
    from .architectures import EncoderShape, encoder_shape

    if isinstance(config, EncoderShape) or needs_encoder_shape(config):
        if active_tokens is not None:
            raise ValueError("token-level exit (active_tokens) has an ELUE rule for BERT-layer models only")
        shape = config if isinstance(config, EncoderShape) else encoder_shape(config, num_labels)
        return shape_flops(shape, length, exit_layer, mode)
    if getattr(config, "model_type", None) == "elasticbert" or isinstance(config, ModelDims):
        return elasticbert_flops(config, length, exit_layer, mode, active_tokens, num_labels)
    return bert_classifier_flops(config, length, exit_layer, active_tokens, num_labels)
