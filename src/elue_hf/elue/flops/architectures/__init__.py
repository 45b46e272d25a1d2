"""ELUE FLOPs for encoder classifier families beyond BERT, keyed by ``config.model_type``.

Each family module gives two things: ``shape_from_config`` (config -> :class:`.shape.EncoderShape`, the analytic
route and the module spec) and ``hook_rules`` (module classes -> counting rules of the hooked route,
:class:`..hooks.ElueFlopsCounter`). Families: BERT / RoBERTa / ElasticBERT (:mod:`.bert`), DistilBERT
(:mod:`.distilbert`), ALBERT (:mod:`.albert`), DeBERTa-v2 (:mod:`.deberta_v2`), ModernBERT (:mod:`.modernbert`).
Any other encoder goes through the generic route (:mod:`.generic`: ``FlopCounterMode`` + ELUE's extra terms),
flagged ``route="generic"``. XLM-RoBERTa and CamemBERT share the BERT rule; ELECTRA (:mod:`.electra`) is BERT with an
embedding projection. Multi-exit models over any of these (:mod:`.multiexit`) use their backbone's rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from . import shape as _shape
from .shape import *  # noqa: F401,F403  (EncoderShape, LayerShape, ExitShape and the MACs functions)
from .shape import EncoderShape

__all__ = [
    "Architecture",
    "UnsupportedArchitecture",
    "register_architecture",
    "get_architecture",
    "registered_model_types",
    "encoder_shape",
    "architecture_rules",
    "flops_shape",
    *_shape.__all__,
]


class UnsupportedArchitecture(ValueError):
    """No ELUE rule for this config (unknown ``model_type`` or an unsupported variant): use the generic route."""


@dataclass(frozen=True)
class Architecture:
    """One family: its ``model_types``, how to read an :class:`EncoderShape` and the hooked rules it needs."""

    family: str
    model_types: tuple[str, ...]
    shape_from_config: Callable  # (config, num_labels | None) -> EncoderShape
    hook_rules: Callable  # () -> {module class: rule}


_REGISTRY: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> None:
    """Register (or replace) the family for each of ``arch.model_types``."""
    for model_type in arch.model_types:
        _REGISTRY[model_type] = arch


def get_architecture(model_type: str | None) -> Architecture | None:
    return _REGISTRY.get(model_type or "")


def registered_model_types() -> tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


def encoder_shape(config, num_labels: int | None = None) -> EncoderShape:
    """The :class:`EncoderShape` of a supported classifier config (raises :class:`UnsupportedArchitecture`)."""
    model_type = getattr(config, "model_type", None)
    arch = get_architecture(model_type)
    if arch is None:
        raise UnsupportedArchitecture(
            f"no ELUE FLOPs rule for model_type {model_type!r} (supported: {', '.join(registered_model_types())}); "
            "use the generic route (elue_hf.elue.flops.architectures.generic)"
        )
    return arch.shape_from_config(config, num_labels)


def flops_shape(model):
    """How ELUE counts ``model`` (or a config): BERT / RoBERTa / ElasticBERT -> :class:`..analytic.ModelDims`; a
    registered family -> :class:`EncoderShape`; anything else (a model is then needed) -> a
    :class:`.generic.GenericShape` (``route == "generic"``: FlopCounterMode + ELUE's extra terms)."""
    from ..analytic import dims_from_config, needs_encoder_shape

    config = getattr(model, "config", model)
    if needs_encoder_shape(config):
        return encoder_shape(config)
    if get_architecture(getattr(config, "model_type", None)) is not None:
        return dims_from_config(config)
    if config is model:
        raise UnsupportedArchitecture(f"no ELUE FLOPs rule for model_type {getattr(config, 'model_type', None)!r}; "
                                      "the generic route needs the model itself")
    from .generic import GenericShape

    return GenericShape(model)


def architecture_rules() -> dict:
    """Hooked-route rules of every registered family (module classes that cannot be imported are skipped)."""
    rules: dict = {}
    for arch in dict.fromkeys(_REGISTRY.values()):
        rules.update(arch.hook_rules())
    return rules


def _register_builtin() -> None:
    from . import albert, bert, deberta_v2, distilbert, electra, modernbert, multiexit

    for module in (bert, distilbert, albert, electra, deberta_v2, modernbert, multiexit):
        register_architecture(module.ARCHITECTURE)


_register_builtin()
