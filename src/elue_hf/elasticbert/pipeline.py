"""``pipeline("text-classification")`` for ElasticBERT: early-exit options per call, exit layer and MFLOPs per result.

>>> clf = pipeline("text-classification", model="path/to/elasticbert")          # after ``import elue_hf``
>>> clf("a gripping film", exit_criterion="entropy", entropy_threshold=0.3)
[{'label': 'positive', 'score': 0.93, 'exit_layer': 4, 'mflops': 1234.5}]

The exit options (``exit_criterion``, ``entropy_threshold``, ``patience``, ``regression_threshold``) are accepted at
construction and per call; any keyword that is neither an exit option, a text-classification option nor a tokenizer
option is rejected with a ``ValueError`` (the stock pipeline would hand it to the tokenizer and ignore it). ``mflops``
is the ELUE count for that instance (docs/elue.md, "FLOPs rules"): the layers run plus the exits evaluated on the
way (dynamic early exit) or one exit (no early exit).

:func:`register_elasticbert_pipeline` (run by ``import elue_hf``) makes the ``text-classification`` task build this
pipeline for ElasticBERT models; every other model still gets transformers' own ``TextClassificationPipeline``.
"""

from __future__ import annotations

import difflib

import torch
from transformers.pipelines.text_classification import TextClassificationPipeline

__all__ = ["EXIT_OPTIONS", "ElasticBertTextClassificationPipeline", "register_elasticbert_pipeline"]

EXIT_OPTIONS = ("exit_criterion", "entropy_threshold", "patience", "regression_threshold")
_CLASSIFICATION_OPTIONS = ("top_k", "function_to_apply")
_TOKENIZER_OPTIONS = (
    "truncation", "padding", "max_length", "stride", "add_special_tokens", "return_token_type_ids",
    "pad_to_multiple_of", "padding_side", "return_attention_mask",
)  # fmt: skip
_TASK = "text-classification"


def _is_elasticbert(model) -> bool:
    return getattr(getattr(model, "config", None), "model_type", None) == "elasticbert"


class ElasticBertTextClassificationPipeline(TextClassificationPipeline):
    """Text classification with an ElasticBERT: early exit per call, ``exit_layer`` and ``mflops`` in each result.

    Built for a non-ElasticBERT model, it returns a plain ``TextClassificationPipeline`` instead.
    """

    def __new__(cls, *args, **kwargs):
        model = kwargs.get("model", args[0] if args else None)
        if cls is ElasticBertTextClassificationPipeline and not _is_elasticbert(model):
            return TextClassificationPipeline(*args, **kwargs)
        return super().__new__(cls)

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
        from ..elue.flops import elasticbert_flops

        result = super().postprocess(model_outputs, function_to_apply=function_to_apply, top_k=top_k,
                                     _legacy=_legacy)
        layer = int(model_outputs["exit_layer"].reshape(-1)[0])
        length = int(model_outputs["length"].reshape(-1)[0])
        mode = "dynamic" if int(model_outputs["dynamic"].reshape(-1)[0]) else "static"
        extra = {"exit_layer": layer, "mflops": float(elasticbert_flops(self.model.config, length, layer, mode))}
        for entry in result if isinstance(result, list) else [result]:
            entry.update(extra)
        return result


def register_elasticbert_pipeline() -> None:
    """Make ``pipeline("text-classification" | "sentiment-analysis", model=<ElasticBERT>)`` build
    :class:`ElasticBertTextClassificationPipeline`; other models keep ``TextClassificationPipeline``. Idempotent."""
    from transformers.pipelines import SUPPORTED_TASKS

    SUPPORTED_TASKS[_TASK]["impl"] = ElasticBertTextClassificationPipeline
