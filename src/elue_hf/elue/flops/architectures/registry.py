"""The family registry: ``config.model_type`` -> :class:`Architecture` (how to read an :class:`.shape.EncoderShape`
and which hooked rules the family needs).

The family modules register into it (``architectures/__init__.py`` does so for the built-in ones) and the counting
routes look families up here; it imports only :mod:`.shape`, so nothing below the families depends on them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .shape import EncoderShape

__all__ = [
    "Architecture",
    "UnsupportedArchitecture",
    "register_architecture",
    "get_architecture",
    "registered_model_types",
    "encoder_shape",
    "architecture_rules",
    "needs_encoder_shape",
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


def needs_encoder_shape(config) -> bool:
    """True for configs of a registered non-BERT family (DistilBERT, ALBERT, DeBERTa-v2, ModernBERT...), whose FLOPs
    come from :func:`encoder_shape` rather than :class:`.bert.ModelDims`."""
    arch = get_architecture(getattr(config, "model_type", None))
    return arch is not None and arch.family != "bert"


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


def architecture_rules() -> dict:
    """Hooked-route rules of every registered family (module classes that cannot be imported are skipped)."""
    rules: dict = {}
    for arch in dict.fromkeys(_REGISTRY.values()):
        rules.update(arch.hook_rules())
    return rules
