"""HashEE speed: FLOPs ratio and wall-clock throughput ratio vs the same model without HashEE, from one run.

Models: a BERT-base-shaped classifier with random weights (12 layers, L = B = 12) and the embedded real MiniLM
(6 layers, L = B = 6). Frequency hash built from the RT snippets (Pang & Lee) train + validation split, tokenised with
the MiniLM (= BERT uncased) tokenizer. Inputs are real RT test text at three lengths:

- "SST-2-like": single RT snippets of 23-27 tokens (mean ~25);
- "SNLI-like": RT snippet pairs truncated pair-wise to 25-29 tokens (mean ~27);
- "IMDb-like": consecutive RT snippets concatenated to 270-290 tokens (mean ~280).

Lengths sit in narrow bands so that padding (which the plain model computes and HashEE's queries skip) stays a few
percent. Each setting times the same instances at batch 1, 8 and 32 (32 instances; IMDb-like: 8 at batch 1 and 8),
dynamically padded after sorting by length; the plain model and its HashEE version (compute-skipping mode) are timed
alternately and the best of 3 repeats is kept (IMDb-like: 2, and 1 at batch 32). FLOPs follow ELUE's rules per
instance at the unpadded length (docs/hashee.md, "FLOPs"). Wall-clock figures depend on the machine and its load:
compare ratios within one run. One torch thread by default (on shared cores extra threads spin-wait); ``--threads N``.
Each pass is also timed in thread CPU time (``time.thread_time``; with one torch thread all work runs in this
thread): on a shared machine it leaves out the time other processes hold the core, so its ratio is the steadier one
(memory-bandwidth contention still counts). ``--runs N`` repeats the whole measurement and prints the median of each
ratio; ``--batch-sizes`` and ``--data`` pick the settings.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_hashee.py            # full run (~5 min on 2 CPU cores)
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_hashee.py --quick    # a smoke run (~1 min)
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_hashee.py --batch-sizes 1 --data sst2 snli --runs 3
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from elue_hf.assets import load_rotten_tomatoes, minilm_path  # noqa: E402
from elue_hf.hashee import (  # noqa: E402
    apply_hashee,
    frequency_table,
    hashee_config_for,
    remove_hashee,
    tokenize_texts,
)
from elue_hf.methods.hashee_flops import classifier_flops, last_active_counts  # noqa: E402


def sst_like(tokenizer, sentences, count, rng):
    """Single RT snippets of 23-27 tokens (mean ~25)."""
    ids = [x for x in tokenize_texts(tokenizer, sentences) if 23 <= len(x) <= 27]
    return [ids[i] for i in rng.permutation(len(ids))[:count]]


def snli_like(tokenizer, sentences, count, rng):
    """RT snippet pairs ([CLS] a [SEP] b [SEP]) truncated pair-wise to 25-29 tokens (mean ~27)."""
    ids = []
    for i in range(count):
        target = int(rng.integers(25, 30))
        encoded = tokenizer(sentences[2 * i], sentences[2 * i + 1], truncation="longest_first", max_length=target)
        ids.append(encoded["input_ids"])
    return ids


def imdb_like(tokenizer, sentences, count, rng):
    """Consecutive RT snippets concatenated and truncated to 270-290 tokens (mean ~280)."""
    ids, cursor = [], 0
    for _ in range(count):
        target = int(rng.integers(270, 291))
        text = []
        while len(tokenizer(" ".join(text))["input_ids"]) < target:
            text.append(sentences[cursor % len(sentences)])
            cursor += 1
        ids.append(tokenizer(" ".join(text), truncation=True, max_length=target)["input_ids"])
    return ids


def batches(sequences, batch_size, pad_id):
    """Length-sorted, dynamically padded batches of (input_ids, attention_mask)."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    for start in range(0, len(order), batch_size):
        chunk = [sequences[i] for i in order[start : start + batch_size]]
        width = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, seq in enumerate(chunk):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        yield ids, mask


def time_pass(model, data):
    """(wall seconds, thread CPU seconds) of one pass over ``data``."""
    start, cpu = time.perf_counter(), time.thread_time()
    for ids, mask in data:
        model(input_ids=ids, attention_mask=mask)
    return time.perf_counter() - start, time.thread_time() - cpu


def measure(model, table, sequences, batch_size, pad_id, repeats):
    """(plain (wall, cpu) seconds, HashEE (wall, cpu) seconds, FLOPs ratio) for one setting, best of ``repeats``
    for each clock; plain and HashEE passes alternate."""
    data = list(batches(sequences, batch_size, pad_id))
    plain, hashee = [], []
    lengths, counts = [], []
    with torch.inference_mode():
        model(input_ids=data[0][0], attention_mask=data[0][1])  # warm-up
        for _ in range(repeats):
            plain.append(time_pass(model, data))
            apply_hashee(model, table)
            hashee.append(time_pass(model, data))
            remove_hashee(model)
        apply_hashee(model, table)
        for ids, mask in data:  # active-token counts of exactly these batches
            model(input_ids=ids, attention_mask=mask)
            lengths.append(mask.sum(1).numpy())
            counts.append(last_active_counts(model))
        remove_hashee(model)
    lengths, counts = np.concatenate(lengths), np.concatenate(counts)
    full, hashee_flops = classifier_flops(model.config, lengths), classifier_flops(model.config, lengths, counts)
    flops_ratio = full.mean() / hashee_flops.mean()
    best = lambda passes: tuple(min(p[clock] for p in passes) for clock in (0, 1))  # noqa: E731
    return best(plain), best(hashee), float(flops_ratio)


DATA = {"sst2": ("SST-2-like", sst_like), "snli": ("SNLI-like", snli_like), "imdb": ("IMDb-like", imdb_like)}


def build_models(quick: bool):
    from transformers import (
        AutoModelForSequenceClassification,
        BertConfig,
        BertForSequenceClassification,
    )

    torch.manual_seed(0)
    if quick:
        base_config = BertConfig(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024)
        base_name = "BERT-small shape (random, 4L)"
    else:
        base_config = BertConfig()  # bert-base-uncased shape: 12 layers, d 768, 12 heads, d_ff 3072, V 30522
        base_name = "BERT-base shape (random, 12L)"
    base = BertForSequenceClassification(base_config).eval()
    minilm = AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2).eval()
    return [(base_name, base), ("MiniLM-L6 (real weights)", minilm)]


def rt_inputs():
    """``(tokenizer, test sentences, train token ids, validation token ids)`` of the embedded RT snippets with the
    MiniLM tokenizer: the timed inputs are drawn from the test sentences, the hash tables count train + validation."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    data = load_rotten_tomatoes()
    return (tokenizer, list(data["test"]["sentence"]), tokenize_texts(tokenizer, list(data["train"]["sentence"])),
            tokenize_texts(tokenizer, list(data["validation"]["sentence"])))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (default 1: on shared cores, more threads spin-wait)"
    )
    parser.add_argument("--runs", type=int, default=1, help="repeat every setting N times; print medians")
    parser.add_argument("--batch-sizes", type=int, nargs="+", help="batch sizes (default 1 8 32; --quick: 1 8)")
    parser.add_argument(
        "--data", nargs="+", choices=DATA, default=list(DATA), help="input lengths to time (default: all three)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    tokenizer, test, train_ids, dev_ids = rt_inputs()
    rng = np.random.default_rng(0)
    count = 8 if args.quick else 32
    settings = []  # (name, sequences, instances timed below batch 32)
    for key, (name, make) in DATA.items():
        sequences = make(tokenizer, test, count, rng)  # drawn for every setting: the same inputs whatever --data says
        if key in args.data:
            settings.append((name, sequences, 8 if key == "imdb" else count))
    batch_sizes = args.batch_sizes or ((1, 8) if args.quick else (1, 8, 32))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU; instances timed: {count} "
        f"(IMDb-like: 8 at batch 1 and 8, 32 at batch 32); {args.runs} run(s) per setting"
        + (", medians" if args.runs > 1 else "")
    )
    header = (
        f"{'model':<31} {'data':<11} {'len':>5} {'batch':>5} {'FLOPs x':>8} {'plain/s':>9} {'HashEE/s':>9} "
        f"{'wall x':>7} {'wall/FLOPs':>10} {'CPU x':>6} {'CPU/FLOPs':>9}"
    )
    print(header)
    print("-" * len(header))
    for model_name, model in build_models(args.quick):
        config = hashee_config_for(model, tokenizer)  # L = B = depth, V = 30522, special ids -> L
        table = frequency_table(config, train_ids, dev_ids)
        for data_name, sequences, small in settings:
            for batch_size in batch_sizes:
                timed = sequences[: max(small, batch_size)]
                long_input = data_name == "IMDb-like"
                repeats = 1 if args.quick or (long_input and batch_size == 32) else 2 if long_input else 3
                runs = [
                    measure(model, table, timed, batch_size, tokenizer.pad_token_id, repeats)
                    for _ in range(args.runs)
                ]
                median = lambda values: float(np.median(values))  # noqa: E731
                plain_s, hashee_s = median([r[0][0] for r in runs]), median([r[1][0] for r in runs])
                wall_x, cpu_x = median([r[0][0] / r[1][0] for r in runs]), median([r[0][1] / r[1][1] for r in runs])
                flops_x = median([r[2] for r in runs])
                print(
                    f"{model_name:<31} {data_name:<11} {np.mean([len(s) for s in timed]):5.0f} {batch_size:5d} "
                    f"{flops_x:8.2f} {len(timed) / plain_s:9.1f} {len(timed) / hashee_s:9.1f} {wall_x:7.2f} "
                    f"{wall_x / flops_x:10.2f} {cpu_x:6.2f} {cpu_x / flops_x:9.2f}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
