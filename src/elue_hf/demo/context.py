"""What the ``make demo`` sections share (the demo itself is in :mod:`elue_hf.demo`).

Each area contributes a section ``run(ctx: DemoContext) -> None`` that trains/evaluates on the embedded data,
prints its own table and appends its operating points to ``ctx.points`` for the shared Pareto plot.
"""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator


@dataclass
class OperatingPoint:
    """One (quality, cost) point of the demo's Pareto plot."""

    method: str  # e.g. "ElasticBERT static", "ElasticBERT entropy", "HashEE", "LPT"
    label: str  # the setting, e.g. "k=3", "H<0.3"
    accuracy: float  # x100, on the held-out slice
    mean_flops: float | None = None  # MFLOPs per instance (ELUE rules), if known
    mean_exit_layer: float | None = None
    params: int | None = None  # parameters the instance can use (ELUE definition)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DemoContext:
    out_dir: Path
    tokenizer: Any  # the MiniLM tokenizer (BERT uncased WordPiece)
    data: Any  # datasets.DatasetDict with "train" / "validation" / "test" slices of the RT snippets
    model: Any  # fine-tuned ElasticBertForSequenceClassification (all exits trained), eval mode
    base_model_path: Path  # directory of the real MiniLM checkpoint
    max_length: int = 64
    seed: int = 0
    points: list[OperatingPoint] = field(default_factory=list)
    progress: Callable[..., Iterable] = lambda it, **kw: it  # tqdm-like
    dataset_name: str = "RT snippets (Pang & Lee), SST-2-like"
    artifacts: dict[str, Path] = field(default_factory=dict)  # files sections hand on, e.g. "elue_submission_zip"
    pooling: str = "cls"  # what the exits pool (ElasticBertConfig.pooling): "cls" or "mean" (the demo's default)
    quick: bool = False  # smoke-test mode (tests): sections should shrink their steps and slices
    timings: dict[str, tuple[float, float]] = field(default_factory=dict)  # section -> (wall s, CPU s), run order
    _features: dict = field(default_factory=dict, repr=False)  # token ids per data slice (see :meth:`features`)

    @contextmanager
    def timed(self, section: str):
        """Add the wall and CPU (process, all threads) seconds of the ``with`` block to ``timings[section]``."""
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            before = self.timings.get(section, (0.0, 0.0))
            self.timings[section] = (before[0] + time.perf_counter() - wall, before[1] + time.process_time() - cpu)

    def timing_table(self) -> str:
        """Wall and CPU seconds per section and the wall share, in the order the sections ran. CPU seconds count
        the work on every thread; on a busy machine the wall time grows, the CPU time much less."""
        wall = sum(w for w, _ in self.timings.values())
        width = max([7] + [len(name) for name in self.timings])
        lines = [f"{'section':<{width}} {'wall s':>8} {'share':>6} {'CPU s':>8}"]
        rows = [*self.timings.items(), ("total", (wall, sum(c for _, c in self.timings.values())))]
        lines += [f"{name:<{width}} {w:8.1f} {100 * w / (wall or 1.0):5.1f}% {c:8.1f}" for name, (w, c) in rows]
        return "\n".join(lines)

    def save_model(self) -> Path:
        """``self.model`` and the tokenizer under ``<out_dir>/model`` (``save_pretrained``: config + safetensors),
        loadable with ``AutoModelForSequenceClassification`` after ``import elue_hf``; saved once per run (the path is
        ``artifacts["model"]``)."""
        if "model" not in self.artifacts:
            path = self.out_dir / "model"
            self.model.save_pretrained(path)
            self.tokenizer.save_pretrained(path)
            self.artifacts["model"] = path
        return self.artifacts["model"]

    def encode(self, texts: list[str], text_pairs: list[str] | None = None) -> dict:
        """Tokenise a batch (dynamic padding, truncation at ``max_length``) into PyTorch tensors."""
        return self.tokenizer(
            list(texts),
            None if text_pairs is None else list(text_pairs),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )

    def fine_tune(self, model, steps: int, batch_size: int, learning_rate: float, head_lr_scale: float = 5.0,
                  desc: str = "fine-tune", group_by_length: bool = False, micro_batches: int = 1) -> list[float]:
        """The demo's recipe on ``self.data["train"]``: AdamW, 6 % linear warm-up, grad-clip 1, and the exit heads
        (poolers, classifiers: untrained, only MiniLM's top pooler exists) at ``head_lr_scale`` times the step size;
        batches from :meth:`training_batches`. Returns the loss of every step."""
        from ..training import OptimizerSettings, param_groups, train_steps

        groups = param_groups(model, learning_rate, head_lr_scale,
                              is_head=lambda n: ".pooler." in n or n.startswith(("classifier", "classifiers")))
        bar = self.progress(range(steps), desc=desc, unit="step")

        def show(step: int, loss: float, batch: dict) -> None:
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss:.3f}")

        settings = OptimizerSettings(steps=steps, learning_rate=learning_rate, warmup=max(1, int(0.06 * steps)))
        batches = self.training_batches(self.data["train"], batch_size, group_by_length, micro_batches)
        return train_steps(model, batches, settings, groups=groups,
                           progress=lambda _: bar, on_step=show)

    def features(self, dataset) -> list[dict]:
        """Token ids of every row of ``dataset`` (a ``sentence`` slice; truncation at ``max_length``, no padding),
        tokenised once per slice and kept for every later pass (cached by the slice's fingerprint)."""
        key = (getattr(dataset, "_fingerprint", None) or id(dataset), self.max_length)
        if key not in self._features:
            enc = self.tokenizer(list(dataset["sentence"]), truncation=True, max_length=self.max_length)
            self._features[key] = [{k: enc[k][i] for k in enc} for i in range(len(dataset))]
        return self._features[key]

    def _pad(self, rows: list[dict]) -> dict:
        return self.tokenizer.pad(rows, padding=True, return_tensors="pt")

    def eval_batches(self, dataset, batch_size: int = 64) -> tuple[list[int], list[dict]]:
        """Padded batches of ``dataset`` with the rows sorted by token length (little padding) and that order:
        ``order[i]`` is the dataset row of the i-th row across the batches (undo it with :func:`in_row_order`)."""
        features = self.features(dataset)
        order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        return order, [self._pad([features[i] for i in chunk]) for chunk in chunks]

    def training_batches(self, dataset, batch_size: int, group_by_length: bool = False,
                         micro_batches: int = 1) -> Iterator[dict | list[dict]]:
        """Endless labelled batches of ``dataset`` (a ``sentence``/``label`` slice), tokenised once.

        With ``group_by_length`` each epoch is a seeded permutation from transformers'
        ``get_length_grouped_indices`` (the ``Trainer``'s ``group_by_length``): rows of similar length share a batch
        (windows of 8 batches sorted by length), so padding costs little. Without it, batch i holds rows
        ``order[(i * batch_size + j) % len(order)]`` of one seeded shuffled order. With ``micro_batches > 1`` each
        batch comes as a list of that many parts of its rows sorted by length, each padded to its own longest row
        (:func:`elue_hf.training.train_steps` adds their row-weighted losses: the same update, less padding)."""
        import torch

        features, labels = self.features(dataset), list(dataset["label"])

        def padded(rows):
            return {**self._pad([features[i] for i in rows]), "labels": torch.tensor([labels[i] for i in rows])}

        for rows in _batch_rows(self._epoch_orders(features, batch_size, group_by_length), batch_size):
            if micro_batches == 1:
                yield padded(rows)
            else:
                rows = sorted(rows, key=lambda i: len(features[i]["input_ids"]))
                size = -(-len(rows) // micro_batches)
                yield [padded(rows[i : i + size]) for i in range(0, len(rows), size)]

    def _epoch_orders(self, features: list[dict], batch_size: int, group_by_length: bool) -> Iterator[list[int]]:
        import torch
        from transformers.trainer_pt_utils import get_length_grouped_indices

        if not group_by_length:
            order = list(range(len(features)))
            random.Random(self.seed).shuffle(order)
            while True:
                yield order
        lengths = [len(f["input_ids"]) for f in features]
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            yield get_length_grouped_indices(lengths, batch_size, mega_batch_mult=8, generator=generator)


def _batch_rows(orders: Iterator[list[int]], batch_size: int) -> Iterator[list[int]]:
    """Consecutive ``batch_size`` rows of the concatenated epoch orders (a batch may span two epochs)."""
    pending: list[int] = []
    for order in orders:
        pending += order
        while len(pending) >= batch_size:
            yield pending[:batch_size]
            pending = pending[batch_size:]


def in_row_order(order: list[int], values):
    """``values`` (an array or tensor, one row per dataset row, in the ``order`` of
    :meth:`DemoContext.eval_batches`) back in dataset row order."""
    inverse = sorted(range(len(order)), key=order.__getitem__)
    return values[inverse]
