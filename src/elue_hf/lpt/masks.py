"""Attention-mask helpers for a prompt prepended to an encoder's sequence (pure functions)."""

from __future__ import annotations

import torch

__all__ = ["extend_attention_mask", "token_keep_mask"]


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
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.dim() != 4:
        raise ValueError(
            "LPT needs the encoder's 4D attention mask (None, bool or additive float, shape (b, 1, q, n)); got "
            f"{type(attention_mask).__name__} {tuple(getattr(attention_mask, 'shape', ()))}."
        )
    b, h, q, n = attention_mask.shape
    is_bool = attention_mask.dtype == torch.bool
    keep_value = True if is_bool else 0.0
    columns = attention_mask.new_full((b, h, q, num_prompt_tokens), keep_value)
    extended = torch.cat([columns, attention_mask], dim=-1)
    if q == 1:
        return extended
    if q != n:
        raise ValueError(f"Cannot extend an attention mask with {q} query rows and {n} key columns.")
    key_row = attention_mask.any(dim=-2, keepdim=True) if is_bool else attention_mask.amax(dim=-2, keepdim=True)
    prompt_cols = attention_mask.new_full((b, h, 1, num_prompt_tokens), keep_value)
    prompt_rows = torch.cat([prompt_cols, key_row], dim=-1).expand(b, h, num_prompt_tokens, num_prompt_tokens + n)
    return torch.cat([prompt_rows, extended], dim=-2)
