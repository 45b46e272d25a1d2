"""Per-family adapters of the multi-exit model (see :mod:`.base` for the contract)."""

from __future__ import annotations

from .base import BackboneAdapter
from .bert_like import ElectraAdapter, RobertaAdapter
from .deberta_v2 import DebertaV2Adapter
from .distilbert import DistilBertAdapter
from .modernbert import ModernBertAdapter

__all__ = ["BackboneAdapter", "ADAPTERS", "adapter_for", "supported_model_types"]

ADAPTERS: dict[str, BackboneAdapter] = {
    model_type: adapter
    for adapter in (RobertaAdapter(), ElectraAdapter(), DistilBertAdapter(), DebertaV2Adapter(), ModernBertAdapter())
    for model_type in adapter.model_types
}


def supported_model_types() -> tuple[str, ...]:
    """Backbones a multi-exit model can be built on (``bert`` becomes an ElasticBERT instead)."""
    return tuple(ADAPTERS)


def adapter_for(model_type: str | None) -> BackboneAdapter:
    adapter = ADAPTERS.get(model_type or "")
    if adapter is None:
        raise ValueError(
            f"no multi-exit adapter for model_type {model_type!r}; supported: bert (as ElasticBERT), "
            f"{', '.join(ADAPTERS)}"
        )
    return adapter
