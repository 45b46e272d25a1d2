"""Architecture-neutral description of an encoder classifier and its ELUE MACs (pure functions, NumPy only).

An :class:`EncoderShape` is what the ELUE rules need from any supported family: the embedding block (its LayerNorm
width and an optional embedding -> hidden projection), one :class:`LayerShape` per layer *use* (ALBERT's shared
layers appear once per use), batch-independent extras (DeBERTa's relative-embedding LayerNorm), an optional final
LayerNorm and the exit head(s). Layer variants:

- ``glu``: the feed-forward input projects to 2 x d_ff (gate and value), the output from d_ff (ModernBERT);
- ``window``: a local layer where query i attends keys j with |i - j| <= window (ModernBERT, "true window");
- ``rel_positions`` > 0: DeBERTa-v2 disentangled attention with 2k relative-position rows and c2p / p2c terms.

All ``*_macs`` functions take Python ints or NumPy arrays of token counts (vectorised over instances) and return MACs;
FLOPs = 2 x MACs (:func:`..primitives.macs_to_mflops`). The rules are written out in docs/elue.md ("FLOPs of other
encoder families").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..primitives import _num, _out, exit_macs, layer_norm_macs, linear_macs

__all__ = [
    "LayerShape",
    "ExitShape",
    "EncoderShape",
    "attention_pairs",
    "attention_core_macs",
    "disentangled_extra_macs",
    "feed_forward_macs",
    "conv1d_macs",
    "layer_shape_macs",
    "exit_shape_macs",
    "encoder_shape_macs",
]


@dataclass(frozen=True)
class LayerShape:
    """One encoder layer: hidden ``d``, feed-forward ``d_ff``, ``heads`` (all heads together span d) and variants."""

    d: int
    d_ff: int
    heads: int
    glu: bool = False
    window: int | None = None  # local attention: keys with |i - j| <= window; None = global
    rel_positions: int = 0  # DeBERTa: rows of relative embeddings used (2 x att_span); 0 = no relative attention
    c2p: bool = False
    p2c: bool = False
    share_att_key: bool = False  # DeBERTa: Q/K projections reused for the positions (both always computed)
    norms: int = 2  # affine LayerNorms over d per token (ModernBERT's first layer has 1)

    def __post_init__(self):
        for name in ("d", "d_ff", "heads"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"LayerShape.{name} must be positive, got {getattr(self, name)!r}")
        if self.d % self.heads:
            raise ValueError(f"LayerShape: d={self.d} is not divisible by heads={self.heads}")
        if self.window is not None and self.window < 0:
            raise ValueError(f"LayerShape.window must be >= 0 or None, got {self.window}")
        if self.rel_positions < 0 or self.norms < 0:
            raise ValueError("LayerShape.rel_positions and norms must be >= 0")
        if (self.c2p or self.p2c or self.share_att_key) and not self.rel_positions:
            raise ValueError("c2p / p2c / share_att_key need rel_positions > 0 (relative attention)")


@dataclass(frozen=True)
class ExitShape:
    """A classification head on one pooled vector: dense d x d (``pooler``), LayerNorm (``norm``), d x labels."""

    d: int
    labels: int
    pooler: bool = True
    norm: bool = False


@dataclass(frozen=True)
class EncoderShape:
    """What ELUE counts in an encoder classifier of any supported family (see the module docstring)."""

    family: str
    embedding_norm: int  # width of the embedding LayerNorm (0: none)
    layers: tuple[LayerShape, ...]
    exit: ExitShape
    exit_layers: tuple[int, ...]  # 1-based layers carrying an exit
    embedding_proj: tuple[int, int] | None = None  # (in, out) Linear per token after the lookups
    shared_norm_rows: int = 0  # batch-independent LayerNorm over (rows, d) once per forward (DeBERTa rel embeddings)
    conv: tuple[int, int] | None = None  # DeBERTa ConvLayer after layer 1: (kernel, groups); adds its LayerNorm
    final_norm: bool = False  # a LayerNorm over every token before each exit evaluated (ModernBERT's final_norm)
    route: str = field(default="analytic", compare=False)

    def __post_init__(self):
        if not self.layers:
            raise ValueError("EncoderShape needs at least one layer")
        if not self.exit_layers or any(not 1 <= k <= len(self.layers) for k in self.exit_layers):
            raise ValueError(f"exit_layers {self.exit_layers} must lie in [1, {len(self.layers)}]")

    @property
    def hidden(self) -> int:
        return self.layers[-1].d

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_labels(self) -> int:
        return self.exit.labels

    def exits_up_to(self, exit_layer):
        """Number of exits at layers <= ``exit_layer`` (vectorised)."""
        return _out(np.searchsorted(np.asarray(self.exit_layers), _num(exit_layer), side="right"))


# ------------------------------------------------------------------------------------------------------- maths


def attention_pairs(n, window=None):
    """(query, key) pairs scored among ``n`` tokens: n^2 globally; within |i - j| <= w: n (2K + 1) - K (K + 1)
    with K = min(w, n - 1)."""
    n = _num(n)
    if window is None:
        return _out(n * n)
    k = np.minimum(int(window), np.maximum(n - 1, 0))
    return _out(n * (2 * k + 1) - k * (k + 1))


def attention_core_macs(pairs, heads, inner):
    """Per head: scale (1 per score), QK^T (d_h per score), softmax (1 per score), A.V (d_h per score):
    ``2 x pairs x (heads + inner)`` with ``inner`` = heads x d_h."""
    return _out(2 * _num(pairs) * (int(heads) + int(inner)))


def disentangled_extra_macs(n, d, heads, rel_positions, c2p, p2c, share_att_key=False):
    """DeBERTa-v2 relative terms on top of :func:`attention_core_macs` (transformers 5.23 DisentangledSelfAttention).

    - position projections of the 2k relative embeddings: ``share_att_key`` runs both query_proj and key_proj on them,
      otherwise pos_key_proj for c2p and pos_query_proj for p2c: 2k x d x d each (once per instance);
    - c2p: Q (n x d_h) x pos_K^T (d_h x 2k) per head -> n x 2k x d; then gather and a 1/scale per score (h n^2);
    - p2c: K x pos_Q^T, the same sizes;
    - the content scores' scale divides K (n x d) instead of the n^2 scores that :func:`attention_core_macs` counts:
      ``n d - h n^2`` corrects it. Gathers, clamps and score sums are free (like mask adds).
    """
    n = _num(n)
    d, h, span = int(d), int(heads), int(rel_positions)
    terms = int(bool(c2p)) + int(bool(p2c))
    projections = 2 if share_att_key else terms
    return _out(projections * span * d * d + terms * (n * span * d + h * n * n) + n * d - h * n * n)


def feed_forward_macs(n, d, d_ff, glu=False):
    """In (d -> d_ff, or d -> 2 d_ff for a GLU) and out (d_ff -> d) projections; the gate product is free."""
    return _out(_num(n) * int(d) * int(d_ff) * (3 if glu else 2))


def conv1d_macs(n, channels_in, channels_out, kernel, groups=1):
    """``nn.Conv1d`` with 'same' padding on n positions: n x out x (in / groups) x kernel."""
    return _out(_num(n) * int(channels_out) * (int(channels_in) // int(groups)) * int(kernel))


def layer_shape_macs(n, layer: LayerShape):
    """MACs of one layer over ``n`` tokens: Q, K, V, output projections + attention core (+ DeBERTa terms) + FFN +
    LayerNorms. A plain global layer equals :func:`..primitives.layer_macs`."""
    n = _num(n)
    d = layer.d
    macs = (
        _num(linear_macs(n, d, 4 * d))
        + _num(attention_core_macs(attention_pairs(n, layer.window), layer.heads, d))
        + _num(feed_forward_macs(n, d, layer.d_ff, layer.glu))
        + _num(layer_norm_macs(n * d * layer.norms))
    )
    if layer.rel_positions:
        macs = macs + _num(disentangled_extra_macs(n, d, layer.heads, layer.rel_positions, layer.c2p, layer.p2c,
                                                   layer.share_att_key))
    return _out(macs)


def exit_shape_macs(head: ExitShape):
    """One exit: pooler dense (d^2), head LayerNorm (2 d), classifier (d x labels)."""
    return exit_macs(head.d, head.labels, head.pooler) + (2 * head.d if head.norm else 0)


def encoder_shape_macs(lengths, shape: EncoderShape, num_layers=None, num_exits=1):
    """MACs per instance: embedding block + the first ``num_layers`` layers (default all) + extras + exits.

    ``num_layers`` and ``num_exits`` are scalars or arrays aligned with ``lengths``.
    """
    n = _num(lengths)
    k = _num(shape.num_layers if num_layers is None else num_layers)
    if np.any(n < 0) or np.any(k < 1) or np.any(k > shape.num_layers) or np.any(_num(num_exits) < 0):
        raise ValueError(f"need lengths >= 0, num_layers in [1, {shape.num_layers}] and num_exits >= 0")
    batch_shape = np.broadcast_shapes(np.shape(n), np.shape(k))
    macs = _num(layer_norm_macs(n * shape.embedding_norm))
    if shape.embedding_proj is not None:
        macs = macs + _num(linear_macs(n, *shape.embedding_proj))
    if shape.shared_norm_rows:
        macs = macs + layer_norm_macs(shape.shared_norm_rows * shape.layers[0].d)
    per_layer = np.stack([np.broadcast_to(_num(layer_shape_macs(n, layer)), batch_shape) for layer in shape.layers])
    ran = np.arange(1, shape.num_layers + 1).reshape((-1,) + (1,) * len(batch_shape)) <= k
    macs = macs + (per_layer * ran).sum(axis=0)
    if shape.conv is not None:
        kernel, groups = shape.conv
        d = shape.layers[0].d
        macs = macs + _num(conv1d_macs(n, d, d, kernel, groups)) + _num(layer_norm_macs(n * d))
    if shape.final_norm:  # read by each exit evaluated (one for a single-exit model)
        macs = macs + _num(num_exits) * _num(layer_norm_macs(n * shape.hidden))
    return _out(macs + _num(num_exits) * exit_shape_macs(shape.exit))
