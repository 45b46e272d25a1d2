"""Run a classifier over an ELUE test set and turn its outputs into submission files (used by the CLI and demo).

ElasticBERT models give one operating point per static depth (every exit read from one full pass, as a static-k
model would compute it) or per early-exit threshold (the model's own batched early-exit forward); other BERT-family
classifiers give one full-depth point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from ..multi_exit import multi_exit_backbone
from .data import tokenize_examples
from .flops import ModelDims, model_flops
from .flops.architectures import flops_shape
from .flops.module_spec import encoder_modules, module_spec_from_config
from .flops.params import count_parameters
from .submission import PredictionFile
from .tasks import get_task

__all__ = ["PointOutputs", "is_elasticbert", "run_operating_points", "point_params", "to_prediction_file"]


@dataclass
class PointOutputs:
    """What one operating point produced on the evaluated rows (index order)."""

    label: str
    mode: str  # "static" or "dynamic"
    predictions: list
    exit_layers: list[int]
    lengths: list[int]
    setting: dict = field(default_factory=dict)  # e.g. {"exit": "entropy", "threshold": 0.3} or {"layers": 3}


def is_elasticbert(model) -> bool:
    return getattr(getattr(model, "config", None), "model_type", None) == "elasticbert"


def _batches(dataset, batch_size: int) -> Iterable[dict]:
    for start in range(0, len(dataset), batch_size):
        yield dataset[start : start + batch_size]


def _decode(task, logits):
    return logits[..., 0].tolist() if task.is_regression else logits.argmax(-1).tolist()


def run_operating_points(
    model,
    tokenizer,
    dataset,
    task,
    exit: str = "static",
    sweep: Sequence[float] | None = None,
    max_length: int = 128,
    batch_size: int = 32,
    progress: Callable[..., Iterable] | None = None,
) -> list[PointOutputs]:
    """Evaluate ``model`` on ``dataset`` (our columns) and return one :class:`PointOutputs` per operating point.

    ``exit="static"``: ``sweep`` = depths (default: every exit of an ElasticBERT, the full depth otherwise);
    ``"entropy"`` / ``"patience"``: ``sweep`` = thresholds / patience values (ElasticBERT only).
    """
    import torch

    task = get_task(task)
    progress = progress or (lambda it, **kw: it)
    elastic = is_elasticbert(model)
    if exit not in ("static", "entropy", "patience"):
        raise ValueError(f"exit must be static, entropy or patience, got {exit!r}")
    if exit != "static" and not elastic:
        raise ValueError(f"--exit {exit} needs an ElasticBERT model (config.model_type 'elasticbert')")
    if exit == "entropy" and task.is_regression:
        raise ValueError("entropy-based exit is undefined for regression (STS-B)")
    dims = flops_shape(model)  # ModelDims, a family's EncoderShape, or the generic route
    model.eval()
    if exit == "static":
        depths = [int(k) for k in (sweep or (dims.exit_layers if elastic else [dims.num_layers]))]
        bad = [k for k in depths if k not in (dims.exit_layers if elastic else [dims.num_layers])]
        if bad:
            raise ValueError(f"static depths {bad} have no exit; available: {list(dims.exit_layers)}")
        runs = [("static", None)]
    else:
        if not sweep:
            raise ValueError(f"--exit {exit} needs --sweep values (thresholds or patience counts)")
        runs = [(exit, v) for v in sweep]
    results: dict = {}
    lengths: list[int] = []
    with torch.no_grad():
        for batch in progress(list(_batches(dataset, batch_size)), desc=f"{task.name} ({exit})"):
            enc = tokenize_examples(tokenizer, task, batch, max_length, padding=True, return_tensors="pt")
            lengths += enc["attention_mask"].sum(-1).tolist()
            for criterion, value in runs:
                if criterion == "static":
                    out = model(**enc)
                    all_logits = getattr(out, "all_logits", None)
                    for k in depths:
                        logits = out.logits if all_logits is None else all_logits[:, dims.exit_layers.index(k)]
                        results.setdefault(("static", k), ([], []))[0].extend(_decode(task, logits))
                        results[("static", k)][1].extend([k] * logits.shape[0])
                    continue
                kwargs = {"exit_criterion": criterion}
                kwargs["entropy_threshold" if criterion == "entropy" else "patience"] = (
                    float(value) if criterion == "entropy" else int(value)
                )
                out = model(**enc, **kwargs)
                preds, layers = results.setdefault((criterion, value), ([], []))
                preds.extend(_decode(task, out.logits))
                layers.extend(out.exit_layer.tolist())
    points = []
    for (criterion, value), (preds, layers) in results.items():
        if criterion == "static":
            points.append(PointOutputs(f"static k={value}", "static", preds, layers, lengths, {"layers": value}))
        else:
            label = f"{criterion} {'H<' if criterion == 'entropy' else 'p='}{value}"
            points.append(PointOutputs(label, "dynamic", preds, layers, lengths,
                                       {"exit": criterion, "value": value}))
    return points


def _count(module) -> int:
    return 0 if module is None else count_parameters(module)


def point_params(model, point: PointOutputs) -> int:
    """Parameters an instance of this operating point can use (ELUE): see :func:`operating_point_params`."""
    return operating_point_params(model, point.mode, point.setting.get("layers"))


def operating_point_params(model, mode: str, layers: int | None = None) -> int:
    """A static-k point of a multi-exit ElasticBERT counts embeddings + k layers + exit k (what a static-k model
    holds); dynamic points and other models count the whole model."""
    if not (is_elasticbert(model) and mode == "static" and not model.is_static and layers is not None):
        return count_parameters(model)
    k = int(layers)
    body = multi_exit_backbone(model)
    j = body.encoder.exit_layer_indices.index(k - 1)
    return (
        _count(body.embeddings)
        + sum(_count(module) for module in body.encoder.exit_modules(k - 1))
        + _count(model.classifiers[j])
    )


def to_prediction_file(point: PointOutputs, task, dims: ModelDims, params: int | None = None,
                       max_seq_length: int | None = None) -> PredictionFile:
    """A :class:`PredictionFile` whose ``modules`` column lists what each instance ran (generic route: a
    self-reported ``flops`` column instead)."""
    if getattr(dims, "route", None) == "generic":
        return PredictionFile(task=get_task(task).key, predictions=point.predictions, flops=dims.mflops(point.lengths),
                              label=point.label, params=params, max_seq_length=max_seq_length)
    modules = [encoder_modules(dims, n, k, point.mode) for n, k in zip(point.lengths, point.exit_layers)]
    return PredictionFile(task=get_task(task).key, predictions=point.predictions, modules=modules, label=point.label,
                          params=params, max_seq_length=max_seq_length)


def point_mflops(point: PointOutputs, config) -> np.ndarray:
    """Per-instance MFLOPs of a point (analytic ELUE rule; ``config`` may also be a generic-route shape)."""
    if getattr(config, "route", None) == "generic":
        return config.mflops(point.lengths)
    return np.asarray(model_flops(config, np.asarray(point.lengths), np.asarray(point.exit_layers), point.mode))


def submission_spec(model) -> dict | None:
    """The declarative module spec (None on the generic route: its FLOPs are self-reported)."""
    shape = flops_shape(model)
    return None if getattr(shape, "route", None) == "generic" else module_spec_from_config(shape)


__all__ += ["point_mflops", "submission_spec", "operating_point_params"]
