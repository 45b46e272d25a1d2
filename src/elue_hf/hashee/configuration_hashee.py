"""The configuration of a HashEE model: ``HashEE<BaseConfig>`` classes, model type ``"hashee_<base type>"``
(docs/hashee.md, "Saving and loading").

A HashEE config is an instance of a declared subclass of the base model's config class (one per base class, made by
:func:`hashee_config_class`): everything the base model code reads, plus the table settings
(:class:`~elue_hf.hashee.HashEEConfig`) in its ``hashee`` block; only the saved ``config.json`` changes. This module
registers each class with ``AutoConfig``; :mod:`.auto` maps them in the ``AutoModel*`` classes through
:func:`on_new_config_class`, so imports go one way: ``auto`` -> ``model`` -> ``configuration_hashee``.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

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
    "on_new_config_class",
]

HASHEE_MODEL_TYPE_PREFIX = "hashee_"


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
_NEW_CLASS_HOOKS: list[Callable[[type], None]] = []


def expose(cls: type) -> type:
    """Make ``cls`` reachable as an attribute of its module (so instances pickle by reference)."""
    module = sys.modules[cls.__module__]
    if getattr(module, cls.__name__, cls) is cls:
        setattr(module, cls.__name__, cls)
    return cls


def on_new_config_class(hook: Callable[[type], None]) -> None:
    """Call ``hook(cls)`` for every HashEE config class, those made so far and each one made later."""
    _NEW_CLASS_HOOKS.append(hook)
    for cls in list(_CONFIG_CLASSES.values()):
        hook(cls)


def hashee_config_class(config_cls: type) -> type:
    """``HashEE<Base>``: the config class of a HashEE model built on ``config_cls`` (one class per base class, made on
    first use, registered with ``AutoConfig`` and handed to every :func:`on_new_config_class` hook, which is how
    :mod:`.auto` registers it with ``AutoModel*``). A HashEE config class maps to itself."""
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
        cls = expose(type(name, (HashEEModelConfig, config_cls), namespace))
        _CONFIG_CLASSES[config_cls] = cls
        AutoConfig.register(model_type, cls, exist_ok=True)
        for hook in _NEW_CLASS_HOOKS:
            hook(cls)
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
