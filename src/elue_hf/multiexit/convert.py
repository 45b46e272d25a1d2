"""Turn any supported encoder checkpoint into a multi-exit model (``convert_to_multi_exit`` / ``elue-hf convert``).

BERT becomes an ElasticBERT (the ``fnlp/elasticbert-*`` layout); RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT,
DeBERTa-v2/v3 and ModernBERT become ``model_type="multiexit"`` models over their own modules. Backbone weights are
copied unchanged. A fine-tuned ``*ForSequenceClassification`` keeps its head: the head's pooler part initialises
every exit's pooler and its classifier becomes the last exit's classifier, so with the last exit only the converted
model gives the source model's logits. The other exit classifiers start fresh.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Sequence

import torch
from transformers import AutoConfig, PreTrainedModel

from ..outputs import refuse_existing
from ..tokenizer_io import load_tokenizer, save_tokenizer
from .adapters import adapter_for, supported_model_types
from .configuration_multiexit import MultiExitConfig
from .modeling_multiexit import MultiExitForSequenceClassification

__all__ = ["convert_to_multi_exit", "parse_exits", "SUPPORTED"]

#: what ``convert_to_multi_exit`` accepts, in one sentence
SUPPORTED = ("BERT (as ElasticBERT), RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA, DistilBERT, DeBERTa-v2/v3 and "
             "ModernBERT")


def parse_exits(exits: str | Sequence[int] | None, num_layers: int) -> list[int] | None:
    """``"2,4,6"`` or ``[2, 4, 6]`` -> sorted 1-based layers (the top layer is added); None = every layer."""
    if exits is None:
        return None
    if isinstance(exits, str):
        try:
            exits = [int(part) for part in exits.replace(" ", "").split(",") if part]
        except ValueError:
            raise ValueError(f"exits {exits!r} must be comma-separated layer numbers, e.g. 2,4,6") from None
    layers = sorted(set(int(k) for k in exits) | {num_layers})
    bad = [k for k in layers if not 1 <= k <= num_layers]
    if bad:
        raise ValueError(f"exits {bad} are outside the model's layers 1..{num_layers}")
    return layers


def _is_classifier(model) -> bool:
    return type(model).__name__.endswith("ForSequenceClassification")


def _load_source(source):
    """(model, config) of a folder / Hub id (the classifier when its config says it is one) or a loaded model."""
    if isinstance(source, PreTrainedModel):
        return source, source.config
    config = AutoConfig.from_pretrained(str(source))
    if config.model_type not in ("bert", *supported_model_types()):
        raise ValueError(f"cannot make model_type {config.model_type!r} multi-exit; supported: {SUPPORTED}")
    from transformers import AutoModel, AutoModelForSequenceClassification

    classifier = any(name.endswith("ForSequenceClassification") for name in (config.architectures or []))
    loader = AutoModelForSequenceClassification if classifier else AutoModel
    return loader.from_pretrained(str(source)), config


def _label_fields(config, num_labels: int | None, keep_head: bool) -> dict:
    if keep_head:
        return {"num_labels": config.num_labels, "id2label": dict(config.id2label),
                "label2id": dict(config.label2id)}
    return {"num_labels": 2 if num_labels is None else num_labels}


def _copy_head(model: MultiExitForSequenceClassification, head: dict, keep_classifier: bool) -> None:
    """The source head's pooler into every exit's pooler; its classifier into the last exit's."""
    with torch.no_grad():
        for pooler in model.multiexit.encoder.pooler:
            if pooler is None:
                continue
            for key, value in head.items():
                if key.startswith("pooler."):
                    pooler.get_parameter(key.removeprefix("pooler.")).copy_(value)
        if keep_classifier:
            last = model.classifier if model.is_static else model.classifiers[-1]
            last.weight.copy_(head["classifier.weight"])
            last.bias.copy_(head["classifier.bias"])


def _to_elasticbert(source, model, exits, pooling, num_labels, save_directory, tokenizer, config_kwargs):
    from ..elasticbert.convert import convert_bert_to_elasticbert

    layers = model.config.num_hidden_layers
    chosen = parse_exits(exits, layers)
    top = None if chosen is None else len(chosen)
    if chosen is not None and chosen != list(range(layers - top + 1, layers + 1)):
        raise ValueError(f"a BERT becomes an ElasticBERT, whose exits are the top layers: pass a top range such as "
                         f"{','.join(map(str, range(layers - len(chosen) + 1, layers + 1)))}, not {exits}")
    keep_head = _is_classifier(model) and num_labels in (None, model.config.num_labels)
    labels = _label_fields(model.config, num_labels, keep_head)
    converted = convert_bert_to_elasticbert(model.base_model if keep_head else model, num_output_layers=top,
                                            pooling=pooling or "cls", **labels, **config_kwargs)
    if keep_head:
        with torch.no_grad():
            last = converted.classifier if converted.is_static else converted.classifiers[-1]
            last.load_state_dict(model.classifier.state_dict())
    _save(converted, source, save_directory, tokenizer)
    return converted


def _save(model, source, save_directory, tokenizer) -> None:
    if save_directory is None:
        return
    model.save_pretrained(Path(save_directory))
    origin = source if isinstance(source, (str, os.PathLike)) else getattr(model.config, "_name_or_path", None)
    save_tokenizer(load_tokenizer(tokenizer, origin or None), save_directory)


def convert_to_multi_exit(
    model_or_path,
    exits: str | Sequence[int] | None = None,
    pooling: str | None = None,
    num_labels: int | None = None,
    save_directory: str | os.PathLike | None = None,
    tokenizer=None,
    overwrite: bool = False,
    **config_kwargs,
):
    """A multi-exit classifier built from ``model_or_path`` (folder, Hub id or loaded model).

    Args:
        exits: 1-based layers with an exit (``"2,4,6"`` or a list; the top layer is always added); default every
            layer. A BERT becomes an ElasticBERT, whose exits must be a top range.
        pooling: ``"cls"`` or ``"mean"``; default the family's own (ModernBERT: its ``classifier_pooling``; others
            ``"cls"``).
        num_labels: labels of the exit classifiers; default the source classifier's (its head is kept), else 2.
            A different number from the source classifier's starts every classifier fresh.
        save_directory: save model and tokenizer there (loads with the Auto classes after ``import elue_hf``).
        tokenizer: the tokenizer to save (object, folder or Hub id); default the source's.
        overwrite: write into ``save_directory`` even when it is an existing non-empty folder (default: refuse with
            a one-sentence ``ValueError`` before any work).
        config_kwargs: further :class:`MultiExitConfig` fields (``multi_exit_training``, ``exit_criterion``, ...).
    """
    if save_directory is not None:
        refuse_existing(save_directory, "save_directory", overwrite, fix="pass overwrite=True")
    model, config = _load_source(model_or_path)
    if config.model_type == "bert":
        return _to_elasticbert(model_or_path, model, exits, pooling, num_labels, save_directory, tokenizer,
                               config_kwargs)
    if config.model_type not in supported_model_types():
        raise ValueError(f"cannot make model_type {config.model_type!r} multi-exit; supported: {SUPPORTED}")
    adapter = adapter_for(config.model_type)
    head = adapter.head_weights(model) if _is_classifier(model) else {}
    keep_classifier = bool(head) and num_labels in (None, config.num_labels)
    settings = adapter.head_settings(config)
    if pooling is not None:
        settings["pooling"] = pooling
    multi_config = MultiExitConfig(
        backbone_config=copy.deepcopy(model.base_model.config),
        exit_layers=parse_exits(exits, config.num_hidden_layers),
        **{**settings, **_label_fields(config, num_labels, keep_classifier), **config_kwargs},
    )  # fmt: skip
    converted = MultiExitForSequenceClassification(multi_config)
    missing, _ = converted.multiexit.backbone.load_state_dict(model.base_model.state_dict(), strict=False)
    if missing:
        raise ValueError(f"the {adapter.family} checkpoint lacks backbone weights: {missing[:5]}")
    if head:
        _copy_head(converted, head, keep_classifier)
    converted.eval()
    _save(converted, model_or_path, save_directory, tokenizer)
    return converted
