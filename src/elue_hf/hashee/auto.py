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

The HashEE config keeps the table settings (:class:`~elue_hf.hashee.HashEEConfig`) in its ``hashee`` block.
"""

from __future__ import annotations

import sys
from typing import Any

from transformers import AutoConfig, PreTrainedConfig

__all__ = [
    "HASHEE_MODEL_TYPE_PREFIX",
    "HashEEModelConfig",
    "hashee_config_class",
    "is_hashee_config",
    "base_model_type",
    "to_hashee_config",
    "to_base_config",
    "ensure_hashee_model_type",
    "register_hashee",
]

HASHEE_MODEL_TYPE_PREFIX = "hashee_"

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


class HashEEModelConfig:
    """Mixed into ``HashEE<BaseConfig>`` (first base): the config of a HashEE model.

    ``base_config_class`` is the config class of the model underneath; the ``hashee`` attribute holds the
    :class:`~elue_hf.hashee.HashEEConfig` as a dict. A HashEE checkpoint never points transformers at code to run: its
    ``config.json`` has no ``auto_map`` (a base such as ElasticBERT may set one in memory; it is not saved), so only
    the registered HashEE model types load it.
    """

    base_config_class: type[PreTrainedConfig]

    def to_dict(self) -> dict[str, Any]:
        output = super().to_dict()
        output.pop("auto_map", None)
        return output


_CONFIG_CLASSES: dict[type, type] = {}
_LOADERS: dict[str, type] = {}


def _declare(cls: type) -> type:
    """Make ``cls`` reachable as an attribute of this module (so configs pickle by reference)."""
    module = sys.modules[__name__]
    if getattr(module, cls.__name__, cls) is cls:
        setattr(module, cls.__name__, cls)
    return cls


def hashee_config_class(config_cls: type) -> type:
    """``HashEE<Base>``: the config class of a HashEE model built on ``config_cls`` (one class per base class, made on
    first use and registered with ``AutoConfig`` / ``AutoModel*``). A HashEE config class maps to itself."""
    if isinstance(config_cls, type) and issubclass(config_cls, HashEEModelConfig):
        return config_cls
    if not (isinstance(config_cls, type) and issubclass(config_cls, PreTrainedConfig)) or not config_cls.model_type:
        raise TypeError(f"HashEE needs a transformers config class with a model_type, got {config_cls!r}")
    if config_cls not in _CONFIG_CLASSES:
        name = f"HashEE{config_cls.__name__}"
        model_type = HASHEE_MODEL_TYPE_PREFIX + config_cls.model_type
        namespace = {
            "model_type": model_type,
            "base_config_class": config_cls,
            "_auto_class": None,  # never saved as remote code (the base class may be registered for auto_map)
            "__module__": __name__,
            "__qualname__": name,
            "__doc__": f"Config of a HashEE {config_cls.__name__} model (model_type {model_type!r}, docs/hashee.md).",
        }
        cls = _declare(type(name, (HashEEModelConfig, config_cls), namespace))
        _CONFIG_CLASSES[config_cls] = cls
        _register(cls)
    return _CONFIG_CLASSES[config_cls]


def is_hashee_config(config: Any) -> bool:
    return isinstance(config, HashEEModelConfig)


def base_model_type(config: Any) -> str | None:
    """The ``model_type`` of the architecture underneath: ``"bert"`` for both a BERT and a HashEE-BERT config."""
    if is_hashee_config(config):
        return type(config).base_config_class.model_type
    return getattr(config, "model_type", None)


def _with_class(config: PreTrainedConfig, cls: type) -> PreTrainedConfig:
    """A new config of class ``cls`` holding the same settings (sub-configs are shared, not copied)."""
    new = cls.__new__(cls)
    new.__dict__.update(config.__dict__)
    return new


def to_hashee_config(config: PreTrainedConfig, hashee: dict[str, Any]) -> PreTrainedConfig:
    """The HashEE version of a model config, with the ``hashee`` block ``hashee`` (``HashEEConfig.to_dict()``)."""
    new = _with_class(config, hashee_config_class(type(config)))
    new.hashee = dict(hashee)
    return new


def to_base_config(config: PreTrainedConfig) -> PreTrainedConfig:
    """The plain base config of a HashEE config, without its ``hashee`` block."""
    if not is_hashee_config(config):
        raise ValueError(f"{type(config).__name__} is not the config of a HashEE model")
    new = _with_class(config, type(config).base_config_class)
    new.__dict__.pop("hashee", None)
    return new


def ensure_hashee_model_type(model_type: str | None) -> bool:
    """Register ``"hashee_<base>"`` if its base type is known to ``AutoConfig`` (True when it is a HashEE type)."""
    if not model_type or not model_type.startswith(HASHEE_MODEL_TYPE_PREFIX):
        return False
    from transformers import CONFIG_MAPPING

    base = model_type[len(HASHEE_MODEL_TYPE_PREFIX) :]
    if model_type not in CONFIG_MAPPING and base in CONFIG_MAPPING:
        hashee_config_class(CONFIG_MAPPING[base])
    return True


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
        _LOADERS[auto_class_name] = _declare(type(name, (_HashEEAutoLoader,), namespace))
    return _LOADERS[auto_class_name]


def _register(config_cls: type) -> None:
    import transformers

    AutoConfig.register(config_cls.model_type, config_cls, exist_ok=True)
    for auto_name, mapping_name in AUTO_CLASSES.items():
        if config_cls.base_config_class in getattr(transformers, mapping_name):
            getattr(transformers, auto_name).register(config_cls, _loader(auto_name), exist_ok=True)


def register_hashee() -> None:
    """Register the HashEE model types of the documented bases (BERT, RoBERTa, ElasticBERT, BART, T5,
    EncoderDecoder) with ``AutoConfig`` / ``AutoModel*``. Safe to call many times; other bases are registered when
    :func:`~elue_hf.hashee.apply_hashee` or :func:`~elue_hf.hashee.load_hashee_model` first meets them."""
    from transformers import BartConfig, BertConfig, EncoderDecoderConfig, RobertaConfig, T5Config

    from ..elasticbert import ElasticBertConfig, register_elasticbert

    register_elasticbert()
    for config_cls in (BertConfig, RobertaConfig, ElasticBertConfig, BartConfig, T5Config, EncoderDecoderConfig):
        hashee_config_class(config_cls)
