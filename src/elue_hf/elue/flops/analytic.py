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

Inside ``flops`` imports go one way: :mod:`.primitives` (the MACs maths) and :mod:`.hook_call` (what a hooked rule
sees) import nothing from the package; :mod:`.architectures` (the family shapes, their registry and the BERT config
reader :func:`dims_from_config`) builds on them; this module (the ElasticBERT / BERT formulas and the dispatch on
``model_type``), :mod:`.hooks` and :mod:`.module_spec` build on all of those. The primitives and ``ModelDims`` are
re-exported here.
"""

from __future__ import annotations

import numpy as np

from . import primitives as _primitives
from .architectures import (
    EncoderShape,
    ModelDims,
    dims_from_config,
    encoder_shape,
    encoder_shape_macs,
    needs_encoder_shape,
)
from .primitives import *  # noqa: F401,F403  (the MACs maths, re-exported)
from .primitives import _num, encoder_classifier_macs, macs_to_mflops

__all__ = [
    *_primitives.__all__,
    "ModelDims",
    "dims_from_config",
    "elasticbert_flops",
    "bert_classifier_flops",
    "model_flops",
    "shape_flops",
    "needs_encoder_shape",
]


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
    k, exits = _layers_and_exits(shape, exit_layer, mode)
    return macs_to_mflops(encoder_shape_macs(length, shape, k, exits))


def model_flops(config, length, exit_layer=None, mode: str = "static", active_tokens=None, num_labels=None):
    """Dispatch on ``config.model_type``: ElasticBERT rule for "elasticbert", the family rule of
    :mod:`.architectures` for DistilBERT / ALBERT / DeBERTa-v2 / ModernBERT (or an ``EncoderShape``), the BERT
    classifier rule otherwise."""
    if isinstance(config, EncoderShape) or needs_encoder_shape(config):
        if active_tokens is not None:
            raise ValueError("token-level exit (active_tokens) has an ELUE rule for BERT-layer models only")
        shape = config if isinstance(config, EncoderShape) else encoder_shape(config, num_labels)
        return shape_flops(shape, length, exit_layer, mode)
    if getattr(config, "model_type", None) == "elasticbert" or isinstance(config, ModelDims):
        return elasticbert_flops(config, length, exit_layer, mode, active_tokens, num_labels)
    return bert_classifier_flops(config, length, exit_layer, active_tokens, num_labels)
