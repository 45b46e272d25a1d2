"""An LPT adapter named by a submission: its ``adapter_config.json`` is read as data and checked, its base model
(``base_model_name_or_path``, a Hub id) is resolved and loaded like any named model, and the adapter weights come
from ``adapter_model.safetensors`` only (PEFT never falls back to a pickle when that file is present)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..validators import require
from .request import VerifyError, model_reference

__all__ = ["ADAPTER_CONFIG", "ADAPTER_WEIGHTS", "is_adapter_folder", "read_adapter_config", "load_lpt_classifier"]

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"


def is_adapter_folder(folder: Path) -> bool:
    return (Path(folder) / ADAPTER_CONFIG).is_file()


def read_adapter_config(folder: Path) -> dict:
    """The adapter's settings; :class:`VerifyError` unless it is an LPT classifier adapter with safetensors weights."""
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VerifyError(f"{ADAPTER_CONFIG} cannot be read: {err}") from None
    require(isinstance(config, dict), f"{ADAPTER_CONFIG} is not a JSON object", VerifyError)
    kind = str(config.get("peft_type", ""))
    require(kind == "LPT", f"adapters of type {kind[:40]!r} cannot be re-run; known: LPT", VerifyError)
    require(config.get("task_type") == "SEQ_CLS" and config.get("head_mode", "cls") == "cls",
            "only LPT adapters with a classifier head (task_type 'SEQ_CLS', head_mode 'cls') can be re-run, got "
            f"task_type {config.get('task_type')!r}, head_mode {config.get('head_mode')!r}", VerifyError)
    require((folder / ADAPTER_WEIGHTS).is_file(), f"{folder.name} holds no {ADAPTER_WEIGHTS}: adapters are loaded "
            "from safetensors only", VerifyError)
    return config


def load_lpt_classifier(folder: Path, resolve: Callable, load_base: Callable, num_labels: int):
    """The base model (``resolve(id, revision)`` -> folder, ``load_base(folder, num_labels)`` -> model) with the
    adapter of ``folder`` on top, in eval mode."""
    config = read_adapter_config(folder)
    base_id, revision = model_reference(config.get("base_model_name_or_path"), config.get("revision"),
                                        "the adapter's base model")
    try:
        base = load_base(resolve(base_id, revision), num_labels)
    except VerifyError as err:
        raise VerifyError(f"the adapter's base model {base_id}: {err}") from None
    from peft import PeftModel

    import elue_hf  # noqa: F401  (registers LPT with PEFT)

    return PeftModel.from_pretrained(base, str(folder), is_trainable=False).eval()
