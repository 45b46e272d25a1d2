"""elue-hf: efficient NLP for the Hugging Face ecosystem.

``import elue_hf`` registers six things, each through its library's public registration API and each a
documented, idempotent function you can also call yourself; none of them changes what another model does:

1. :func:`elue_hf.elasticbert.register_elasticbert`: ElasticBERT in ``AutoConfig`` / ``AutoModel*`` (transformers'
   ``register``);
2. :func:`elue_hf.elasticbert.pipeline.register_elasticbert_pipeline`: a new pipeline task,
   ``"elasticbert-text-classification"`` (``PIPELINE_REGISTRY.register_pipeline``); transformers' own tasks,
   ``"text-classification"`` included, are left as they are;
3. :func:`elue_hf.lpt.register_lpt`: LPT as a PEFT method (``register_peft_method``; ``PeftType.LPT`` is added by
   :mod:`elue_hf.lpt.peft_compat`, version-guarded, because PEFT's enum is closed);
4. :func:`elue_hf.metrics.ensure_metric_installed`: when ``evaluate`` is imported, copies the ELUE metric into its
   module cache so that a bare ``evaluate.load("elue")`` works offline (opt out with ``ELUE_HF_NO_METRIC_INSTALL=1``);
   ``import elue_hf`` alone writes nothing to disk;
5. :func:`elue_hf.hashee.auto.register_hashee`: the HashEE model types (``hashee_bert``, ...) in ``AutoConfig`` /
   ``AutoModel*``, so that ``AutoModel*.from_pretrained`` loads a saved HashEE model with its exit table.
6. :func:`elue_hf.multiexit.register_multiexit`: ``model_type="multiexit"`` (multi-exit RoBERTa, XLM-R, CamemBERT,
   ELECTRA, DistilBERT, DeBERTa-v2/v3, ModernBERT) in ``AutoConfig`` / ``AutoModel`` /
   ``AutoModelForSequenceClassification``.

Each runs when its library is imported (transformers, ``transformers.pipelines``, peft, evaluate, transformers and
transformers; at
once if it already is; see :mod:`elue_hf._import_hooks` for why a post-import hook and not an eager import), so that
``import elue_hf`` itself stays cheap -- the ``elue-hf`` command line starts without torch -- while
``AutoModel.from_pretrained`` / ``pipeline(...)`` / ``PeftModel.from_pretrained`` / ``evaluate.load`` always see
them. Nothing is downloaded at import time; sub-packages (``elue_hf.elue``, ``elue_hf.lpt``, ...) and the
ElasticBERT classes load on first use.
"""

from __future__ import annotations

import importlib
import sys

from ._import_hooks import when_imported

__version__ = "0.1.0"


def _import(package: str) -> None:
    """Import ``package`` unless it is in ``sys.modules``: each of elasticbert, hashee and lpt registers itself at
    the end of its own import, so one that is in sys.modules either did or is being imported right now (its own
    ``from transformers import ...`` brought us here) and will."""
    if package not in sys.modules:
        importlib.import_module(package)


def _importing(package: str) -> bool:
    module = sys.modules.get(package)
    return module is not None and bool(getattr(getattr(module, "__spec__", None), "_initializing", False))


def _on_transformers() -> None:
    _import("elue_hf.elasticbert")  # imports torch
    if not _importing("elue_hf.elasticbert"):  # HashEE's types wrap ElasticBERT's: only once it is complete
        _import("elue_hf.hashee")
        _import("elue_hf.multiexit")  # registers model_type "multiexit" (register_multiexit); reuses ElasticBERT's


when_imported("transformers", _on_transformers)
when_imported("elue_hf.elasticbert", lambda: (_import("elue_hf.hashee"), _import("elue_hf.multiexit")))
when_imported("peft", lambda: _import("elue_hf.lpt"))


def _register_pipeline() -> None:
    """``pipeline("elasticbert-text-classification", model=<ElasticBERT>)``: exit options, exit layer and MFLOPs.
    When ``elue_hf.elasticbert.pipeline`` is the module whose import brought transformers.pipelines in, it is only
    half initialised here: it registers the task at the end of its own import instead."""
    if _importing("elue_hf.elasticbert.pipeline"):
        return
    from .elasticbert.pipeline import register_elasticbert_pipeline

    register_elasticbert_pipeline()


when_imported("transformers.pipelines", _register_pipeline)


def _seed_elue_metric() -> None:
    """Make bare ``evaluate.load("elue")`` work offline: copy the metric into evaluate's module cache if missing.

    Runs once evaluate is imported (its first use), never raises; opt out with ``ELUE_HF_NO_METRIC_INSTALL=1``.
    """
    from .metrics import ensure_metric_installed

    ensure_metric_installed()


when_imported("evaluate", _seed_elue_metric)

_ELASTICBERT = ("ElasticBertConfig", "ElasticBertPreTrainedModel", "ElasticBertModel", "ElasticBertForMaskedLM",
                "ElasticBertForSequenceClassification", "ElasticBertForPreTraining", "register_elasticbert")
_LAZY = {
    **{name: "elue_hf.elasticbert" for name in _ELASTICBERT},
    "convert_bert_to_elasticbert": "elue_hf.elasticbert.convert",
    "convert_to_multi_exit": "elue_hf.multiexit.convert",
    "MultiExitConfig": "elue_hf.multiexit",
    "MultiExitModel": "elue_hf.multiexit",
    "MultiExitForSequenceClassification": "elue_hf.multiexit",
    "register_multiexit": "elue_hf.multiexit",
    "LPTConfig": "elue_hf.lpt",
    "HashEEConfig": "elue_hf.hashee",
    "apply_hashee": "elue_hf.hashee",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'elue_hf' has no attribute {name!r}")


__all__ = [*_LAZY]
