"""HashEE checkpoints as model types of their own (docs/hashee.md, "Saving and loading").

The config of a HashEE model is an instance of ``HashEE<BaseConfig>``: a declared subclass of the base model's config
class (one per base class, made by :func:`hashee_config_class`) whose ``model_type`` is ``"hashee_<base type>"``
(``HashEEBertConfig`` / ``"hashee_bert"``, ``HashEEEncoderDecoderConfig`` / ``"hashee_encoder-decoder"``, ...). Being
a subclass, it is everything the base model code reads; only the saved ``config.json`` changes, so that:

- with elue_hf imported, ``AutoConfig`` knows these model types and every ``AutoModel*`` class that maps the base
  config maps the HashEE config to a loader (:func:`register_hashee`, run by ``import elue_hf``, through transformers'
  public ``register`` API): ``AutoModelForSequenceClassification.from_pretrained(folder)`` returns the base model class
  with the saved exit table applied, as :func:`~elue_hf.hashee.load_hashee_model` does;
- plain transformers refuses such a folder (unknown model type ``hashee_bert``) instead of silently dropping HashEE.

The HashEE config keeps the table settings (:class:`~elue_hf.hashee.HashEEConfig`) in its ``hashee`` block. The
config classes themselves live in :mod:`.configuration_hashee` (re-exported here); this module adds the loaders.
"""

from __future__ import annotations

from . import configuration_hashee as _configuration
from .configuration_hashee import *  # noqa: F401,F403  (the config types, re-exported)
from .configuration_hashee import expose, hashee_config_class, is_hashee_config, on_new_config_class

__all__ = [*_configuration.__all__, "register_hashee"]

#: ``AutoModel*`` classes that learn the HashEE model types, with the public transformers mapping each one reads.
AUTO_CLASSES = {
    "AutoModel": "MODEL_MAPPING",
    "AutoModelForPreTraining": "MODEL_FOR_PRETRAINING_MAPPING",
    "AutoModelForMaskedLM": "MODEL_FOR_MASKED_LM_MAPPING",
    "AutoModelForSequenceClassification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING",
    "AutoModelForTokenClassification": "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING",
    "AutoModelForQuestionAnswering": "MODEL_FOR_QUESTION_ANSWERING_MAPPING",
    "AutoModelForMultipleChoice": "MODEL_FOR_MULTIPLE_CHOICE_MAPPING",
    "AutoModelForNextSentencePrediction": "MODEL_FOR_NEXT_SENTENCE_PREDICTION_MAPPING",
    "AutoModelForSeq2SeqLM": "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING",
    "AutoModelForTextEncoding": "MODEL_FOR_TEXT_ENCODING_MAPPING",
}


_LOADERS: dict[str, type] = {}


# --------------------------------------------------------------------------------------------------------------------
# Auto classes
# --------------------------------------------------------------------------------------------------------------------


def _pick(candidates, config) -> type:
    """The model class among a mapping entry (a class or a tuple), chosen by ``config.architectures`` as transformers
    does."""
    if not isinstance(candidates, (list, tuple)):
        return candidates
    by_name = {cls.__name__: cls for cls in candidates}
    for name in getattr(config, "architectures", None) or []:
        if name in by_name:
            return by_name[name]
    return candidates[0]


class _HashEEAutoLoader:
    """What an ``AutoModel*`` class maps a HashEE config to: builds the model class that the same Auto class maps the
    base config to, with the checkpoint's exit table applied (never a subclass of it)."""

    auto_class_name: str
    mapping_name: str

    @classmethod
    def base_model_class(cls, config) -> type:
        import transformers

        mapping = getattr(transformers, cls.mapping_name)
        base = type(config).base_config_class
        if base not in mapping:
            raise ValueError(f"{cls.auto_class_name} has no model for {base.__name__}")
        return _pick(mapping[base], config)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, **kwargs):
        from .model import load_hashee_model

        if model_args:
            raise TypeError("HashEE checkpoints take keyword arguments only in from_pretrained")
        if not is_hashee_config(config):
            raise TypeError(f"{cls.__name__} loads HashEE checkpoints through transformers' {cls.auto_class_name}")
        for name in ("_from_auto", "trust_remote_code", "adapter_kwargs"):  # set by the Auto class; nothing to run
            kwargs.pop(name, None)
        return load_hashee_model(
            pretrained_model_name_or_path, model_class=cls.base_model_class(config), config=config, **kwargs
        )

    @classmethod
    def _from_config(cls, config, **kwargs):
        raise ValueError(
            f"A HashEE model needs its exit table, which only a checkpoint holds: load one with "
            f"{cls.auto_class_name}.from_pretrained(folder) or load_hashee_model(folder), or build the plain model "
            "and call elue_hf.hashee.apply_hashee(model, table)"
        )


def _loader(auto_class_name: str) -> type:
    if auto_class_name not in _LOADERS:
        name = f"HashEE{auto_class_name}"
        namespace = {
            "auto_class_name": auto_class_name,
            "mapping_name": AUTO_CLASSES[auto_class_name],
            "__module__": __name__,
            "__qualname__": name,
        }
        _LOADERS[auto_class_name] = expose(type(name, (_HashEEAutoLoader,), namespace))
    return _LOADERS[auto_class_name]


def _register_loaders(config_cls: type) -> None:
    import transformers

    for auto_name, mapping_name in AUTO_CLASSES.items():
        if config_cls.base_config_class in getattr(transformers, mapping_name):
            getattr(transformers, auto_name).register(config_cls, _loader(auto_name), exist_ok=True)


on_new_config_class(_register_loaders)


def register_hashee() -> None:
    """Register the HashEE model types of the documented bases (BERT, RoBERTa, ElasticBERT, BART, T5,
    EncoderDecoder) with ``AutoConfig`` / ``AutoModel*``. Safe to call many times; other bases are registered when
    :func:`~elue_hf.hashee.apply_hashee` or :func:`~elue_hf.hashee.load_hashee_model` first meets them."""
    from transformers import BartConfig, BertConfig, EncoderDecoderConfig, RobertaConfig, T5Config

    from ..elasticbert import ElasticBertConfig, register_elasticbert

    register_elasticbert()
    for config_cls in (BertConfig, RobertaConfig, ElasticBertConfig, BartConfig, T5Config, EncoderDecoderConfig):
        hashee_config_class(config_cls)
