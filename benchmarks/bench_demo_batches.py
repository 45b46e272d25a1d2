"""``make demo``'s batching, side by side in one process: CPU seconds of a multi-exit training step (forward +
backward, batch 32) on the seeded shuffled batches vs length-grouped ones (interleaved pairs), and of one evaluation
pass over the 800 held-out snippets in dataset order vs length-sorted (batch 64). One torch thread, CPU seconds (less
sensitive to other work on the machine than wall time); compare the ratios within one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_demo_batches.py    # about 1 min on 2 CPU cores
"""

from __future__ import annotations

import itertools
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def main(pairs: int = 10) -> None:
    import torch
    from transformers import AutoTokenizer

    from elue_hf.assets import load_rotten_tomatoes, minilm_path
    from elue_hf.demo.context import DemoContext
    from elue_hf.demo.runner import _slice
    from elue_hf.elasticbert.convert import convert_bert_to_elasticbert

    torch.set_num_threads(1)
    data = load_rotten_tomatoes(seed=0)
    train, test = _slice(data["train"], 3200, 0), _slice(data["test"], 800, 0)
    ctx = DemoContext(out_dir=None, tokenizer=AutoTokenizer.from_pretrained(minilm_path()), data=None, model=None,
                      base_model_path=None, max_length=64)
    model = convert_bert_to_elasticbert(minilm_path(), num_labels=2, pooling="mean").train()
    steps = {g: list(itertools.islice(ctx.training_batches(train, 32, group_by_length=g), 100))[:: 100 // pairs]
             for g in (False, True)}
    cost = {False: 0.0, True: 0.0}
    for plain, grouped in zip(steps[False], steps[True]):
        for group, batch in ((False, plain), (True, grouped)):
            cost[group] += _cpu(lambda b=batch: model(**b).loss.backward())
            model.zero_grad()
    tokens = {g: sum(b["input_ids"].numel() for b in steps[g]) / len(steps[g]) for g in steps}
    print(f"training step of 32, CPU s (mean of {pairs} pairs): seeded order {cost[False] / pairs:.3f} "
          f"({tokens[False]:.0f} padded tokens), length-grouped {cost[True] / pairs:.3f} ({tokens[True]:.0f}); "
          f"ratio {cost[False] / cost[True]:.2f}")
    model.eval()
    in_order = [ctx.encode(test[i : i + 64]["sentence"]) for i in range(0, len(test), 64)]
    _, by_length = ctx.eval_batches(test, 64)

    def run(batches):
        with torch.no_grad():
            for batch in batches:
                model(**batch)

    for name, batches in (("dataset order", in_order), ("length-sorted", by_length)) * 2:
        padded = sum(b["input_ids"].numel() for b in batches)
        print(f"evaluation pass of {len(test)} rows ({name}, {padded} padded tokens): {_cpu(lambda: run(batches)):.2f} "
              "CPU s")


if __name__ == "__main__":
    main()
