"""Tiny random configs of the decoder families and DeBERTa-v2, padded batches, and hand-written LPT references.

The references do not use the tuner's hooks or mask helpers: they run the backbone's layers one by one with masks and
positions built here from first principles (causal + padding + prompt), which is what LPT promises to compute.
"""

from __future__ import annotations

import torch
from transformers import (
    DebertaV2Config,
    Gemma2Config,
    Gemma3TextConfig,
    GemmaConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    Qwen2Config,
    Qwen3Config,
)
from transformers.models.deberta_v2.modeling_deberta_v2 import build_relative_position

import elue_hf.lpt  # noqa: F401  (registers LPT with PEFT)

VOCAB = 60
_ROTARY = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=None,
    tie_word_embeddings=False,
)


def decoder_config(family: str, attn: str = "sdpa", **overrides):
    """A 4-layer, d = 32 config of ``family`` (llama, qwen2, qwen3, mistral, gemma, gemma2, gemma3_text, gpt2)."""
    if family == "gpt2":
        fields = dict(vocab_size=VOCAB, n_embd=32, n_layer=4, n_head=4, n_positions=64, bos_token_id=1,
                      eos_token_id=None, pad_token_id=0, num_labels=2)
        config = GPT2Config(**{**fields, **overrides})
    else:
        make = {
            "llama": LlamaConfig,
            "qwen2": Qwen2Config,
            "qwen3": Qwen3Config,
            "mistral": MistralConfig,
            "gemma": GemmaConfig,
            "gemma2": Gemma2Config,
            "gemma3_text": Gemma3TextConfig,
        }[family]
        extra = {"head_dim": 8} if family in ("qwen3", "gemma", "gemma2", "gemma3_text") else {}
        if family in ("gemma2", "gemma3_text"):
            extra["sliding_window"] = 32
        config = make(**{**_ROTARY, **extra, "num_labels": 2, **overrides})
    config._attn_implementation = "eager" if family == "gemma2" else attn  # Gemma2 has no SDPA path
    return config


DECODER_FAMILIES = ("llama", "qwen2", "qwen3", "mistral", "gemma", "gemma2", "gemma3_text", "gpt2")

#: Further Llama-style families LPT lists as supported (configs from ``AutoConfig.for_model``).
MORE_DECODER_FAMILIES = (
    "apertus", "arcee", "bitnet", "cohere", "cohere2", "doge", "ernie4_5", "exaone4", "glm", "glm4", "granite",
    "helium", "hunyuan_v1_dense", "ministral", "mixtral", "nemotron", "olmo", "olmo2", "olmo3", "phi3", "qwen2_moe",
    "qwen3_moe", "seed_oss", "smollm3", "stablelm", "starcoder2",
)  # fmt: skip


def more_decoder_config(model_type: str, attn: str = "sdpa"):
    """A tiny config of one of :data:`MORE_DECODER_FAMILIES` (4 layers, d = 32, head size 8)."""
    from transformers import AutoConfig

    config = AutoConfig.for_model(model_type, **{**_ROTARY, "head_dim": 8})
    config._attn_implementation = attn
    return config


def deberta_config(attn: str = "eager", **overrides) -> DebertaV2Config:
    fields = dict(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, relative_attention=True, position_buckets=8, max_relative_positions=16,
        pos_att_type=["p2c", "c2p"], norm_rel_ebd="layer_norm", share_att_key=True, num_labels=2, pad_token_id=0,
        position_biased_input=False,
    )
    config = DebertaV2Config(**{**fields, **overrides})
    config._attn_implementation = attn
    return config


def padded(lengths, seq_len, side="right", seed=0, first_id=None):
    """(ids, mask): random ids (>= 3) with ``lengths`` real tokens per row, padded with 0 on ``side``.

    Row ``r``'s real tokens are the same whichever side is padded.
    """
    g = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), seq_len, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for r, n in enumerate(lengths):
        tokens = torch.randint(3, VOCAB, (n,), generator=g)
        if first_id is not None:
            tokens[0] = first_id
        span = slice(0, n) if side == "right" else slice(seq_len - n, seq_len)
        ids[r, span], mask[r, span] = tokens, 1
    return ids, mask


def positions_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Position ids counting real tokens only (what ``generate`` passes), so both padding sides agree."""
    return (mask.long().cumsum(-1) - 1).masked_fill(mask == 0, 0)


def real_rows(x: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
    """Per row, the entries of ``x`` (b, n, ...) at the real tokens, in order."""
    return [x[r][mask[r].bool()] for r in range(len(x))]


# -- hand references ---------------------------------------------------------------------------------------------------


def _npg(generator, h: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    rows = torch.arange(h.shape[0])
    flat = generator.proj_up(torch.relu(generator.proj_down(h[rows, source])))
    return flat.view(h.shape[0], generator.num_tokens, -1)


def _as_attention_mask(allowed: torch.Tensor, attn: str, dtype) -> torch.Tensor:
    if attn == "sdpa":
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


def causal_allowed(keep: torch.Tensor, num_prompt: int, window: int | None = None) -> torch.Tensor:
    """(b, 1, l + n, l + n) bool: ``l`` prompt rows/keys in front of the tokens.

    Token ``i`` sees every prompt key and real tokens ``j <= i`` (within ``window``); prompt row ``a`` sees prompt keys
    ``<= a``; a padding row sees itself only (its output is never read).
    """
    b, n = keep.shape
    p = num_prompt
    i = torch.arange(n)
    tokens = (i[None, :] <= i[:, None]) & keep[:, None, :]
    if window is not None:
        tokens = tokens & (i[:, None] - i[None, :] < window)
    tokens = tokens | (torch.eye(n, dtype=torch.bool) & ~keep[:, :, None])
    allowed = torch.zeros(b, p + n, p + n, dtype=torch.bool)
    allowed[:, :p, :p] = torch.ones(p, p, dtype=torch.bool).tril()
    allowed[:, p:, :p] = True
    allowed[:, p:, p:] = tokens
    return allowed[:, None]


def reference_decoder_hidden(body, generator, ids, mask, position_ids, k: int, num_prompt: int, source):
    """The decoder body's final hidden states (b, n, d) with the prompt inserted by hand after ``k`` layers."""
    config = body.config
    attn = config._attn_implementation
    layers = body.h if hasattr(body, "h") else body.layers
    keep = mask.bool()
    b, n = ids.shape
    p = num_prompt
    rows = torch.arange(b)
    if hasattr(body, "wte"):
        h = body.wte(ids) + body.wpe(position_ids)
    else:
        h = body.embed_tokens(ids)
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or ["full_attention"] * len(layers)

    def run(i, h, allowed, pos):
        m = _as_attention_mask(allowed, attn, h.dtype)
        if hasattr(body, "h"):
            return layers[i](h, None, m)
        try:
            rope = body.rotary_emb(h, pos)
        except TypeError:  # Gemma3: one rotary embedding per layer type
            rope = body.rotary_emb(h, pos, layer_types[i])
        return layers[i](h, attention_mask=m, position_embeddings=rope, position_ids=pos)

    def allowed_for(i, prompt):
        w = window if layer_types[i] == "sliding_attention" else None
        full = causal_allowed(keep, p, w)
        return full if prompt else full[:, :, p:, p:]

    for i in range(k):
        h = run(i, h, allowed_for(i, False), position_ids)
    h = torch.cat([_npg(generator, h, source), h], dim=1)
    pos = torch.cat([position_ids[rows, source][:, None].expand(b, p), position_ids.expand(b, n)], dim=1)
    for i in range(k, len(layers)):
        h = run(i, h, allowed_for(i, True), pos)
    norm = body.ln_f if hasattr(body, "ln_f") else body.norm
    return norm(h[:, p:])


def reference_deberta_hidden(model, generator, ids, mask, k: int, num_prompt: int):
    """DeBERTa-v2 encoder output (b, n, d) with the prompt (from [CLS]) prepended by hand after ``k`` layers."""
    deberta = model.deberta
    encoder = deberta.encoder.get_base_layer() if hasattr(deberta.encoder, "get_base_layer") else deberta.encoder
    h = deberta.embeddings(input_ids=ids, mask=mask)
    keep = mask.bool()
    rel = encoder.get_rel_embedding()
    p = num_prompt

    def run(layer, h, key_ok):
        rp = build_relative_position(h, h, encoder.position_buckets, encoder.max_relative_positions)
        allowed = key_ok[:, None, None, :].expand(-1, 1, h.shape[1], -1)
        return layer(h, allowed, relative_pos=rp, rel_embeddings=rel)[0]

    for layer in encoder.layer[:k]:
        h = run(layer, h, keep)
    h = torch.cat([_npg(generator, h, torch.zeros(len(ids), dtype=torch.long)), h], dim=1)
    keep_big = torch.cat([torch.ones(len(ids), p, dtype=torch.bool), keep], dim=1)
    for layer in encoder.layer[k:]:
        h = run(layer, h, keep_big)
    return h[:, p:]
