"""int8 in PyTorch: torchao's int8 weight quantization of a (multi-exit) classifier, composing with the batched exit.

>>> from elue_hf.deploy import quantize_int8
>>> int8 = quantize_int8(model)                       # a quantized copy; `model` stays fp32
>>> int8(input_ids, exit_criterion="entropy", entropy_threshold=0.3)   # exits, drops rows, trims padding as before

or at load time, transformers' own route (:func:`int8_quantization_config`)::

    AutoModelForSequenceClassification.from_pretrained(folder, quantization_config=int8_quantization_config())

Every ``nn.Linear`` (the layers' projections, the poolers and the exit heads) gets int8 weights with one scale per
output channel (torchao ``Int8WeightOnlyConfig``); activations, embeddings and LayerNorms stay fp32. Nothing depends on
the other rows of a batch, so the batched exit (rows leaving, padding trimmed: shapes change from layer to layer)
decides as one row at a time does, up to float rounding. ELUE FLOPs are unchanged: ELUE counts operations, not bits.
Weight-only was measured faster than torchao's dynamic int8 (int8 activations too) on both shapes measured, and faster
than fp32 at BERT-base width.

Why torchao, and how fast it is on the CPUs measured: docs/deploy.md ("int8 in PyTorch"). torchao is optional
(``pip install "elue-hf[int8]"``) and imported only when int8 is asked for.
"""

from __future__ import annotations

import copy

__all__ = ["QUANTIZE_CHOICES", "Int8BackendMissing", "int8_config", "int8_quantization_config", "quantize_int8",
           "quantize_model", "is_int8"]

QUANTIZE_CHOICES = ("int8",)
_HINT = 'int8 in PyTorch needs torchao: pip install "elue-hf[int8]" (torchao 0.18)'


class Int8BackendMissing(ImportError, ValueError):
    """torchao is not installed (a ``ValueError`` too, so the CLI prints its one sentence and exits with 2)."""


def int8_config():
    """torchao's ``Int8WeightOnlyConfig()`` (:class:`Int8BackendMissing` without torchao)."""
    try:
        from torchao.quantization import Int8WeightOnlyConfig
    except ImportError:
        raise Int8BackendMissing(_HINT) from None
    return Int8WeightOnlyConfig()


def int8_quantization_config():
    """transformers' ``TorchAoConfig`` of the same quantization, for ``from_pretrained(..., quantization_config=)``."""
    config = int8_config()
    from transformers import TorchAoConfig

    return TorchAoConfig(config)


def quantize_int8(model, inplace: bool = False):
    """``model`` with every ``nn.Linear``'s weight quantized to int8, in eval mode; a copy unless
    ``inplace``. Raises :class:`Int8BackendMissing` without torchao."""
    config = int8_config()
    from torchao.quantization import quantize_

    target = model if inplace else copy.deepcopy(model)
    quantize_(target.eval(), config)
    target.config.elue_quantization = "int8"  # what `is_int8` reads; saved configs say it too
    return target


def quantize_model(model, quantize: str | None):
    """``model`` unchanged (``quantize=None``) or quantized as ``quantize`` names (one of :data:`QUANTIZE_CHOICES`)."""
    if quantize is None:
        return model
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize must be one of {', '.join(QUANTIZE_CHOICES)} or None, got {quantize!r}")
    return quantize_int8(model)


def is_int8(model) -> bool:
    """Whether :func:`quantize_int8` quantized ``model``."""
    return getattr(getattr(model, "config", None), "elue_quantization", None) == "int8"
