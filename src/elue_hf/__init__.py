"""elue-hf: efficient NLP for the Hugging Face ecosystem.

``import elue_hf`` has exactly three side effects, each a documented, idempotent function you can also call yourself:

1. :func:`elue_hf.elasticbert.register_elasticbert`: ElasticBERT in ``AutoConfig`` / ``AutoModel*`` (transformers'
   public ``register`` API);
2. :func:`elue_hf.lpt.register_lpt`: LPT as a PEFT method (``PeftType.LPT``; the only reach into PEFT internals is
   :mod:`elue_hf.lpt.peft_compat`, version-guarded);
3. :func:`elue_hf.metrics.ensure_metric_installed`: copies the ELUE metric into ``evaluate``'s module cache so that a
   bare ``evaluate.load("elue")`` works offline (opt out with ``ELUE_HF_NO_METRIC_INSTALL=1``).

1 and 2 run when their library is imported (at once if it already is; see :mod:`elue_hf._import_hooks`), so that
``import elue_hf`` itself stays cheap -- the ``elue-hf`` command line starts without torch -- while
``AutoModel.from_pretrained`` / ``PeftModel.from_pretrained`` always see them. Nothing is downloaded at import time;
sub-packages (``elue_hf.elue``, ``elue_hf.hashee``, ...) and the ElasticBERT classes load on first use.
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

_ELASTICBERT = ("ElasticBertConfig", "ElasticBertPreTrainedModel", "ElasticBertModel", "ElasticBertForMaskedLM",
                "ElasticBertForSequenceClassification", "ElasticBertForPreTraining", "register_elasticbert")
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
