"""The ``elasticbert-text-classification`` pipeline: early-exit options per call, exit layer and MFLOPs per result.

>>> clf = pipeline("elasticbert-text-classification", model="path/to/elasticbert")   # after ``import elue_hf``
>>> clf("a gripping film", exit_criterion="entropy", entropy_threshold=0.3)
[{'label': 'positive', 'score': 0.93, 'exit_layer': 4, 'mflops': 1234.5}]

The exit options (``exit_criterion``, ``entropy_threshold``, ``patience``, ``regression_threshold``) are accepted at
construction and per call; any keyword that is neither an exit option, a text-classification option nor a tokenizer
option is rejected with a ``ValueError`` (the stock pipeline would hand it to the tokenizer and ignore it). ``mflops``
is the ELUE count for that instance (docs/elue.md, "FLOPs rules"): the layers run plus the exits evaluated on the
way (dynamic early exit) or one exit (no early exit).

:func:`register_elasticbert_pipeline` (run when ``transformers.pipelines`` is imported after ``import elue_hf``) adds
the task :data:`ELASTICBERT_TASK` with transformers' public ``PIPELINE_REGISTRY.register_pipeline``; the stock tasks
are left alone, so ``pipeline("text-classification", model=<ElasticBERT>)`` is transformers' own
``TextClassificationPipeline`` (full depth, no exit fields). Without the registry:
``pipeline("text-classification", model=..., pipeline_class=ElasticBertTextClassificationPipeline)``.
"""

from __future__ import annotations

import difflib

import torch
from transformers.pipelines.text_classification import TextClassificationPipeline

__all__ = ["ELASTICBERT_TASK", "EXIT_OPTIONS", "ElasticBertTextClassificationPipeline", "register_elasticbert_pipeline"]

EXIT_OPTIONS = ("exit_criterion", "entropy_threshold", "patience", "regression_threshold")
_CLASSIFICATION_OPTIONS = ("top_k", "function_to_apply")
_TOKENIZER_OPTIONS = (
    "truncation", "padding", "max_length", "stride", "add_special_tokens", "return_token_type_ids",
    "pad_to_multiple_of", "padding_side", "return_attention_mask",
)  # fmt: skip
#: the pipeline task name elue-hf registers (transformers' own tasks are never overwritten)
ELASTICBERT_TASK = "elasticbert-text-classification"


def _is_elasticbert(model) -> bool:
    """ElasticBERT, or a multi-exit model over another family (``elue_hf.multiexit``): the same outputs."""
    from ..multi_exit import is_multi_exit_model

    return is_multi_exit_model(model)


class ElasticBertTextClassificationPipeline(TextClassificationPipeline):
    """Text classification with an ElasticBERT: early exit per call, ``exit_layer`` and ``mflops`` in each result."""

    def __init__(self, *args, **kwargs):
        model = kwargs.get("model", args[0] if args else None)
        if not _is_elasticbert(model):
            model_type = getattr(getattr(model, "config", None), "model_type", None)
            raise ValueError(f"the {ELASTICBERT_TASK} pipeline needs an ElasticBERT model, got model_type "
                             f"{model_type!r}; use pipeline(\"text-classification\") for other models")
        super().__init__(*args, **kwargs)

    def _sanitize_parameters(self, **kwargs):
        known = (*EXIT_OPTIONS, *_CLASSIFICATION_OPTIONS, *_TOKENIZER_OPTIONS)
        unknown = sorted(set(kwargs) - set(known))
        if unknown:
            hints = [f"{name!r} -> did you mean {close[0]!r}?" for name in unknown
                     if (close := difflib.get_close_matches(name, known, n=1, cutoff=0.6))]
            raise ValueError(
                f"unknown option(s) {unknown} for the ElasticBERT text-classification pipeline"
                f"{' (' + '; '.join(hints) + ')' if hints else ''}; exit options: "
                f"{list(EXIT_OPTIONS)}, classification options: {list(_CLASSIFICATION_OPTIONS)}, tokenizer options: "
                f"{list(_TOKENIZER_OPTIONS)}"
            )
        exit_params = {k: kwargs.pop(k) for k in EXIT_OPTIONS if k in kwargs}
        preprocess, _, postprocess = super()._sanitize_parameters(**kwargs)
        return preprocess, exit_params, postprocess

    def _forward(self, model_inputs, **exit_params):
        config = self.model.config
        criterion = exit_params.get("exit_criterion", config.exit_criterion)
        patience = exit_params.get("patience", config.patience)
        dynamic = criterion not in (None, "none") and not (criterion == "patience" and patience == 0)
        outputs = self.model(**model_inputs, **exit_params)
        mask = model_inputs.get("attention_mask")
        lengths = mask.sum(-1) if mask is not None else torch.full_like(outputs.exit_layer, model_inputs["input_ids"]
                                                                        .shape[-1])
        return {
            "logits": outputs.logits,
            "exit_layer": outputs.exit_layer,
            "length": lengths,
            "dynamic": torch.full_like(outputs.exit_layer, int(dynamic)),
        }

    def postprocess(self, model_outputs, function_to_apply=None, top_k=1, _legacy=True):
        from ..elue.flops.analytic import model_flops

        result = super().postprocess(model_outputs, function_to_apply=function_to_apply, top_k=top_k,
                                     _legacy=_legacy)
        layer = int(model_outputs["exit_layer"].reshape(-1)[0])
        length = int(model_outputs["length"].reshape(-1)[0])
        mode = "dynamic" if int(model_outputs["dynamic"].reshape(-1)[0]) else "static"
        extra = {"exit_layer": layer, "mflops": float(model_flops(self.model.config, length, layer, mode))}
        for entry in result if isinstance(result, list) else [result]:
            entry.update(extra)
        return result


def register_elasticbert_pipeline() -> None:
    """Add the task ``"elasticbert-text-classification"`` (:data:`ELASTICBERT_TASK`) through transformers' public
    ``PIPELINE_REGISTRY.register_pipeline``. Idempotent; transformers' own tasks are not touched."""
    from transformers import AutoModelForSequenceClassification
    from transformers.pipelines import PIPELINE_REGISTRY

    current = PIPELINE_REGISTRY.supported_tasks.get(ELASTICBERT_TASK, {}).get("impl")
    if current is ElasticBertTextClassificationPipeline:
        return
    PIPELINE_REGISTRY.register_pipeline(ELASTICBERT_TASK, pipeline_class=ElasticBertTextClassificationPipeline,
                                        pt_model=AutoModelForSequenceClassification, type="text")


# Idempotent; covers the import order in which this module is what pulls transformers.pipelines in.
register_elasticbert_pipeline()
