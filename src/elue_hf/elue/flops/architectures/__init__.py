"""ELUE FLOPs for encoder classifier families beyond BERT, keyed by ``config.model_type``.

Each family module gives two things: ``shape_from_config`` (config -> :class:`.shape.EncoderShape`, the analytic
route and the module spec) and ``hook_rules`` (module classes -> counting rules of the hooked route,
:class:`..hooks.ElueFlopsCounter`). Families: BERT / RoBERTa / ElasticBERT (:mod:`.bert`), DistilBERT
(:mod:`.distilbert`), ALBERT (:mod:`.albert`), DeBERTa-v2 (:mod:`.deberta_v2`), ModernBERT (:mod:`.modernbert`).
Any other encoder goes through the generic route (:mod:`.generic`: ``FlopCounterMode`` + ELUE's extra terms),
flagged ``route="generic"``. XLM-RoBERTa and CamemBERT share the BERT rule; ELECTRA (:mod:`.electra`) is BERT with an
embedding projection. Multi-exit models over any of these (:mod:`.multiexit`) use their backbone's rule.

The families register into :mod:`.registry` (this file registers the built-in ones on import); they import the
registry, :mod:`.shape` and the leaf modules ``..primitives`` / ``..hook_call``, never ``..analytic`` or ``..hooks``,
which build on this package.
"""

from __future__ import annotations

from . import registry as _registry
from . import shape as _shape
from .bert import ModelDims, dims_from_config
from .registry import *  # noqa: F401,F403  (Architecture, UnsupportedArchitecture, the lookups)
from .registry import (
    UnsupportedArchitecture,
    encoder_shape,
    get_architecture,
    needs_encoder_shape,
    register_architecture,
)
from .shape import *  # noqa: F401,F403  (EncoderShape, LayerShape, ExitShape and the MACs functions)

__all__ = [*_registry.__all__, "ModelDims", "dims_from_config", "flops_shape", *_shape.__all__]


def flops_shape(model):
    """How ELUE counts ``model`` (or a config): BERT / RoBERTa / ElasticBERT -> :class:`.bert.ModelDims`; a
    registered family -> :class:`EncoderShape`; anything else (a model is then needed) -> a
    :class:`.generic.GenericShape` (``route == "generic"``: FlopCounterMode + ELUE's extra terms)."""
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


def _register_builtin() -> None:
    from . import albert, bert, deberta_v2, distilbert, electra, modernbert, multiexit

    for module in (bert, distilbert, albert, electra, deberta_v2, modernbert, multiexit):
        register_architecture(module.ARCHITECTURE)


_register_builtin()
