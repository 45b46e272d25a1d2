"""ModernBERT: pre-LN layers (the first has no attention LayerNorm), fused Wqkv, rotary positions, GLU feed-forward
(Wi: d -> 2 d_ff, Wo: d_ff -> d), alternating global / local attention, a final LayerNorm and a head
dense d x d + LayerNorm + classifier.

ELUE rule for local layers: the **true window**. transformers 5.23 masks keys with |i - j| > ``config.sliding_window``
(= local_attention // 2), so a local layer scores ``attention_pairs(n, sliding_window)`` pairs, not n^2 (eager and
SDPA kernels compute the masked scores too; ELUE counts the attention the model defines, as it counts true lengths
rather than padding). Rotary embeddings, the GLU gate product and mean pooling are element-wise / sums: free."""

from __future__ import annotations

from ._common import attention_leaf_rule, config_int, import_class, labels_of
from .registry import Architecture, UnsupportedArchitecture
from .shape import EncoderShape, ExitShape, LayerShape

__all__ = ["ARCHITECTURE"]


def _shape(config, num_labels=None) -> EncoderShape:
    d = config_int(config, "hidden_size")
    d_ff = config_int(config, "intermediate_size")
    heads = config_int(config, "num_attention_heads")
    num_layers = config_int(config, "num_hidden_layers")
    kinds = list(getattr(config, "layer_types", None) or [])
    if len(kinds) != num_layers or set(kinds) - {"sliding_attention", "full_attention"}:
        raise UnsupportedArchitecture(f"ModernBERT layer_types {kinds!r} must list {num_layers} of "
                                      "'sliding_attention' / 'full_attention'")
    window = int(config.sliding_window)
    layers = tuple(
        LayerShape(d, d_ff, heads, glu=True, window=window if kind == "sliding_attention" else None,
                   norms=1 if i == 0 else 2)
        for i, kind in enumerate(kinds)
    )
    return EncoderShape("modernbert", embedding_norm=d, layers=layers, final_norm=True,
                        exit=ExitShape(d, labels_of(config, num_labels), pooler=True, norm=True),
                        exit_layers=(num_layers,))


def _window(module):
    return None if module.sliding_window is None else int(module.config.sliding_window)


def _rules() -> dict:
    klass = import_class("modernbert.modeling_modernbert", "ModernBertAttention")
    rule = attention_leaf_rule(heads=lambda m: m.config.num_attention_heads,
                               inner=lambda m: m.head_dim * m.config.num_attention_heads, window=_window)
    return {} if klass is None else {klass: rule}


ARCHITECTURE = Architecture("modernbert", ("modernbert",), _shape, _rules)
