"""elue-hf: efficient NLP for the Hugging Face ecosystem.

``import elue_hf`` registers ElasticBERT with the transformers Auto classes and LPT with PEFT. Both registrations
run when their library is imported (at once if it already is), so that ``import elue_hf`` itself stays cheap (the
``elue-hf`` command line starts without torch) while ``AutoModel.from_pretrained`` / ``PeftModel.from_pretrained``
always see them. Nothing is downloaded at import time; sub-packages (``elue_hf.elue``, ``elue_hf.hashee``,
``elue_hf.lpt``, ...) and the ElasticBERT classes load on first use.
"""

from __future__ import annotations

import importlib
import sys

from ._import_hooks import when_imported

__version__ = "0.1.0"


def _register_elasticbert() -> None:
    # ``elue_hf.elasticbert`` registers itself at the end of its import; when it is in sys.modules it either did,
    # or is being imported right now (its ``from transformers import ...`` brought us here) and will.
    if "elue_hf.elasticbert" not in sys.modules:
        importlib.import_module("elue_hf.elasticbert")  # imports torch


def _register_lpt() -> None:
    if "elue_hf.lpt" not in sys.modules:  # same pattern: the package registers LPT when imported
        importlib.import_module("elue_hf.lpt")


when_imported("transformers", _register_elasticbert)
when_imported("peft", _register_lpt)


def _seed_elue_metric() -> None:
    """Make bare ``evaluate.load("elue")`` work offline: copy the metric into evaluate's module cache if missing.

    No ``evaluate`` import, never raises; opt out with ``ELUE_HF_NO_METRIC_INSTALL=1``.
    """
    from .metrics import ensure_metric_installed

    ensure_metric_installed()


_seed_elue_metric()

_ELASTICBERT = (
    "ElasticBertConfig",
    "ElasticBertPreTrainedModel",
    "ElasticBertModel",
    "ElasticBertForSequenceClassification",
    "ElasticBertForMaskedLM",
    "ElasticBertForPreTraining",
    "register_elasticbert",
)
_LAZY = {
    **{name: "elue_hf.elasticbert" for name in _ELASTICBERT},
    "convert_bert_to_elasticbert": "elue_hf.elasticbert.convert",
    "LPTConfig": "elue_hf.lpt",
    "HashEEConfig": "elue_hf.hashee",
    "apply_hashee": "elue_hf.hashee",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'elue_hf' has no attribute {name!r}")


__all__ = [*_LAZY]
