"""elue-hf: efficient NLP for the Hugging Face ecosystem.

``import elue_hf`` has exactly five side effects, each a documented, idempotent function you can also call yourself:

1. :func:`elue_hf.elasticbert.register_elasticbert`: ElasticBERT in ``AutoConfig`` / ``AutoModel*`` (transformers'
   public ``register`` API);
2. :func:`elue_hf.elasticbert.pipeline.register_elasticbert_pipeline`: ``pipeline("text-classification")`` builds
   the exit-aware pipeline for ElasticBERT models (every other model keeps transformers' own pipeline);
3. :func:`elue_hf.lpt.register_lpt`: LPT as a PEFT method (``PeftType.LPT``; the only reach into PEFT internals is
   :mod:`elue_hf.lpt.peft_compat`, version-guarded);
4. :func:`elue_hf.metrics.ensure_metric_installed`: copies the ELUE metric into ``evaluate``'s module cache so that a
   bare ``evaluate.load("elue")`` works offline (opt out with ``ELUE_HF_NO_METRIC_INSTALL=1``);
5. :func:`elue_hf.hashee.auto.register_hashee`: the HashEE model types (``hashee_bert``, ...) in ``AutoConfig`` /
   ``AutoModel*``, so that ``AutoModel*.from_pretrained`` loads a saved HashEE model with its exit table.

Nothing is downloaded at import time; sub-packages (``elue_hf.elue``, ``elue_hf.lpt``, ...) load on first use.
"""

from __future__ import annotations

import importlib

from .elasticbert import (
    ElasticBertConfig,
    ElasticBertForMaskedLM,
    ElasticBertForPreTraining,
    ElasticBertForSequenceClassification,
    ElasticBertModel,
    ElasticBertPreTrainedModel,
    register_elasticbert,
)

__version__ = "0.1.0"

register_elasticbert()


def _register_pipeline() -> None:
    """``pipeline("text-classification", model=<ElasticBERT>)`` accepts exit options and reports exit layer/MFLOPs."""
    from .elasticbert.pipeline import register_elasticbert_pipeline

    register_elasticbert_pipeline()


_register_pipeline()


def _register_lpt() -> None:
    from .lpt import register_lpt  # imports peft

    register_lpt()


_register_lpt()


def _seed_elue_metric() -> None:
    """Make bare ``evaluate.load("elue")`` work offline: copy the metric into evaluate's module cache if missing.

    No ``evaluate`` import, never raises; opt out with ``ELUE_HF_NO_METRIC_INSTALL=1``.
    """
    from .metrics import ensure_metric_installed

    ensure_metric_installed()


_seed_elue_metric()


def _register_hashee() -> None:
    from .hashee.auto import register_hashee

    register_hashee()


_register_hashee()

_LAZY = {
    "convert_bert_to_elasticbert": "elue_hf.elasticbert.convert",
    "LPTConfig": "elue_hf.lpt",
    "HashEEConfig": "elue_hf.hashee",
    "apply_hashee": "elue_hf.hashee",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'elue_hf' has no attribute {name!r}")


__all__ = [
    "ElasticBertConfig",
    "ElasticBertPreTrainedModel",
    "ElasticBertModel",
    "ElasticBertForSequenceClassification",
    "ElasticBertForMaskedLM",
    "ElasticBertForPreTraining",
    "register_elasticbert",
    *_LAZY,
]
