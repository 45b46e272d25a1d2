"""``make demo`` section: HashEE (frequency hash, B = L = 6) on the demo's fine-tuned model made static.

1. load the main section's fine-tuned multi-exit model (``ctx.model``, as saved under ``<out-dir>/model``: the
   task-tuned backbone and its exit-6 pooler and classifier; ``ctx.model`` itself is left untouched) as a static
   6-layer ElasticBERT (one head on layer 6, with the main model's pooling: ``"mean"`` averages every token's final
   state, i.e. its state at its exit layer);
2. build the frequency table from the train + validation token ids (same tokenizer and truncation as the model): the
   50 most frequent types (and, under mean pooling, the special ids) leave after layer 1, every other token passes at
   least three layers (see :func:`hashee_settings`);
3. apply HashEE and fine-tune briefly (``STEPS``) with the main model's recipe (``DemoContext.fine_tune``) on
   ``ctx.data["train"]`` so that the backbone adapts to tokens leaving early;
4. score ``ctx.data["test"]``: accuracy, mean FLOPs per instance (ELUE rules, active tokens per layer), FLOPs
   speed-up vs the same 6-layer model and vs BERT-base (the ELUE convention), and the measured wall-clock speed-up
   of the same weights with and without HashEE (these timed passes run on one torch thread, restored afterwards);
5. write the table, a summary JSON and an ELUE submission whose ``modules`` column lists shrinking ``(m,n,d)`` layers
   (data: the RT snippets stand-in, not SST-2) under ``ctx.out_dir / "hashee"``; append a ``HashEE`` point.

Until session 7 this section fine-tuned a fresh static model from MiniLM for 200 steps; starting from the main
model's task-tuned weights needs far fewer steps (chosen on the validation split, docs/benchmarks.md, "make demo").
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager

import numpy as np

from ..elue.flops.params import count_parameters
from ..hashee.hashing import frequency_table
from ..hashee.model import apply_hashee, hashee_config_for, remove_hashee
from ..methods.hashee_flops import classifier_flops, last_active_counts, module_spec
from .context import DemoContext, OperatingPoint, in_row_order

__all__ = ["run", "fine_tune", "evaluate"]

STEPS, BATCH_SIZE, LEARNING_RATE = 100, 32, 3e-4  # the main recipe, from its fine-tuned weights (100: validation)
# docs/hashee.md, "Exit floor and special tokens": chosen on the validation split among tables of about 2x fewer FLOPs
MIN_EXIT_LAYER = 3  # every token passes at least three layers ...
SHALLOW_TYPES = 50  # ... except the 50 most frequent types (punctuation, function words: 44 % of the tokens)


def hashee_settings(pooling: str) -> dict:
    """The demo's table settings: the frequency hash, an exit floor of three layers, and the 50 most frequent types
    after layer 1. With mean pooling no token is special to the head, so special ids leave after layer 1 too (with
    [CLS] pooling they pass every layer, as in the paper)."""
    special = 1 if pooling == "mean" else None
    return {"hash_function": "frequency", "min_exit_layer": MIN_EXIT_LAYER, "special_exit_layer": special,
            "num_shallow_types": SHALLOW_TYPES}


def static_copy(ctx: DemoContext):
    """A static ElasticBERT (one exit, on the last layer) with the backbone and the last exit's pooler and classifier of
    ``ctx.model`` (the demo's fine-tuned multi-exit model, left unchanged): loaded from the folder the demo saved
    (:meth:`DemoContext.save_model`) with ``num_output_layers=1``, which gives the static model the last exit's own
    head (docs/elasticbert.md)."""
    from elue_hf.elasticbert import ElasticBertForSequenceClassification

    return ElasticBertForSequenceClassification.from_pretrained(ctx.save_model(), num_output_layers=1)


def _token_ids(ctx: DemoContext, split: str) -> list[list[int]]:
    """The split's token ids as the model sees them (``DemoContext.features``: the training slice is already
    tokenised by the main fine-tune)."""
    return [row["input_ids"] for row in ctx.features(ctx.data[split])]


def fine_tune(model, ctx: DemoContext, steps: int, batch_size: int, learning_rate: float) -> list[float]:
    """The main model's recipe (exit head at 5x the step size) on the HashEE model, with length-grouped batches
    (less padding, same rows per epoch); hashing applies in training exactly as at inference."""
    return ctx.fine_tune(model, steps, batch_size, learning_rate, desc="HashEE fine-tune", group_by_length=True)


def _timed_pass(model, batches, progress, desc, hashee: bool):
    """Predictions (and active-token counts when ``hashee``) of every batch, and the seconds the pass took."""
    import torch

    outputs = []
    start = time.perf_counter()
    with torch.inference_mode():
        for batch in progress(batches, desc=desc, unit="batch", leave=False):
            preds = model(**batch).logits.argmax(-1)
            outputs.append((preds, last_active_counts(model) if hashee else None))
    return time.perf_counter() - start, outputs


def evaluate(model, table, ctx: DemoContext, batch_size: int = 64) -> dict:
    """Accuracy, per-instance active counts and wall-clock times (HashEE vs the same weights without it)."""
    import torch

    order, batches = ctx.eval_batches(ctx.data["test"], batch_size)  # rows sorted by length
    with _one_thread():
        with torch.inference_mode():
            model(**batches[0])  # warm-up
        hashee_s, outputs = _timed_pass(model, batches, ctx.progress, "HashEE test", hashee=True)
        remove_hashee(model)
        plain_s, _ = _timed_pass(model, batches, ctx.progress, "plain test", hashee=False)
        apply_hashee(model, table)
    preds = in_row_order(order, torch.cat([p for p, _ in outputs]).numpy())
    labels = np.asarray(ctx.data["test"]["label"])
    return {
        "predictions": preds,
        "accuracy": float(100.0 * np.mean(preds == labels)),
        "lengths": in_row_order(order, np.concatenate([b["attention_mask"].sum(1).numpy() for b in batches])),
        "counts": in_row_order(order, np.concatenate([c for _, c in outputs])),
        "hashee_seconds": hashee_s,
        "plain_seconds": plain_s,
    }


def _write_submission(out_dir, model, result, ctx: DemoContext, label: str):
    """The ELUE submission of the run; its file carries the settings ``{"exit": "hashee"}`` that re-run it."""
    from elue_hf.elue.submission import read_submission, write_submission
    from elue_hf.elue.tasks import TASKS
    from elue_hf.methods.hashee_points import TokenExitOutputs, hashee_prediction_file

    outputs = TokenExitOutputs(result["predictions"].tolist(), result["lengths"], result["counts"])
    path = write_submission(
        out_dir / "submission", "elue-hf demo: HashEE on MiniLM-L6 (static ElasticBERT)",
        f"HashEE {label}; SST-2-like data: {ctx.dataset_name} test slice, not the ELUE SST-2 test set",
        count_parameters(model),
        {"hashee-frequency": hashee_prediction_file(outputs, TASKS["sst-2"], model.config,
                                                    max_seq_length=ctx.max_length, label=f"HashEE {label}")},
        module_spec=module_spec(model.config),
    )  # fmt: skip
    return path, read_submission(path).files[0].mean_mflops


@contextmanager
def _one_thread():
    """One torch thread for the timed A/B passes: on a shared 2-core CPU, two threads spin-wait and the wall-clock
    A/B becomes noise (training uses every thread the demo allows)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run(ctx: DemoContext) -> None:
    import torch
    from transformers import BertConfig

    steps, batch_size = (2, 8) if getattr(ctx, "quick", False) else (STEPS, BATCH_SIZE)
    out_dir = ctx.out_dir / "hashee"
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(ctx.seed)
    model = static_copy(ctx)
    config = hashee_config_for(model, ctx.tokenizer, **hashee_settings(ctx.pooling))  # L = B = 6
    table = frequency_table(config, _token_ids(ctx, "train"), _token_ids(ctx, "validation"))
    apply_hashee(model, table)
    table.save(out_dir)
    start = time.perf_counter()
    losses = fine_tune(model, ctx, steps, batch_size, LEARNING_RATE)
    train_s = time.perf_counter() - start
    result = evaluate(model, table, ctx)

    lengths, counts = result["lengths"], result["counts"]
    mflops = classifier_flops(model.config, lengths, counts)
    full = classifier_flops(model.config, lengths)
    bert_base = classifier_flops(BertConfig(num_labels=2), lengths)
    label = f"freq B=L={config.num_layers} floor {config.min_exit_layer} +{config.num_shallow_types}@1"
    submission, submitted_mflops = _write_submission(out_dir, model, result, ctx, label)
    token_layers = float(counts.sum() / lengths.sum())  # mean number of layers a token passes
    summary = {
        "setting": label,
        "pooling": ctx.pooling,
        "accuracy": result["accuracy"],
        "mean_mflops": float(mflops.mean()),
        "mean_mflops_full_6L": float(full.mean()),
        "flops_speedup_vs_6L": float(full.mean() / mflops.mean()),
        "flops_speedup_vs_bert_base": float(bert_base.mean() / mflops.mean()),
        "wall_speedup_vs_6L": result["plain_seconds"] / result["hashee_seconds"],
        "mean_token_layers": token_layers,
        "active_share_per_layer": (counts.sum(0) / lengths.sum()).round(4).tolist(),
        "table_types_per_layer": table.layer_type_counts(),
        "train_steps": steps,
        "train_seconds": train_s,
        "loss_first_last": [losses[0], losses[-1]],
        "submission": str(submission),
        "submission_mean_mflops": submitted_mflops,
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))

    print(f"HashEE on the fine-tuned model above, made static at its exit 6 ({ctx.pooling} pooling), "
          f"{ctx.dataset_name}; {steps} more steps with hashing "
          f"(loss {losses[0]:.3f} -> {losses[-1]:.3f}, {train_s:.0f} s)")  # fmt: skip
    print(f"{'setting':<24} {'acc %':>7} {'MFLOPs':>8} {'x vs 6L':>8} {'x vs BERT-base':>15} {'wall x':>7} "
          f"{'tok layers':>11}")  # fmt: skip
    print(
        f"{label:<24} {result['accuracy']:7.2f} {mflops.mean():8.1f} {summary['flops_speedup_vs_6L']:8.2f} "
        f"{summary['flops_speedup_vs_bert_base']:15.2f} {summary['wall_speedup_vs_6L']:7.2f} {token_layers:11.2f}"
    )
    print(f"share of tokens active per layer: {summary['active_share_per_layer']}")
    print(f"saved {out_dir / 'summary.json'}, {out_dir / 'hashee_table.safetensors'} and the submission {submission}")
    ctx.points.append(
        OperatingPoint(
            method="HashEE",
            label=label,
            accuracy=result["accuracy"],
            mean_flops=float(mflops.mean()),
            mean_exit_layer=token_layers,
            params=count_parameters(model),
            extra={k: summary[k] for k in ("flops_speedup_vs_6L", "flops_speedup_vs_bert_base", "wall_speedup_vs_6L")},
        )
    )
