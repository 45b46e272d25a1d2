"""Multi-exit fine-tuning helpers: two-stage training and per-exit model selection."""

from __future__ import annotations

import numpy as np

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
    logits = np.asarray(all_logits)
    if logits.ndim != 3:
        raise ValueError(f"expected all_logits (batch, exits, labels), got shape {logits.shape}")
    return per_exit_metrics(logits, labels)


# ------------------------------------------------------------------------------------------- Trainer metrics


def _exit_logits(predictions):
    """The (batch, exits, labels) array among what a model returned (3-D), else its (batch, labels) logits."""
    items = predictions if isinstance(predictions, (tuple, list)) else (predictions,)
    arrays = [a for a in items if a is not None and getattr(a, "ndim", 0) in (2, 3)]
    for wanted in (3, 2):
        found = next((a for a in arrays if a.ndim == wanted), None)
        if found is not None:
            return found[:, None] if wanted == 2 else found
    raise ValueError(
        "no logits among the predictions: expected (batch, exits, labels) or (batch, labels) arrays, got "
        f"{[getattr(a, 'shape', type(a).__name__) for a in items]}"
    )


def preprocess_logits_for_metrics(logits, labels=None):
    """For ``Trainer(preprocess_logits_for_metrics=...)``: keep only the per-exit logits (batch, exits, labels).

    An ElasticBERT returns ``(logits, exit_layer, all_logits, exit_losses)`` to the Trainer; keeping one array saves
    memory and gives :func:`compute_metrics` (or any ``argmax(p.predictions, -1)`` code) a plain array.
    """
    return _exit_logits(logits)


def _exit_scores(preds, labels, task, regression: bool) -> dict[str, float]:
    from ..elue.score.metrics import accuracy, pearson, spearman, task_metric

    if task is not None:
        scores = task_metric(task, preds, labels)
        scores.pop("score")
        return scores
    if regression:
        out = {"pearson": pearson(preds, labels), "spearmanr": spearman(preds, labels)}
        return {**out, "corr": (out["pearson"] + out["spearmanr"]) / 2.0}
    return {"accuracy": accuracy(preds, labels)}


def per_exit_metrics(all_logits, labels, task=None, exit_layers=None) -> dict[str, float]:
    """Metrics (x100) of every exit plus their average: ``exit_<layer>_<metric>`` and ``average_exit_<metric>``.

    Args:
        all_logits: (batch, exits, labels) logits; (batch, 1, 1) or (batch, exits, 1) is regression.
        labels: (batch,) gold labels.
        task: an ELUE task (name or ``ElueTask``) for its metrics (acc / acc and F1 / Pearson-Spearman); default
            accuracy for classification and Pearson/Spearman (``corr``) for regression.
        exit_layers: 1-based layer of each exit (default 1..exits).
    """
    logits = np.asarray(all_logits, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if logits.ndim == 2:
        logits = logits[:, None]
    if logits.ndim != 3 or logits.shape[0] != labels.shape[0]:
        raise ValueError(f"expected logits (batch, exits, labels) matching {labels.shape[0]} labels, got "
                         f"{logits.shape}")
    layers = list(exit_layers) if exit_layers is not None else list(range(1, logits.shape[1] + 1))
    if len(layers) != logits.shape[1]:
        raise ValueError(f"{len(layers)} exit_layers for {logits.shape[1]} exits")
    regression = logits.shape[2] == 1
    out: dict[str, float] = {}
    per_metric: dict[str, list[float]] = {}
    for j, layer in enumerate(layers):
        preds = logits[:, j, 0] if regression else logits[:, j].argmax(-1)
        for name, value in _exit_scores(preds, labels, task, regression).items():
            out[f"exit_{layer}_{name}"] = value
            per_metric.setdefault(name, []).append(value)
    for name, values in per_metric.items():
        out[f"average_exit_{name}"] = float(np.mean(values))
    return out


def make_compute_metrics(task=None, exit_layers=None):
    """A ``Trainer(compute_metrics=...)`` function reporting every exit's metric and their average.

    Works with the raw ElasticBERT predictions (the tuple ``(logits, exit_layer, all_logits, exit_losses)``), with
    :func:`preprocess_logits_for_metrics` output, and with plain (batch, labels) logits of any classifier.
    """

    def compute(eval_pred) -> dict[str, float]:
        predictions, labels = eval_pred.predictions, eval_pred.label_ids
        if isinstance(labels, (tuple, list)):
            labels = labels[0]
        return per_exit_metrics(_exit_logits(predictions), labels, task, exit_layers)

    return compute


#: ``Trainer(compute_metrics=compute_metrics)``: per-exit accuracy (classification) or correlation (regression)
compute_metrics = make_compute_metrics()
