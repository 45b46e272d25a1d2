"""ELUE operating points of an exported ONNX bundle (``elue-hf export``), run by ONNX Runtime with its exits.

``elue-hf evaluate --model BUNDLE`` and ``elue-hf verify`` (a submission whose model folder is a bundle) run the
bundle through :class:`elue_hf.deploy.OnnxElasticBertForSequenceClassification`, the runtime a deployment uses: each
operating point is one pass over the data in which rows really leave at their exits (the PyTorch route derives every
point from one full pass instead, :func:`.inference.derive_exits`; the two decide alike, which the deploy fidelity
tests check). ELUE's FLOPs and parameters of a bundle are those of its source model's exits: ELUE counts operations
and parameters, not bits, so an int8 bundle counts as its fp32 source. They are read from the ``config.json`` the
bundle carries, on a skeleton of that config built on PyTorch's ``meta`` device (no weights are read or allocated).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from ..elue.data import tokenize_examples
from ..elue.flops.architectures import flops_shape
from ..elue.inference import ExitSetting, PointOutputs, _decode, check_settings
from ..elue.tasks import ElueTask

__all__ = ["BUNDLE_FILE", "ExportedBundle", "is_bundle", "load_bundle", "bundle_exit_options", "run_bundle_points",
           "bundle_throughput"]

BUNDLE_FILE = "elue_deploy.json"  # what `elue-hf export` writes next to the graphs (elue_hf.deploy.bundle)


@dataclass
class ExportedBundle:
    """A bundle ready to run: the ONNX Runtime model, the source model's transformers ``config`` and its
    ``skeleton`` (the same architecture on the meta device: parameter counts and the FLOPs module spec)."""

    folder: Path
    runtime: Any  # OnnxElasticBertForSequenceClassification
    config: Any
    skeleton: Any

    @property
    def exit_layers(self) -> list[int]:
        return list(self.runtime.exit_layers)


def is_bundle(path) -> bool:
    """Whether ``path`` is a folder written by ``elue-hf export`` (it holds ``elue_deploy.json``)."""
    return Path(str(path)).is_dir() and (Path(str(path)) / BUNDLE_FILE).is_file()


def load_bundle(folder, threads: int | None = None) -> ExportedBundle:
    """Open the bundle's ONNX Runtime sessions and build the source model's skeleton from its ``config.json``."""
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    import elue_hf  # noqa: F401  (registers ElasticBERT with the Auto classes)

    from ..deploy import OnnxElasticBertForSequenceClassification

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise ValueError(f"bundle {folder} has no config.json (the source model's config, which ELUE's FLOPs need); "
                         "re-export it with `elue-hf export`")
    try:
        runtime = OnnxElasticBertForSequenceClassification.from_pretrained(folder, threads=threads)
    except ImportError:
        raise ValueError("running an exported bundle needs onnxruntime: pip install \"elue-hf[onnx]\"") from None
    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    with torch.device("meta"):
        skeleton = AutoModelForSequenceClassification.from_config(config)
    if list(runtime.exit_layers) != list(flops_shape(config).exit_layers):
        raise ValueError(f"bundle {folder}: elue_deploy.json names exits {runtime.exit_layers} but config.json "
                         f"{flops_shape(config).exit_layers}; re-export it")
    return ExportedBundle(folder, runtime, config, skeleton.eval())


def bundle_exit_options(setting: ExitSetting) -> dict:
    """The runtime's per-call exit options of an operating point (patience 0 = no early exit, as in PyTorch)."""
    if setting.exit == "static":
        return {"exit_criterion": "static", "exit_layer": int(setting.value)}
    if setting.exit == "entropy":
        return {"exit_criterion": "entropy", "entropy_threshold": float(setting.value)}
    return {"exit_criterion": "patience", "patience": int(setting.value)}


def _encoded_batches(tokenizer, dataset, task: ElueTask, max_length: int, batch_size: int):
    """``[(input_ids, attention_mask, token_type_ids)]`` int64 arrays, one padded tuple per batch."""
    batches = []
    for start in range(0, len(dataset), batch_size):
        enc = tokenize_examples(tokenizer, task, dataset[start : start + batch_size], max_length, padding=True,
                                return_tensors="np")
        ids = enc["input_ids"].astype(np.int64)
        types = enc.get("token_type_ids")
        batches.append((ids, enc["attention_mask"].astype(np.int64),
                        np.zeros_like(ids) if types is None else types.astype(np.int64)))
    return batches


def run_bundle_points(bundle: ExportedBundle, tokenizer, dataset, task: ElueTask,
                      settings: Sequence[ExitSetting] | None = None, max_length: int = 128, batch_size: int = 32,
                      progress: Callable[..., Iterable] | None = None) -> list[PointOutputs]:
    """One :class:`PointOutputs` per operating point (default: every exit, static), each from its own pass of the
    bundle's batched early exit over ``dataset``."""
    progress = progress or (lambda it, **kw: it)
    dims = flops_shape(bundle.config)
    settings = list(dict.fromkeys(settings or [ExitSetting("static", k) for k in dims.exit_layers]))
    check_settings(settings, dims, True, task.is_regression)
    batches = _encoded_batches(tokenizer, dataset, task, max_length, batch_size)
    lengths = [int(n) for _, mask, _ in batches for n in mask.sum(-1)]
    points = []
    for s in settings:
        logits, layers = [], []
        for ids, mask, types in progress(batches, desc=f"{task.name}: {s.label} (ONNX Runtime)", unit="batch"):
            out = bundle.runtime.forward(ids, mask, types, **bundle_exit_options(s))
            logits.append(out.logits)
            layers.append(out.exit_layer)
        extra = {"layers": int(s.value)} if s.exit == "static" else {"exit": s.exit, "value": s.value}
        points.append(PointOutputs(s.label, s.mode, _decode(task, np.concatenate(logits)),
                                   [int(k) for k in np.concatenate(layers)], lengths, extra))
    return points


def bundle_throughput(bundle: ExportedBundle, tokenizer, dataset, task: ElueTask, max_length: int,
                      sizes=(1, 32), rows: int = 64, **exit_options) -> dict:
    """Instances per second of the bundle's exit loop (its default exit options unless given) at each batch size
    over the first ``rows`` instances; tokenization is done before the clock starts."""
    subset = dataset.select(range(min(rows, len(dataset))))
    out = {}
    for size in sizes:
        batches = _encoded_batches(tokenizer, subset, task, max_length, size)
        bundle.runtime.forward(*batches[0], **exit_options)  # warm-up: ONNX Runtime allocates on the first call
        start = time.perf_counter()
        for batch in batches:
            bundle.runtime.forward(*batch, **exit_options)
        out[f"batch_{size}"] = len(subset) / (time.perf_counter() - start)
    return out
