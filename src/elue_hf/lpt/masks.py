"""Attention-mask helpers for a prompt prepended to an encoder's or a decoder's sequence (pure functions)."""

from __future__ import annotations

import torch

__all__ = ["extend_attention_mask", "extend_causal_mask", "token_keep_mask"]


def token_keep_mask(attention_mask: torch.Tensor | None, batch_size: int, seq_len: int, device=None) -> torch.Tensor:
    """(b, n) bool: which key positions are real tokens, read from any mask form the encoder receives.

    Accepts ``None`` (no padding), a 2D 0/1 mask, or a 4D (b, 1, q, n) mask that is boolean (``True`` = attend, SDPA)
    or additive float (``0`` = attend, eager).
    """
    if attention_mask is None:
        return torch.ones(batch_size, seq_len, dtype=torch.bool, device=device)
    if attention_mask.dim() == 2:
        return attention_mask.bool()
    if attention_mask.dim() != 4:
        raise ValueError(f"Expected a 2D or 4D attention mask, got shape {tuple(attention_mask.shape)}.")
    keep = attention_mask if attention_mask.dtype == torch.bool else attention_mask == 0
    keep = keep.any(dim=-2).any(dim=1)  # a key is a real token if some query may attend to it
    return keep.expand(batch_size, seq_len)


def extend_attention_mask(attention_mask: torch.Tensor | None, num_prompt_tokens: int) -> torch.Tensor | None:
    """Extend a 4D encoder mask for ``num_prompt_tokens`` prompt vectors prepended to the sequence.

    ``None`` stays ``None``. Boolean and additive float masks (b, h, q, n) get ``l`` leading key columns that attend
    (``True`` / ``0.0``); when the mask is square (q == n > 1) ``l`` leading query rows are added too, each allowing the
    prompt and every real token (the original's broadcast (b, 1, 1, n) mask made all query rows identical).
    """
    if attention_mask is None:
        return None
    extended, keep_value, _ = _prepend_prompt_keys(attention_mask, num_prompt_tokens, "encoder's", "(b, 1, q, n)")
    b, h, q, n = attention_mask.shape
    is_bool = attention_mask.dtype == torch.bool
    if q == 1:
        return extended
    if q != n:
        raise ValueError(f"Cannot extend an attention mask with {q} query rows and {n} key columns.")
    key_row = attention_mask.any(dim=-2, keepdim=True) if is_bool else attention_mask.amax(dim=-2, keepdim=True)
    prompt_cols = attention_mask.new_full((b, h, 1, num_prompt_tokens), keep_value)
    prompt_rows = torch.cat([prompt_cols, key_row], dim=-1).expand(b, h, num_prompt_tokens, num_prompt_tokens + n)
    return torch.cat([prompt_rows, extended], dim=-2)


def extend_causal_mask(mask: torch.Tensor | None, num_tokens: int, prompt_rows: bool) -> torch.Tensor | None:
    """Extend a decoder's 4D attention mask (b, h, q, K) for ``num_tokens`` prompt keys prepended to the key axis.

    Every query row may attend to the prompt keys. With ``prompt_rows`` (the prompt is in this call's query) ``l``
    leading query rows are added, row ``j`` seeing prompt keys ``0..j`` and no token. Boolean (``True`` = attend, SDPA)
    and additive float (``0`` = attend, eager) masks keep their form; ``None`` stays ``None`` (SDPA's ``is_causal`` over
    the concatenated sequence is exactly this mask).
    """
    if mask is None:
        return None
    extended, keep, drop = _prepend_prompt_keys(mask, num_tokens, "decoder's", "(b, h, q, K)")
    if not prompt_rows:
        return extended
    b, h, _, keys = mask.shape
    causal = torch.ones(num_tokens, num_tokens, dtype=torch.bool, device=mask.device).tril()
    prompt_part = torch.where(causal, keep, drop).to(mask.dtype).expand(b, h, num_tokens, num_tokens)
    rows = torch.cat([prompt_part, mask.new_full((b, h, num_tokens, keys), drop)], dim=-1)
    return torch.cat([rows, extended], dim=-2)


def _prepend_prompt_keys(mask: torch.Tensor, num_tokens: int, owner: str, shape: str):
    """(mask with ``num_tokens`` leading key columns that attend, attend value, masked value) of a 4D mask."""
    if not isinstance(mask, torch.Tensor) or mask.dim() != 4:
        raise ValueError(
            f"LPT needs the {owner} 4D attention mask (None, bool or additive float, shape {shape}); got "
            f"{type(mask).__name__} {tuple(getattr(mask, 'shape', ()))}. Use attn_implementation 'sdpa' or 'eager'."
        )
    is_bool = mask.dtype == torch.bool
    keep = True if is_bool else 0.0
    drop = False if is_bool else torch.finfo(mask.dtype).min
    b, h, q, _ = mask.shape
    return torch.cat([mask.new_full((b, h, q, num_tokens), keep), mask], dim=-1), keep, drop
