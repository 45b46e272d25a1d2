"""Early exit where models are deployed: ONNX bundles that keep every exit, an ONNX Runtime model that exits,
and int8 (ONNX Runtime dynamic quantization; torchao for PyTorch).

Importing this package imports neither torch nor transformers: the runtime (:mod:`.runtime`) needs only
onnxruntime, tokenizers and numpy (``pip install "elue-hf[onnx]"``). The exporter (:mod:`.export`, torch +
onnx + onnxscript: ``elue-hf[export]``) and :mod:`.int8` (torchao: ``elue-hf[int8]``) load on first use.
See docs/deploy.md.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "OnnxElasticBertForSequenceClassification": "runtime",
    "OnnxMultiExitForSequenceClassification": "runtime",
    "OnnxExitOutput": "runtime",
    "session_options": "runtime",
    "load_bundle_config": "bundle",
    "export_elasticbert": "export",
    "export_multi_exit": "export",
    "export_full_depth": "export",
    "quantize_int8": "int8",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
