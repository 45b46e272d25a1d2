"""Multi-exit fine-tuning helpers: two-stage training and per-exit model selection."""

from __future__ import annotations

import numpy as np
import torch

from .modeling_elasticbert import ElasticBertForSequenceClassification


def set_training_stage(model: ElasticBertForSequenceClassification, stage: int) -> None:
    """Switch a dynamic model to two-stage (DeeBERT-style) training and freeze what the stage must not change.

    Stage 1 trains the backbone and the top exit (loss of the last exit only). Stage 2 freezes the backbone and the
    top exit and trains the internal exits (their poolers and classifiers; loss = sum of the internal exits).
    """
    if stage not in (1, 2):
        raise ValueError(f"stage must be 1 or 2, got {stage!r}")
    if model.is_static:
        raise ValueError("two-stage training needs a multi-exit model (num_output_layers > 1)")
    model.config.multi_exit_training = "two_stage"
    model.config.training_stage = stage
    encoder = model.elasticbert.encoder
    internal_layers = encoder.exit_layer_indices[:-1]
    for param in model.parameters():
        param.requires_grad = stage == 1
    if stage == 1:
        for i in internal_layers:
            encoder.pooler[i].requires_grad_(False)
        for head in model.classifiers[:-1]:
            head.requires_grad_(False)
    else:
        for i in internal_layers:
            encoder.pooler[i].requires_grad_(True)
        for head in model.classifiers[:-1]:
            head.requires_grad_(True)


def exit_metrics(all_logits, labels) -> dict[str, float]:
    """Accuracy (x100) of every exit and their average, the original's model-selection criterion.

    ``all_logits`` is (batch, num_exits, num_labels) as returned in ``ElasticBertSequenceClassifierOutput``.
    """
    logits = torch.as_tensor(np.asarray(all_logits))
    labels = torch.as_tensor(np.asarray(labels))
    if logits.ndim != 3 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"expected all_logits (batch, exits, labels) matching {labels.shape[0]} labels, got {tuple(logits.shape)}"
        )
    correct = (logits.argmax(-1) == labels[:, None]).float().mean(0) * 100
    out = {f"exit_{j + 1}_accuracy": float(v) for j, v in enumerate(correct)}
    out["average_exit_accuracy"] = float(correct.mean())
    return out
