"""The demo's seeded training batches run whole or as k length-sorted micro-batches: forward + backward seconds per
batch of 32, side by side in one process (the same batches for every k, interleaved), median over the batches.

``DemoContext.training_batches(..., micro_batches=k)`` sorts a batch's rows by length and pads each part to its own
longest row; ``elue_hf.training.train_steps`` weights each part's loss by its rows, so the update is the whole
batch's. What is timed here is only the padding saved.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_micro_batches.py --threads 2    # about 1 min
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--parts", type=int, nargs="+", default=[1, 2, 3, 4])
    args = parser.parse_args()

    import torch
    from transformers import AutoTokenizer

    from elue_hf.assets import load_rotten_tomatoes, minilm_path
    from elue_hf.demo.context import DemoContext
    from elue_hf.demo.runner import _slice
    from elue_hf.elasticbert.convert import convert_bert_to_elasticbert

    torch.set_num_threads(args.threads)
    train = _slice(load_rotten_tomatoes(seed=0)["train"], 3200, 0)
    ctx = DemoContext(out_dir=None, tokenizer=AutoTokenizer.from_pretrained(minilm_path()), data=None, model=None,
                      base_model_path=minilm_path(), max_length=64)
    model = convert_bert_to_elasticbert(minilm_path(), num_labels=2, pooling="mean").train()
    streams = {k: list(itertools.islice(ctx.training_batches(train, 32, micro_batches=k), args.batches + 1))
               for k in args.parts}
    seconds: dict[int, list[float]] = {k: [] for k in args.parts}
    for i in range(args.batches + 1):  # batch 0 warms up
        for k in args.parts:
            parts = streams[k][i] if k > 1 else [streams[k][i]]
            start = time.perf_counter()
            for part in parts:
                (model(**part).loss * len(part["labels"]) / 32).backward()
            model.zero_grad(set_to_none=True)
            if i:
                seconds[k].append(time.perf_counter() - start)
    whole = statistics.median(seconds[args.parts[0]])
    print(f"{args.threads} thread(s), {args.batches} seeded batches of 32, forward + backward, median wall s")
    for k in args.parts:
        median = statistics.median(seconds[k])
        print(f"  {k} part(s): {median:.3f} s  ({whole / median:.2f}x the {args.parts[0]}-part run)")


if __name__ == "__main__":
    main()
