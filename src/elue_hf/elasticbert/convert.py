"""Turn any BERT checkpoint into an ElasticBERT initialisation."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import BertConfig, BertModel, PreTrainedModel

from ..outputs import refuse_existing
from ..tokenizer_io import load_tokenizer, save_tokenizer
from .configuration_elasticbert import ElasticBertConfig
from .modeling_elasticbert import ElasticBertForSequenceClassification, ElasticBertPreTrainedModel

_BERT_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "max_position_embeddings",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
)


def elasticbert_config_from_bert(bert_config: BertConfig, num_output_layers: int | None = None, **kwargs):
    """An ElasticBertConfig with the BERT config's dimensions and one exit slot per layer."""
    fields = {name: getattr(bert_config, name) for name in _BERT_FIELDS}
    layers = bert_config.num_hidden_layers
    return ElasticBertConfig(
        **fields,
        max_output_layers=layers,
        num_output_layers=layers if num_output_layers is None else num_output_layers,
        **kwargs,
    )


def bert_to_elasticbert_state_dict(bert_state: dict[str, torch.Tensor], num_layers: int, pooler_layers=None) -> dict:
    """Map a ``BertModel`` state dict (with or without the ``bert.`` prefix) onto the ElasticBERT key layout.

    Every BERT backbone key gets the ``elasticbert.`` prefix; BERT's single pooler initialises the per-layer
    poolers ``elasticbert.encoder.pooler.<i>`` for each ``i`` in ``pooler_layers`` (default: every layer).
    """
    out = {}
    pooler = {}
    for key, value in bert_state.items():
        key = key.removeprefix("bert.")
        if key.startswith("pooler."):
            pooler[key.removeprefix("pooler.")] = value
        elif key.startswith(("embeddings.", "encoder.")):
            if key == "embeddings.position_ids":
                continue
            out[f"elasticbert.{key}"] = value
    if pooler:
        for i in range(num_layers) if pooler_layers is None else pooler_layers:
            for name, value in pooler.items():
                out[f"elasticbert.encoder.pooler.{i}.{name}"] = value.clone()
    return out


def convert_bert_to_elasticbert(
    bert: str | os.PathLike | PreTrainedModel,
    num_labels: int = 2,
    num_output_layers: int | None = None,
    model_class: type[ElasticBertPreTrainedModel] = ElasticBertForSequenceClassification,
    save_directory: str | os.PathLike | None = None,
    tokenizer=None,
    overwrite: bool = False,
    **config_kwargs,
) -> ElasticBertPreTrainedModel:
    """Build an ElasticBERT model initialised from a BERT checkpoint.

    Args:
        bert: a local directory / Hub id of a BERT checkpoint, or a loaded ``BertModel`` / ``BertFor*`` model.
        num_labels: labels of the classification heads (1 = regression).
        num_output_layers: exits on the top layers (default: every layer, the dynamic model; 1 = static).
        model_class: the ElasticBERT class to build (default ``ElasticBertForSequenceClassification``).
        save_directory: if given, ``save_pretrained`` the result there (with ``auto_map``) together with its
            tokenizer, so the folder loads with ``AutoTokenizer`` as well as ``AutoModel*``.
        tokenizer: the tokenizer to save with it (object, folder or Hub id); default: the one of ``bert`` when
            ``bert`` is a folder / Hub id. With none found, the folder is saved without one and a warning says so.
        overwrite: write into ``save_directory`` even when it is an existing non-empty folder (default: refuse with
            a ``ValueError``, so an earlier model is never replaced by accident).

    Backbone weights are copied unchanged; every exit's pooler starts from BERT's pooler; exit classifiers (and any
    pre-training heads) start freshly initialised.
    """
    source = bert
    if save_directory is not None:
        refuse_existing(save_directory, "save_directory", overwrite, fix="pass overwrite=True")
    if isinstance(bert, (str, os.PathLike)):
        bert = BertModel.from_pretrained(bert)
    if not isinstance(bert, PreTrainedModel) or getattr(bert.config, "model_type", None) != "bert":
        raise ValueError(f"convert_bert_to_elasticbert expects a BERT checkpoint, got {type(bert).__name__}")
    config = elasticbert_config_from_bert(bert.config, num_output_layers, num_labels=num_labels, **config_kwargs)
    model = model_class(config)
    state = bert_to_elasticbert_state_dict(bert.state_dict(), config.num_hidden_layers, config.exit_layer_indices)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise ValueError(f"BERT weights without a place in ElasticBERT: {unexpected[:5]}")
    backbone_missing = [k for k in missing if k.startswith("elasticbert.") and ".pooler." not in k]
    if backbone_missing:
        raise ValueError(f"The BERT checkpoint lacks backbone weights: {backbone_missing[:5]}")
    model.eval()
    if save_directory is not None:
        model.save_pretrained(Path(save_directory))
        save_tokenizer(load_tokenizer(tokenizer, source), save_directory)
    return model
