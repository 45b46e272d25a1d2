"""DeBERTa-v2 / v3: disentangled attention with relative positions (transformers 5.23 ``DisentangledSelfAttention``).

What runs per instance (k = att_span = position_buckets if > 0, else max_relative_positions, else
max_position_embeddings; 2k relative-embedding rows):

- embeddings: lookups free; ``embed_proj`` E -> d per token when embedding_size != hidden_size; LayerNorm over d;
- once per forward: the encoder LayerNorm over the 2k x d relative embeddings when ``norm_rel_ebd`` has
  ``layer_norm`` (batch-independent: every instance pays it, as at batch size 1);
- per layer: Q, K, V (3 n d^2); content scores QK^T (n^2 d) with the 1/scale applied to K (n d); softmax (h n^2);
  A.V (n^2 d); relative terms (:func:`.shape.disentangled_extra_macs`): the 2k rows projected by key_proj / query_proj
  (share_att_key: both) or pos_key_proj (c2p) / pos_query_proj (p2c), 2k d^2 each; c2p and p2c scores n x 2k x d each,
  a 1/scale per gathered score (h n^2 each); then output dense, FFN and two LayerNorms as in BERT;
- ConvLayer (conv_kernel_size > 0) after the first layer: Conv1d n d^2 k / groups + its LayerNorm;
- head: ContextPooler dense d x d on [CLS] + classifier.
"""

from __future__ import annotations

import numpy as np

from ..hook_call import HookCall
from ..primitives import layer_norm_macs, linear_macs
from ._common import config_int, import_class, labels_of
from .registry import Architecture, UnsupportedArchitecture
from .shape import EncoderShape, ExitShape, LayerShape, attention_core_macs, attention_pairs, disentangled_extra_macs

__all__ = ["ARCHITECTURE", "att_span"]


def att_span(config) -> int:
    """k: relative positions on each side (2k embedding rows)."""
    buckets = int(getattr(config, "position_buckets", -1) or -1)
    if buckets > 0:
        return buckets
    max_rel = int(getattr(config, "max_relative_positions", -1) or -1)
    return max_rel if max_rel >= 1 else config_int(config, "max_position_embeddings")


def _pos_types(config) -> set[str]:
    raw = getattr(config, "pos_att_type", None) or []
    return {t.strip() for t in (raw.lower().split("|") if isinstance(raw, str) else raw)}


def _shape(config, num_labels=None) -> EncoderShape:
    d = config_int(config, "hidden_size")
    heads = config_int(config, "num_attention_heads")
    head_size = getattr(config, "attention_head_size", None)
    if head_size is not None and int(head_size) * heads != d:
        raise UnsupportedArchitecture("DeBERTa-v2 with attention_head_size x heads != hidden_size is not supported")
    if int(getattr(config, "pooler_hidden_size", None) or d) != d:
        raise UnsupportedArchitecture("DeBERTa-v2 with pooler_hidden_size != hidden_size is not supported")
    emb = int(getattr(config, "embedding_size", None) or d)
    relative = bool(getattr(config, "relative_attention", False))
    types = _pos_types(config) if relative else set()
    rows = 2 * att_span(config) if relative else 0
    layer = LayerShape(d, config_int(config, "intermediate_size"), heads, rel_positions=rows, c2p="c2p" in types,
                       p2c="p2c" in types, share_att_key=relative and bool(getattr(config, "share_att_key", False)))
    norm_rel = [x.strip() for x in str(getattr(config, "norm_rel_ebd", "none")).lower().split("|")]
    kernel = int(getattr(config, "conv_kernel_size", 0) or 0)
    num_layers = config_int(config, "num_hidden_layers")
    return EncoderShape(
        "deberta-v2", embedding_norm=d, embedding_proj=(emb, d) if emb != d else None, layers=(layer,) * num_layers,
        shared_norm_rows=rows if relative and "layer_norm" in norm_rel else 0,
        conv=(kernel, int(getattr(config, "conv_groups", 1) or 1)) if kernel > 0 else None,
        exit=ExitShape(d, labels_of(config, num_labels)), exit_layers=(num_layers,),
    )


def _attention_rule(call: HookCall):
    """DisentangledSelfAttention as one leaf, read from the module and the relative embeddings it receives."""
    mod = call.module
    n = call.tokens(call.input())
    d, inner, h = mod.query_proj.in_features, mod.all_head_size, mod.num_attention_heads
    macs = 3 * np.asarray(linear_macs(n, d, inner)) + attention_core_macs(attention_pairs(n), h, inner)
    rel = call.kwargs.get("rel_embeddings")
    if rel is None and len(call.args) >= 6:
        rel = call.args[5]
    if getattr(mod, "relative_attention", False) and rel is not None:
        rows = min(2 * int(mod.pos_ebd_size), int(rel.shape[-2]))
        types = set(mod.pos_att_type)
        macs = macs + disentangled_extra_macs(n, d, h, rows, "c2p" in types, "p2c" in types, mod.share_att_key)
    return macs


def _conv_rule(call: HookCall):
    """DeBERTa's ConvLayer as one leaf: Conv1d over the row's true length + its LayerNorm."""
    mod = call.module
    n = call.tokens(call.input())
    conv = mod.conv
    macs = n * conv.out_channels * (conv.in_channels // conv.groups) * int(conv.kernel_size[0])
    return macs + np.asarray(layer_norm_macs(n * conv.out_channels))


def _rules() -> dict:
    path = "deberta_v2.modeling_deberta_v2"
    pairs = ((import_class(path, "DisentangledSelfAttention"), _attention_rule),
             (import_class(path, "ConvLayer"), _conv_rule))
    return {klass: rule for klass, rule in pairs if klass is not None}


ARCHITECTURE = Architecture("deberta-v2", ("deberta-v2",), _shape, _rules)
