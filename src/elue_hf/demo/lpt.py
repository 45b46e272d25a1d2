"""``make demo`` section: few-shot LPT on the embedded MiniLM next to PEFT prompt tuning and full fine-tuning.

A stratified, seeded few-shot training set (``k`` examples in total, the LPT protocol) is drawn from the RT snippets;
each method trains for the same number of steps and is scored on the held-out slice. The MiniLM ships no MLM head, so
LPT runs in [CLS]-head mode (a classifier on BERT's pooler). Note: all-MiniLM-L6-v2 was further trained by
sentence-transformers on NLI / paraphrase / QA pairs, so this is not the paper's MLM-pre-trained RoBERTa-large
setting; the numbers compare methods on one small real model, they do not reproduce the paper.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..lpt.fewshot import few_shot_split
from .context import DemoContext, OperatingPoint, in_row_order

__all__ = ["DemoMethod", "demo_methods", "run"]

GROUP_BY_LENGTH = False  # one seeded order; length-grouped batches (cheaper) left LPT at prompt tuning (validation)


@dataclass
class DemoMethod:
    name: str
    label: str
    learning_rate: float
    build: object  # callable(base_model_path) -> model ready to train (trainable parameters set)


def _classifier(path):
    """The MiniLM with a fresh 2-way classifier (the expected "classifier MISSING" load report is silenced)."""
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        return AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    finally:
        logging.set_verbosity(verbosity)
        logging.enable_progress_bar()


def _with_peft(config_factory):
    def build(path):
        from peft import get_peft_model

        return get_peft_model(_classifier(path), config_factory())

    return build


def _lpt_config():
    from ..lpt.config import LPTConfig

    # NPG, prompt layer k = 3 of 6 (paper PL = 4: the "most intermediate" layer), l = 5, m = 128 as in the paper
    return LPTConfig(task_type="SEQ_CLS", prompt_layer=3, num_prompt_tokens=5, generator="npg", bottleneck_size=128)


def _prompt_tuning_config():
    from peft import PromptTuningConfig

    return PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20)


def demo_methods() -> list[DemoMethod]:
    """The compared methods (learning rates inside the paper's search ranges, fixed here: no tuning on test)."""
    return [
        DemoMethod("Full fine-tuning", "all", 5e-5, _classifier),
        DemoMethod("PEFT prompt tuning", "l=20", 3e-2, _with_peft(_prompt_tuning_config)),
        DemoMethod("LPT", "NPG k=3", 5e-3, _with_peft(_lpt_config)),  # l = 5, m = 128
    ]


def _count(model) -> tuple[int, int]:
    """(trainable, used) parameters; PEFT's frozen original of a ``modules_to_save`` head is not used (not counted)."""
    named = [(n, p) for n, p in model.named_parameters() if ".original_module." not in n]
    return sum(p.numel() for _, p in named if p.requires_grad), sum(p.numel() for _, p in named)


def _train(model, ctx: DemoContext, train, steps: int, batch_size: int, learning_rate: float, desc: str) -> float:
    """AdamW (weight decay 0.1, eps 1e-8), warmup 6 % then linear decay; returns seconds spent."""
    from ..training import OptimizerSettings, train_steps

    settings = OptimizerSettings(steps=steps, learning_rate=learning_rate, weight_decay=0.1,
                                 warmup=max(1, round(0.06 * steps)))
    start = time.perf_counter()
    train_steps(model, ctx.training_batches(train, batch_size, GROUP_BY_LENGTH), settings,
                progress=lambda r: ctx.progress(r, desc=desc, unit="step", leave=False))
    return time.perf_counter() - start


def _accuracy(model, ctx: DemoContext, test, batch_size: int = 64) -> float:
    import torch

    order, batches = ctx.eval_batches(test, batch_size)  # rows sorted by length: little padding
    with torch.no_grad():
        preds = torch.cat([model(**batch).logits.argmax(-1) for batch in batches])
    return 100.0 * float((in_row_order(order, preds) == torch.tensor(list(test["label"]))).float().mean())


def run(
    ctx: DemoContext,
    k: int | None = None,
    steps: int | None = None,
    batch_size: int = 8,
    eval_size: int | None = None,
) -> list[dict]:
    """Train and score each method of :func:`demo_methods`; print a table and append one OperatingPoint per method.

    Defaults (about 80 s on 2 CPU cores): ``k = 100`` examples (the paper's 100-shot), 100 steps of batch 8 per method,
    scored
    on the first 400 rows of the held-out slice. ``ctx.quick`` shrinks everything for smoke tests.
    """
    import torch

    k = k or (8 if ctx.quick else 100)
    steps = steps or (2 if ctx.quick else 100)
    eval_size = eval_size or (16 if ctx.quick else 400)
    split = few_shot_split(ctx.data["train"], k=k, seed=ctx.seed, dev_size=0)
    train = split["train"]
    test = ctx.data["test"].select(range(min(eval_size, len(ctx.data["test"]))))
    print(
        f"Few-shot: k = {k} training examples in total (stratified, seed {ctx.seed}) from {ctx.dataset_name}; "
        f"{steps} steps of batch {batch_size} per method; accuracy on {len(test)} held-out examples.\n"
        "Backbone: the embedded all-MiniLM-L6-v2 (6 layers, d = 384). It was trained by sentence-transformers on "
        "NLI / paraphrase pairs and has no MLM head, so LPT uses its [CLS]-head mode (classifier on the pooler).\n"
        "LPT: naive prompt generator (NPG), prompt inserted after layer k = 3 of 6, l = 5 prompt tokens, m = 128."
    )
    rows = []
    for method in demo_methods():
        torch.manual_seed(ctx.seed)
        model = method.build(ctx.base_model_path)
        trainable, total = _count(model)
        seconds = _train(model, ctx, train, steps, batch_size, method.learning_rate, method.name)
        accuracy = _accuracy(model, ctx, test)
        rows.append(
            dict(method=method.name, setting=method.label, trainable=trainable, total=total, acc=accuracy, s=seconds)
        )
        ctx.points.append(
            OperatingPoint(
                method=method.name,
                label=method.label,
                accuracy=accuracy,
                mean_exit_layer=float(model.config.num_hidden_layers),
                params=total,
                extra={
                    "trainable_params": trainable,
                    "train_seconds": seconds,
                    "few_shot_k": k,
                    "steps": steps,
                    "eval_examples": len(test),
                },
            )
        )
        del model
    print(format_rows(rows))
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'method':<20} {'setting':<12} {'trainable':>12} {'trainable %':>11} {'acc %':>7} {'train s':>8}"]
    for r in rows:
        share = 100.0 * r["trainable"] / r["total"]
        lines.append(
            f"{r['method']:<20} {r['setting']:<12} {r['trainable']:>12,d} {share:>11.3f} {r['acc']:>7.2f} "
            f"{r['s']:>8.1f}"
        )
    return "\n".join(lines)
