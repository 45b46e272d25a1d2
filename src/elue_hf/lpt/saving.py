"""Save an LPT adapter together with its tokenizer (``AutoPeftModelForSequenceClassification`` loads both)."""

from __future__ import annotations

import os
from pathlib import Path

from ..tokenizer_io import load_tokenizer, save_tokenizer

__all__ = ["save_lpt_adapter"]


def save_lpt_adapter(peft_model, save_directory: str | os.PathLike, tokenizer=None, **kwargs) -> Path:
    """``peft_model.save_pretrained(save_directory, **kwargs)`` plus the tokenizer of the base model.

    ``tokenizer`` (object, folder or Hub id) defaults to the one of the adapter's ``base_model_name_or_path``; with
    none found the adapter is saved without one and a warning says so. The saved ``adapter_config.json`` names
    ``import elue_hf`` in its ``peft_type``, so loading it without elue-hf fails with that hint.
    """
    configs = getattr(peft_model, "peft_config", None)
    if not configs:
        raise ValueError(f"save_lpt_adapter needs a PEFT model (get_peft_model(model, LPTConfig(...))), got "
                         f"{type(peft_model).__name__}")
    out = Path(save_directory)
    peft_model.save_pretrained(str(out), **kwargs)
    active = getattr(peft_model, "active_adapter", None)
    config = configs.get(active) if isinstance(active, str) else next(iter(configs.values()))
    source = getattr(config, "base_model_name_or_path", None)
    save_tokenizer(load_tokenizer(tokenizer, source), out, "LPT adapter")
    return out
