"""What the ``make demo`` sections share (the demo itself is in :mod:`elue_hf.demo`).

Each area contributes a section ``run(ctx: DemoContext) -> None`` that trains/evaluates on the embedded data,
prints its own table and appends its operating points to ``ctx.points`` for the shared Pareto plot.
"""

from __future__ import annotations

import random
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
                  desc: str = "fine-tune") -> list[float]:
        """The demo's recipe on ``self.data["train"]``: AdamW, 6 % linear warm-up, grad-clip 1, and the exit heads
        (poolers, classifiers: untrained, only MiniLM's top pooler exists) at ``head_lr_scale`` times the step size.
        Returns the loss of every step."""
        from ..training import OptimizerSettings, param_groups, train_steps

        groups = param_groups(model, learning_rate, head_lr_scale,
                              is_head=lambda n: ".pooler." in n or n.startswith(("classifier", "classifiers")))
        bar = self.progress(range(steps), desc=desc, unit="step")

        def show(step: int, loss: float, batch: dict) -> None:
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{loss:.3f}")

        settings = OptimizerSettings(steps=steps, learning_rate=learning_rate, warmup=max(1, int(0.06 * steps)))
        return train_steps(model, self.training_batches(self.data["train"], batch_size), settings, groups=groups,
                           progress=lambda _: bar, on_step=show)

    def training_batches(self, dataset, batch_size: int) -> Iterator[dict]:
        """Endless labelled batches of ``dataset`` (a ``sentence``/``label`` slice) in one seeded shuffled order:
        batch i holds rows ``order[(i * batch_size + j) % len(order)]``, j < batch_size."""
        import torch

        order = list(range(len(dataset)))
        random.Random(self.seed).shuffle(order)
        step = 0
        while True:
            rows = dataset.select([order[(step * batch_size + j) % len(order)] for j in range(batch_size)])
            yield {**self.encode(rows["sentence"]), "labels": torch.tensor(list(rows["label"]))}
            step += 1
