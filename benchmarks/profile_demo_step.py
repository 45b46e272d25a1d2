"""Where one training step of ``make demo``'s fine-tunes spends its time: forward, backward, gradient clipping and the
AdamW update (+ zero_grad), CPU seconds on one torch thread, mean over a few steps after one warm-up step.

Rows: the main multi-exit step of 32 (length-grouped batches) with torch's default AdamW (a loop over the parameters
on CPU), with the fused AdamW kernel (``fused=True``, what ``elue_hf.training.train_steps`` uses), and with the word
embeddings frozen (11.7M of the 23.5M parameters: no dense embedding gradient, no AdamW update for them); then one
step of batch 8 of each LPT-section method (full fine-tuning, PEFT prompt tuning, LPT) in one seeded order with the
default AdamW (the section before session 7) and length-grouped with the fused one (now).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/profile_demo_step.py    # about 1 min on 2 CPU cores
"""

from __future__ import annotations

import itertools
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PHASES = ("forward", "backward", "clip", "optimizer")


def profile(model, batches, steps: int, fused: bool) -> dict[str, float]:
    """Mean CPU seconds per phase over ``steps`` steps (the first of ``steps + 1`` is a warm-up)."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5, fused=fused)
    total = dict.fromkeys(PHASES, 0.0)
    model.train()
    for i, batch in enumerate(itertools.islice(batches, steps + 1)):
        marks = [time.process_time()]
        loss = model(**batch).loss
        marks.append(time.process_time())
        loss.backward()
        marks.append(time.process_time())
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        marks.append(time.process_time())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        marks.append(time.process_time())
        if i:
            for phase, a, b in zip(PHASES, marks, marks[1:]):
                total[phase] += (b - a) / steps
    return total


def _row(name: str, cost: dict[str, float], trainable: int) -> str:
    cells = " | ".join(f"{cost[p]:.3f}" for p in PHASES)
    return f"| {name} | {trainable / 1e6:.1f}M | {cells} | {sum(cost.values()):.3f} |"


def main(steps: int = 6) -> None:
    import torch
    from transformers import AutoTokenizer

    from elue_hf.assets import load_rotten_tomatoes, minilm_path
    from elue_hf.demo import lpt
    from elue_hf.demo.context import DemoContext
    from elue_hf.demo.runner import _slice
    from elue_hf.elasticbert.convert import convert_bert_to_elasticbert
    from elue_hf.lpt.fewshot import few_shot_split

    torch.set_num_threads(1)
    data = load_rotten_tomatoes(seed=0)
    train = _slice(data["train"], 3200, 0)
    ctx = DemoContext(out_dir=None, tokenizer=AutoTokenizer.from_pretrained(minilm_path()), data=None, model=None,
                      base_model_path=minilm_path(), max_length=64)
    print(f"| step | trainable | {' | '.join(PHASES)} | total CPU s |\n|---|---|" + "---|" * (len(PHASES) + 1))
    for frozen, fused in ((False, False), (False, True), (True, True)):
        torch.manual_seed(0)
        model = convert_bert_to_elasticbert(minilm_path(), num_labels=2, pooling="mean")
        model.elasticbert.embeddings.word_embeddings.weight.requires_grad_(not frozen)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        cost = profile(model, ctx.training_batches(train, 32, group_by_length=True), steps, fused)
        name = f"main, 32 grouped, {'fused' if fused else 'default'} AdamW" + (", embeddings frozen" if frozen else "")
        print(_row(name, cost, trainable), flush=True)
    few = few_shot_split(train, k=100, seed=0, dev_size=0)["train"]
    for method in lpt.demo_methods():
        torch.manual_seed(0)
        model = method.build(minilm_path())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        for grouped in (False, True):
            cost = profile(model, ctx.training_batches(few, 8, group_by_length=grouped), steps * 2, fused=grouped)
            name = f"LPT section: {method.name}, 8 {'grouped, fused' if grouped else 'seeded, default'} AdamW"
            print(_row(name, cost, trainable), flush=True)


if __name__ == "__main__":
    main()
