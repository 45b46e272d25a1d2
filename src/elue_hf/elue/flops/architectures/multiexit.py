"""Multi-exit models over another family (``model_type="multiexit"``, :mod:`elue_hf.multiexit`): the backbone
family's own rule with an exit on each of ``config.exit_layers``. Each exit is the family's head (pooler dense d x d,
ModernBERT's head LayerNorm) plus a classifier; ModernBERT's final LayerNorm runs over the n tokens before every exit
evaluated (the exits read the normed states)."""

from __future__ import annotations

from dataclasses import replace

from ._common import labels_of
from .registry import Architecture, encoder_shape
from .shape import EncoderShape, ExitShape

__all__ = ["ARCHITECTURE"]


def _shape(config, num_labels=None) -> EncoderShape:
    labels = labels_of(config, num_labels)
    base = encoder_shape(config.backbone_config, labels)
    head = ExitShape(base.hidden, labels, pooler=True, norm=bool(getattr(config, "pooler_norm", False)))
    return replace(base, family=f"multiexit-{base.family}", exit=head, exit_layers=tuple(config.exit_layers))


ARCHITECTURE = Architecture("multiexit", ("multiexit",), _shape, lambda: {})
