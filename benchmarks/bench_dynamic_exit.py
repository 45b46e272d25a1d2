"""Batched dynamic exit vs the full model vs a batch-size-1 exit loop, measured side by side in one run.

ElasticBERT-base shape (12 layers, hidden 768, random weights), batch 32, sequence 128. The entropy threshold is
calibrated on the batch so that the mean exit layer lands in 4-6 of 12 (a full pass computes every exit's entropy,
outside the timed region). Targets: batched speed-up >= 0.8 x (12 / mean exit layer) over the full model, and
>= 5x the throughput of the batch-1 loop (the only mode of the original code).

    .venv/bin/python benchmarks/bench_dynamic_exit.py [--repeats 3] [--target-layer 5] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from elue_hf import ElasticBertConfig, ElasticBertForSequenceClassification
from elue_hf.elasticbert import exit_layers_from_logits


def build_model(seed: int = 0) -> ElasticBertForSequenceClassification:
    torch.manual_seed(seed)
    config = ElasticBertConfig(num_labels=2)  # base shape: 12 layers, 768 hidden, 12 exits
    model = ElasticBertForSequenceClassification(config).eval()
    with torch.no_grad():  # spread the random exits' confidences so that thresholds separate rows
        for head in model.classifiers:
            head.weight.normal_(0, 0.5)
    return model


def calibrate_threshold(all_logits: torch.Tensor, target_layer: float) -> tuple[float, float]:
    """Entropy threshold whose mean exit layer (reference rule on a full pass) is closest to ``target_layer``."""
    layers = list(range(1, all_logits.shape[1] + 1))
    entropies = torch.special.entr(all_logits.softmax(-1)).sum(-1).flatten().sort().values
    best = None
    for q in torch.linspace(0, 1, 201):
        threshold = float(entropies[int(q * (len(entropies) - 1))]) + 1e-7
        mean = float(exit_layers_from_logits(all_logits, layers, "entropy", entropy_threshold=threshold).float().mean())
        if best is None or abs(mean - target_layer) < abs(best[1] - target_layer):
            best = (threshold, mean)
    return best


def timed(fn, repeats: int, device: str) -> float:
    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target-layer", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = build_model().to(args.device)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, 30000, (args.batch_size, args.seq_len), generator=g)
    ids[:, 0] = 101
    ids = ids.to(args.device)
    mask = torch.ones_like(ids)
    with torch.no_grad():
        all_logits = model(input_ids=ids, attention_mask=mask).all_logits
    threshold, expected_mean = calibrate_threshold(all_logits.cpu(), args.target_layer)
    exit_kwargs = dict(exit_criterion="entropy", entropy_threshold=threshold)

    def full():
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, exit_criterion="none")

    def batched():
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=mask, **exit_kwargs)

    def loop():
        with torch.no_grad():
            for r in range(ids.shape[0]):
                model(input_ids=ids[r : r + 1], attention_mask=mask[r : r + 1], **exit_kwargs)

    out = batched()
    mean_layer = float(out.exit_layer.float().mean())
    t_full = timed(full, args.repeats, args.device)
    t_batched = timed(batched, args.repeats, args.device)
    t_loop = timed(loop, args.repeats, args.device)
    n = args.batch_size
    ideal = 12 / mean_layer
    speedup_full = t_full / t_batched
    speedup_loop = t_loop / t_batched
    where = args.device if args.device != "cpu" else f"{args.threads} CPU threads"
    print(f"ElasticBERT-base shape, random weights, batch {n}, seq {args.seq_len}, {where}")
    print(f"entropy threshold {threshold:.6f}: mean exit layer {mean_layer:.2f} (reference rule: {expected_mean:.2f})")
    print(f"exit layers: {sorted(out.exit_layer.tolist())}")
    print(f"{'mode':<28} {'seconds/batch':>14} {'instances/s':>12}")
    timings = (("full model (12 layers)", t_full), ("batched dynamic exit", t_batched), ("batch-1 exit loop", t_loop))
    for name, t in timings:
        print(f"{name:<28} {t:14.3f} {n / t:12.1f}")
    print(f"speed-up over full model: {speedup_full:.2f}x (ideal 12/mean = {ideal:.2f}x; target >= {0.8 * ideal:.2f}x)"
          f" -> {'PASS' if speedup_full >= 0.8 * ideal else 'MISS'}")
    verdict = "PASS" if speedup_loop >= 5 else "MISS"
    print(f"speed-up over batch-1 loop: {speedup_loop:.2f}x (target >= 5x) -> {verdict}")


if __name__ == "__main__":
    main()
