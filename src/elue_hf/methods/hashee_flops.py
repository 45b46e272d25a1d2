"""FLOPs of token-level early exit (HashEE) models under ELUE's rules (docs/hashee.md, "FLOPs"; docs/elue.md).

Everything maps HashEE's per-layer active-token counts onto :mod:`elue_hf.elue.flops` (no formula of its own for
encoder classifiers): a layer with m of n tokens active costs ``layer_macs(n, d, d_ff, h, m)``. Also:

- the rule that lets :class:`elue_hf.elue.flops.ElueFlopsCounter` count the skip-mode attention
  (:class:`~elue_hf.hashee.layer.ActiveTokenAttention`) at its true (m, n) shapes; the other modules of a skipping
  layer (output projection, LayerNorms, FFN) run on the packed active rows, so the counter sees the shrinking shapes;
- the ELUE ``modules`` column with ``(m,n,d)`` layer entries;
- encoder / decoder / total FLOPs of a seq2seq model whose encoder runs HashEE (decoder unchanged).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..elue.flops.analytic import (
    attention_macs,
    dims_from_config,
    layer_macs,
    linear_macs,
    macs_to_mflops,
    model_flops,
)
from ..elue.flops.hooks import HookCall, default_rules, register_rule
from ..elue.flops.module_spec import encoder_modules, module_spec_from_config
from ..hashee.auto import base_model_type
from ..hashee.layer import ActiveTokenAttention
from ..hashee.model import get_hashee

__all__ = [
    "active_token_counts",
    "last_active_counts",
    "unpadded_lengths",
    "classifier_flops",
    "modules_column",
    "module_spec",
    "Seq2SeqDims",
    "seq2seq_dims",
    "seq2seq_flops",
]


# --------------------------------------------------------------------------------------------------------------------
# Counter rule for the skip-mode attention
# --------------------------------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def _is_elue_leaf(module_type: type) -> bool:
    rules = default_rules()
    return any(klass in rules for klass in module_type.__mro__)


def _active_attention_rule(call: HookCall) -> np.ndarray:
    """Per-row MACs of :class:`ActiveTokenAttention`: scale, QK^T, softmax, A.V with m queries over n keys, plus the
    Q (m rows) and K, V (n rows) projections when the architecture's attention module is itself an ELUE leaf (BERT
    family); otherwise (BART, T5) those Linears are hooked and counted on their own."""
    parts, _, _, step, plan = call.args[:5]
    m = step.counts.detach().cpu().numpy().astype(np.int64)
    n = plan.counts[0].detach().cpu().numpy().astype(np.int64)  # every real token is active at layer 1
    inner = parts.heads * parts.head_dim
    macs = 2 * n * m * (parts.heads + inner)
    if _is_elue_leaf(type(parts.module)):
        macs = macs + (2 * n + m) * parts.query.in_features * inner
    return macs


register_rule(ActiveTokenAttention, _active_attention_rule)


# --------------------------------------------------------------------------------------------------------------------
# Active tokens and lengths
# --------------------------------------------------------------------------------------------------------------------


def unpadded_lengths(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> np.ndarray:
    """Real (unpadded) token count of each row of a padded batch: the ``n`` of the FLOPs rules. (To tokenize ELUE
    examples and count their tokens, see :func:`elue_hf.elue.data.token_lengths`.)"""
    if attention_mask is None:
        return np.full(input_ids.shape[0], input_ids.shape[1], dtype=np.int64)
    return attention_mask.detach().to("cpu").long().sum(-1).numpy()


def active_token_counts(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> np.ndarray:
    """(batch, L) tokens that layer l updates, from the table (no forward). For ``random-incons`` this draws new
    exits: use :func:`last_active_counts` after the forward whose cost you report."""
    plan = get_hashee(model).make_plan(input_ids, attention_mask)
    return plan.counts.T.detach().cpu().numpy()


def last_active_counts(model) -> np.ndarray:
    """(batch, L) active tokens per layer of the model's last encoder forward."""
    return get_hashee(model).last_active_counts().detach().cpu().numpy()


# --------------------------------------------------------------------------------------------------------------------
# Encoder classifiers (BERT, RoBERTa, static ElasticBERT)
# --------------------------------------------------------------------------------------------------------------------


def classifier_flops(config, lengths, active_counts=None, num_labels: int | None = None) -> np.ndarray:
    """MFLOPs per instance of a HashEE classifier (``active_counts`` (N, L)) or of the plain model (None)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    active = None if active_counts is None else np.asarray(active_counts, dtype=np.int64)
    return np.atleast_1d(model_flops(config, lengths, active_tokens=active, num_labels=num_labels))


def module_spec(config, num_labels: int | None = None) -> dict:
    """The declarative ELUE module spec (``emb``, ``layer_1..L``, the exit) of a classifier config."""
    return module_spec_from_config(config, num_labels)


def modules_column(config, lengths, active_counts, num_labels: int | None = None) -> list[str]:
    """ELUE ``modules`` strings, one per instance: shrinking layers written as ``(m,n,d)``."""
    dims = dims_from_config(config, num_labels)
    lengths = np.asarray(lengths, dtype=np.int64)
    active = np.asarray(active_counts, dtype=np.int64)
    if active.shape != (len(lengths), dims.num_layers):
        raise ValueError(f"active_counts must have shape ({len(lengths)}, {dims.num_layers}), got {active.shape}")
    return [encoder_modules(dims, int(n), active_tokens=row.tolist()) for n, row in zip(lengths, active)]


# --------------------------------------------------------------------------------------------------------------------
# Seq2seq: encoder (HashEE), decoder (unchanged), total
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seq2SeqDims:
    d: int
    enc_ff: int
    enc_heads: int
    enc_layers: int
    dec_ff: int
    dec_heads: int
    dec_layers: int
    vocab: int


def seq2seq_dims(config) -> Seq2SeqDims:
    """Dimensions of a BART, T5 or ``EncoderDecoderModel`` (BERT/BERT) config."""
    if base_model_type(config) == "encoder-decoder":  # also a HashEE model's "hashee_encoder-decoder"
        enc, dec = config.encoder, config.decoder
        if enc.hidden_size != dec.hidden_size:
            raise ValueError("encoder and decoder widths differ; the seq2seq FLOPs formula assumes one width")
        return Seq2SeqDims(
            enc.hidden_size, enc.intermediate_size, enc.num_attention_heads, enc.num_hidden_layers,
            dec.intermediate_size, dec.num_attention_heads, dec.num_hidden_layers, dec.vocab_size,
        )  # fmt: skip
    if hasattr(config, "encoder_ffn_dim"):  # BART family
        return Seq2SeqDims(
            config.d_model, config.encoder_ffn_dim, config.encoder_attention_heads, config.encoder_layers,
            config.decoder_ffn_dim, config.decoder_attention_heads, config.decoder_layers, config.vocab_size,
        )  # fmt: skip
    if hasattr(config, "d_ff") and hasattr(config, "num_decoder_layers"):  # T5 family
        return Seq2SeqDims(
            config.d_model, config.d_ff, config.num_heads, config.num_layers,
            config.d_ff, config.num_heads, config.num_decoder_layers, config.vocab_size,
        )  # fmt: skip
    raise ValueError(f"Unsupported seq2seq config {type(config).__name__}: expected BART, T5 or EncoderDecoderConfig")


def _decoder_macs(dims: Seq2SeqDims, source_length: int, target_length: int) -> int:
    """Cached greedy decoding of ``target_length`` tokens over ``source_length`` encoder states.

    Per step t (t keys in self-attention) and layer: self-attention with one query (Q, K, V of one token, t keys),
    W_O, cross-attention (Q of one token; K, V of the n encoder states projected once per sequence), W_O, FFN,
    three LayerNorms; then the LM head (d x V).
    """
    d, n = dims.d, int(source_length)
    total = 0
    for t in range(1, int(target_length) + 1):
        self_attention = attention_macs(t, d, dims.dec_heads, 1) - 2 * (t - 1) * d * d  # K/V of past tokens cached
        cross = d * d + 2 * n * (dims.dec_heads + d)
        per_layer = self_attention + d * d + cross + d * d + 2 * d * dims.dec_ff + 3 * 2 * d
        total += dims.dec_layers * per_layer + linear_macs(1, d, dims.vocab)
    return int(total + dims.dec_layers * linear_macs(n, d, 2 * d))  # cross-attention K, V once


def seq2seq_flops(config, lengths, active_counts, target_lengths) -> dict[str, np.ndarray]:
    """Per-instance MFLOPs of a seq2seq model with a HashEE encoder.

    Returns ``encoder`` / ``encoder_full`` (HashEE vs all tokens active), ``decoder`` (unchanged by HashEE) and
    ``total`` / ``total_full``. Encoder layers follow docs/hashee.md, "FLOPs" (one embedding/final LayerNorm added).
    """
    dims = seq2seq_dims(config)
    lengths = np.asarray(lengths, dtype=np.int64)
    active = np.asarray(active_counts, dtype=np.int64)
    targets = np.broadcast_to(np.asarray(target_lengths, dtype=np.int64), lengths.shape)
    if active.shape != (len(lengths), dims.enc_layers):
        raise ValueError(f"active_counts must have shape ({len(lengths)}, {dims.enc_layers}), got {active.shape}")

    def encoder(m):
        layers = np.asarray(layer_macs(lengths[:, None], dims.d, dims.enc_ff, dims.enc_heads, m)).sum(-1)
        return macs_to_mflops(layers + 2 * lengths * dims.d)

    full = np.repeat(lengths[:, None], dims.enc_layers, axis=1)
    decoder = macs_to_mflops(np.array([_decoder_macs(dims, n, t) for n, t in zip(lengths, targets)]))
    enc, enc_full = np.atleast_1d(encoder(active)), np.atleast_1d(encoder(full))
    decoder = np.atleast_1d(decoder)
    return {
        "encoder": enc,
        "encoder_full": enc_full,
        "decoder": decoder,
        "total": enc + decoder,
        "total_full": enc_full + decoder,
    }
