"""The ONNX bundle's layout and its ``elue_deploy.json`` (pure Python: read by the torch-free runtime).

A bundle is a folder::

    elue_deploy.json        # this module's config: exits, pooling, head type, labels, defaults, piece files
    embeddings.onnx         # (input_ids, token_type_ids) -> hidden_states
    layer_<i>.onnx          # (hidden_states, attention_mask) -> hidden_states [, logits of the exit on layer i]
    tokenizer.json ...      # the model's tokenizer (tokenizers' format, plus transformers' files)
    config.json             # the model's transformers config, for reference
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["BUNDLE_CONFIG", "BUNDLE_FORMAT", "load_bundle_config", "write_bundle_config", "layer_file"]

BUNDLE_CONFIG = "elue_deploy.json"
BUNDLE_FORMAT = "elue-hf-onnx-exits/1"
_REQUIRED = ("format", "num_layers", "exit_layers", "pooling", "num_labels", "embeddings", "layers", "defaults")


def layer_file(i: int) -> str:
    """File name of 0-based layer ``i``'s piece."""
    return f"layer_{i}.onnx"


def write_bundle_config(directory, config: dict) -> Path:
    path = Path(directory) / BUNDLE_CONFIG
    path.write_text(json.dumps({"format": BUNDLE_FORMAT, **config}, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def load_bundle_config(directory) -> dict:
    """Read and check ``elue_deploy.json``; raise ``ValueError`` naming what is wrong and how to fix it."""
    path = Path(directory) / BUNDLE_CONFIG
    if not path.is_file():
        raise ValueError(
            f"{directory} is not an elue-hf ONNX bundle (no {BUNDLE_CONFIG}); write one with "
            "`elue-hf export MODEL OUTPUT_DIR`"
        )
    config = json.loads(path.read_text(encoding="utf-8"))
    missing = [key for key in _REQUIRED if key not in config]
    if missing or config.get("format") != BUNDLE_FORMAT:
        raise ValueError(
            f"{path} is not a {BUNDLE_FORMAT} bundle config (format {config.get('format')!r}, missing {missing}); "
            "re-export the model with this version of elue-hf"
        )
    absent = [name for name in [config["embeddings"], *config["layers"]] if not (Path(directory) / name).is_file()]
    if absent:
        raise ValueError(f"bundle {directory} lacks the graph files {absent}; re-export it")
    return config
