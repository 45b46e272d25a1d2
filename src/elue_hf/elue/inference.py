"""Run a classifier over an ELUE test set and turn its outputs into submission files (used by the CLI and demo).

ElasticBERT models are run **once** with every exit: each operating point -- a static depth, an entropy threshold or
a patience count -- is then derived from the per-exit logits (the decision the model's own batched early exit would
take, see :func:`derive_exits`), so a sweep of any size costs about one full pass. Other BERT-family classifiers
give one full-depth point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from ..multi_exit import is_multi_exit_model, multi_exit_backbone
from .data import tokenize_examples
from .flops import ModelDims
from .flops.architectures import flops_shape
from .flops.module_spec import encoder_modules, module_spec_from_config, with_embedding_sizes
from .flops.params import count_parameters
from .submission import PredictionFile
from .tasks import ElueTask

__all__ = [
    "EXIT_MODES",
    "ExitSetting",
    "PointOutputs",
    "is_elasticbert",
    "exit_settings",
    "check_settings",
    "derive_exits",
    "full_pass",
    "run_operating_points",
    "point_params",
    "to_prediction_file",
    "rerun_settings",
]

EXIT_MODES = ("static", "entropy", "patience")


@dataclass(frozen=True)
class ExitSetting:
    """One operating point to evaluate: a static depth ``k``, an entropy threshold or a patience count."""

    exit: str  # "static", "entropy" or "patience"
    value: float

    @property
    def label(self) -> str:
        """``static k=3``, ``entropy 0.30``, ``patience 1``."""
        if self.exit == "static":
            return f"static k={int(self.value)}"
        if self.exit == "patience":
            return f"patience {int(self.value)}"
        v = float(self.value)
        return f"entropy {v:.2f}" if round(v, 2) == v else f"entropy {v:g}"

    @property
    def mode(self) -> str:
        return "static" if self.exit == "static" else "dynamic"


@dataclass
class PointOutputs:
    """What one operating point produced on the evaluated rows (index order)."""

    label: str
    mode: str  # "static" or "dynamic"
    predictions: list
    exit_layers: list[int]
    lengths: list[int]
    setting: dict = field(default_factory=dict)  # e.g. {"exit": "entropy", "value": 0.3} or {"layers": 3}


def is_elasticbert(model) -> bool:
    """Whether ``model`` is a multi-exit classifier of the package (ElasticBERT or ``model_type="multiexit"``)."""
    return is_multi_exit_model(model)


def exit_settings(exit: str = "static", sweep: Sequence[float] | None = None) -> list[ExitSetting]:
    """Settings of one exit mode (``sweep`` = depths, thresholds or patience counts; static without a sweep = [])."""
    if exit not in EXIT_MODES:
        raise ValueError(f"exit must be one of {', '.join(EXIT_MODES)}, got {exit!r}")
    if exit != "static" and not sweep:
        raise ValueError(f"--{exit} needs values (thresholds or patience counts)")
    return [ExitSetting(exit, v) for v in (sweep or [])]


def check_settings(settings: Sequence[ExitSetting], dims, elastic: bool, regression: bool) -> None:
    """Raise ``ValueError`` naming the first setting this model cannot run."""
    exits = list(dims.exit_layers)
    for s in settings:
        if s.exit not in EXIT_MODES:
            raise ValueError(f"exit must be one of {', '.join(EXIT_MODES)}, got {s.exit!r}")
        if s.exit == "static":
            if float(s.value) != int(s.value) or int(s.value) not in exits:
                raise ValueError(f"static depth {s.value:g} has no exit; available: {exits}")
            continue
        if not elastic:
            raise ValueError(f"--{s.exit} needs an ElasticBERT or another multi-exit model (elue-hf convert makes one)")
        if len(exits) == 1:
            raise ValueError(f"--{s.exit} needs a multi-exit ElasticBERT; this one has a single exit (static)")
        if s.exit == "entropy":
            if regression:
                raise ValueError("entropy-based exit is undefined for regression (STS-B); use --patience")
            if not np.isfinite(s.value) or s.value < 0:
                raise ValueError(f"entropy thresholds must be finite numbers >= 0, got {s.value:g}")
        elif float(s.value) != int(s.value) or not 0 <= int(s.value) < len(exits):
            raise ValueError(f"patience must be an integer between 0 and {len(exits) - 1} (the model has "
                             f"{len(exits)} exits), got {s.value:g}")


def derive_exits(all_logits, exit_layers: Sequence[int], setting: ExitSetting, regression_threshold: float = 0.0,
                 decide: Callable | None = None):
    """Exit layer (1-based) and logits of each row for ``setting``, from every exit's logits of one full pass.

    ``all_logits`` is (rows, exits, labels). Entropy and patience take the decision of the model's batched early
    exit (``ElasticBertForSequenceClassification(..., exit_criterion=...)``): the first exit whose entropy is below
    the threshold / whose prediction agreed with the previous ``patience`` exits (for regression: differed by less
    than ``regression_threshold``); patience 0 means no early exit. ``decide`` is that rule, taken from the model
    (``model.exit_layers_from_logits``, so ELUE needs no import of the model code); static depths do without it.
    Returns ``(layers, logits)`` tensors.
    """
    import torch

    exit_layers = [int(k) for k in exit_layers]
    rows = all_logits.shape[0]
    if setting.exit == "static":
        layers = torch.full((rows,), int(setting.value), dtype=torch.long)
    elif setting.exit == "patience" and int(setting.value) == 0:
        layers = torch.full((rows,), exit_layers[-1], dtype=torch.long)
    else:
        kwargs = ({"entropy_threshold": float(setting.value)} if setting.exit == "entropy"
                  else {"patience": int(setting.value), "regression_threshold": float(regression_threshold)})
        if decide is None:
            raise ValueError(f"--{setting.exit} needs the model's early-exit rule: pass "
                             "decide=model.exit_layers_from_logits (a multi-exit model)")
        layers = decide(all_logits, exit_layers, setting.exit, **kwargs)
    index = torch.as_tensor([exit_layers.index(int(k)) for k in layers.tolist()], dtype=torch.long)
    return layers, all_logits[torch.arange(rows), index]


def _decode(task: ElueTask, logits):
    return logits[..., 0].tolist() if task.is_regression else logits.argmax(-1).tolist()


def full_pass(model, tokenizer, dataset, task: ElueTask, max_length: int = 128, batch_size: int = 32,
              progress: Callable[..., Iterable] | None = None, after_batch: Callable | None = None):
    """Every exit's logits ``(rows, exits, labels)`` (float32, CPU) and the token lengths of ``dataset``.
    ``after_batch(model)`` runs after each batch's forward (e.g. to read HashEE's active-token counts)."""
    import torch

    progress = progress or (lambda it, **kw: it)
    model.eval()
    chunks, lengths = [], []
    batches = range(0, len(dataset), batch_size)
    with torch.no_grad():
        for start in progress(batches, desc=f"{task.name}: all exits", unit="batch"):
            batch = dataset[start : start + batch_size]
            enc = tokenize_examples(tokenizer, task, batch, max_length, padding=True, return_tensors="pt")
            enc = {k: v.to(model.device) for k, v in enc.items()}
            out = model(**enc)
            if after_batch is not None:
                after_batch(model)
            logits = getattr(out, "all_logits", None)
            chunks.append((out.logits[:, None] if logits is None else logits).float().cpu())
            lengths += enc["attention_mask"].sum(-1).tolist()
    return torch.cat(chunks), lengths


def run_operating_points(
    model,
    tokenizer,
    dataset,
    task: ElueTask,
    exit: str = "static",
    sweep: Sequence[float] | None = None,
    max_length: int = 128,
    batch_size: int = 32,
    progress: Callable[..., Iterable] | None = None,
    settings: Sequence[ExitSetting] | None = None,
) -> list[PointOutputs]:
    """Evaluate ``model`` on ``dataset`` (our columns) and return one :class:`PointOutputs` per operating point.

    ``settings`` (any mix of static depths, entropy thresholds and patience counts) wins over the older
    ``exit`` + ``sweep`` pair. Without either: every exit of an ElasticBERT, the full depth otherwise. The model
    runs once over the data whatever the number of settings (see :func:`derive_exits`).
    """
    elastic = is_elasticbert(model)
    dims = flops_shape(model)  # ModelDims, a family's EncoderShape, or the generic route
    settings = list(dict.fromkeys(settings if settings is not None else exit_settings(exit, sweep)))
    if not settings:
        settings = [ExitSetting("static", k) for k in dims.exit_layers]
    check_settings(settings, dims, elastic, task.is_regression)
    all_logits, lengths = full_pass(model, tokenizer, dataset, task, max_length, batch_size, progress)
    if all_logits.shape[1] != len(dims.exit_layers):
        raise ValueError(f"the model returned {all_logits.shape[1]} exits' logits, its config declares "
                         f"{len(dims.exit_layers)}")
    threshold = float(getattr(model.config, "regression_threshold", 0.0) or 0.0)
    decide = getattr(model, "exit_layers_from_logits", None)  # the model's own early-exit rule (multi-exit models)
    points = []
    for s in settings:
        layers, logits = derive_exits(all_logits, dims.exit_layers, s, threshold, decide)
        extra = {"layers": int(s.value)} if s.exit == "static" else {"exit": s.exit, "value": s.value}
        points.append(PointOutputs(s.label, s.mode, _decode(task, logits), layers.tolist(), list(lengths), extra))
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


def rerun_settings(point: PointOutputs) -> dict:
    """The exit settings a verifier needs to re-run this point (``settings`` of a submission file, docs/elue.md)."""
    if "layers" in point.setting:
        return {"exit": "static", "layers": int(point.setting["layers"])}
    return {"exit": point.setting["exit"], "value": point.setting["value"]}


def to_prediction_file(point: PointOutputs, task: ElueTask, dims: ModelDims, params: int | None = None,
                       max_seq_length: int | None = None) -> PredictionFile:
    """A :class:`PredictionFile` whose ``modules`` column lists what each instance ran (generic route: a
    self-reported ``flops`` column instead), with the exit settings that re-run it."""
    common = dict(task=task.key, predictions=point.predictions, label=point.label, params=params,
                  max_seq_length=max_seq_length, settings=rerun_settings(point) if point.setting else None)
    if getattr(dims, "route", None) == "generic":
        return PredictionFile(flops=dims.mflops(point.lengths), **common)
    modules = [encoder_modules(dims, n, k, point.mode) for n, k in zip(point.lengths, point.exit_layers)]
    return PredictionFile(modules=modules, **common)


def point_mean_mflops(model, point: PointOutputs) -> float:
    """ELUE's mean MFLOPs of a point of ``model`` (or its config): each row's modules up to the exit it took, read
    with the model's module spec (exactly as a submission's ``modules`` column is scored)."""
    from .flops.module_spec import modules_macs_column
    from .submission.format import _mean_from_macs

    config = getattr(model, "config", model)
    dims = flops_shape(config)  # ModelDims (BERT layers) or the family's EncoderShape (multi-exit models)
    modules = [encoder_modules(dims, int(n), int(k), point.mode) for n, k in zip(point.lengths, point.exit_layers)]
    return _mean_from_macs(modules_macs_column(modules, module_spec_from_config(config)))


def submission_spec(model) -> dict | None:
    """The declarative module spec (None on the generic route: its FLOPs are self-reported)."""
    shape = flops_shape(model)
    if getattr(shape, "route", None) == "generic":
        return None
    return with_embedding_sizes(module_spec_from_config(shape), model.config)


__all__ += ["submission_spec", "operating_point_params", "point_mean_mflops"]
