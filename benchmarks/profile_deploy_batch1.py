"""Batch-1 profile of the ONNX Runtime exit loop (issue 22 item 5): where a call's time goes, before and after.

Loads one exported bundle twice in one process, once with the runtime of ``--before`` (a git ref; default the commit
before the batch-1 work) and once with this checkout's, next to the one-graph full-depth model of the same weights,
and times them one row at a time (batch 1) in blocks of ``--rows`` rows per model (as bench_deploy.py times each
runtime), the blocks interleaved for ``--rounds`` rounds:

- each call's p50 and its ratio to the one-graph model's p50 (the issue's target: <= 1.2 x mean exit layer / L);
- the same call split into ONNX Runtime ``session.run`` time (embeddings, layers) and everything between the runs
  (NumPy: options, entropy, row selection, trimming, feeds), from proxies wrapped around the sessions.

    .venv/bin/python benchmarks/profile_deploy_batch1.py --bundle /tmp/bd_6_384/exit_int8 \\
        --full /tmp/bd_6_384/full_int8.onnx [--threads 1 2] [--seq 32 128] [--before e2c7dc2]

The inputs are bench_deploy.py's (random ids, seed 1) and ``--threshold`` its calibrated entropy threshold.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from elue_hf.deploy import OnnxElasticBertForSequenceClassification, session_options

ROOT = Path(__file__).resolve().parents[1]


def runtime_at(ref: str):
    """The runtime module of git ``ref`` (imported inside elue_hf.deploy so its relative imports resolve)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:src/elue_hf/deploy/runtime.py"],
                            check=True, capture_output=True, text=True).stdout
    name = "elue_hf.deploy._runtime_before"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "elue_hf.deploy"
    sys.modules[name] = module
    exec(compile(source, f"{ref}:runtime.py", "exec"), module.__dict__)  # noqa: S102 - this repository's own code
    return module


class TimedSession:
    """An ``InferenceSession`` proxy adding each ``run``'s (and ``run_with_iobinding``'s) seconds to ``clock[0]``."""

    def __init__(self, session, clock):
        self.session, self.clock = session, clock

    def _timed(self, method, *args, **kwargs):
        start = time.perf_counter()
        out = method(*args, **kwargs)
        self.clock[0] += time.perf_counter() - start
        return out

    def run(self, *args, **kwargs):
        return self._timed(self.session.run, *args, **kwargs)

    def run_with_iobinding(self, *args, **kwargs):
        return self._timed(self.session.run_with_iobinding, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self.session, name)


def timed_model(model):
    clock = [0.0]
    model.embeddings = TimedSession(model.embeddings, clock)
    model.layers = [TimedSession(layer, clock) for layer in model.layers]
    return model, clock


def bench_rows(rows: int, seq: int) -> np.ndarray:
    import torch

    g = torch.Generator().manual_seed(1)  # bench_deploy.py's batch (32 x 128, first token 101)
    ids = torch.randint(1000, 30000, (32, 128), generator=g)
    ids[:, 0] = 101
    return ids.numpy()[:rows, :seq]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", required=True)
    parser.add_argument("--full", required=True, help="the one-graph full-depth model of the same weights")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seq", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--rows", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threshold", type=float, default=0.003387)
    parser.add_argument("--before", default="e2c7dc2", help="git ref of the runtime to compare with")
    args = parser.parse_args()
    before = runtime_at(args.before)
    options = {"exit_criterion": "entropy", "entropy_threshold": args.threshold}
    print(f"onnxruntime {ort.__version__}; bundle {args.bundle}; before = {args.before}, after = this checkout; "
          f"{args.rows} rows x {args.rounds} rounds, blocks interleaved")
    for threads in args.threads:
        full = ort.InferenceSession(args.full, session_options(threads), providers=["CPUExecutionProvider"])
        models = {"before": timed_model(before.OnnxElasticBertForSequenceClassification.from_pretrained(
                      args.bundle, threads=threads)),
                  "after": timed_model(OnnxElasticBertForSequenceClassification.from_pretrained(
                      args.bundle, threads=threads))}
        for seq in args.seq:
            ids = bench_rows(args.rows, seq)
            times = {"full": [], **{k: [] for k in models}}
            runs = {k: [] for k in models}
            layers = {k: [] for k in models}
            for r in range(-1, args.rounds):  # round -1 warms up; each round: one block of rows per model
                feeds = [{"input_ids": row[None], "attention_mask": np.ones_like(row[None]),
                          "token_type_ids": np.zeros_like(row[None])} for row in ids]
                for feed in feeds:
                    start = time.perf_counter()
                    full.run(None, feed)
                    if r >= 0:
                        times["full"].append(time.perf_counter() - start)
                for name, (model, clock) in models.items():
                    for feed in feeds:
                        clock[0] = 0.0
                        start = time.perf_counter()
                        out = model.forward(feed["input_ids"], feed["attention_mask"], **options)
                        if r >= 0:
                            times[name].append(time.perf_counter() - start)
                            runs[name].append(clock[0])
                            layers[name].append(int(out.exit_layer[0]))
            p50 = {k: 1000 * statistics.median(v) for k, v in times.items()}
            mean_exit = float(np.mean(layers["after"]))
            assert layers["after"] == layers["before"], "the two runtimes disagree on exit layers"
            bound = 1.2 * mean_exit / len(models["after"][0].layers)
            print(f"\nthreads {threads}, seq {seq}: mean exit layer {mean_exit:.2f}, target exit/full <= {bound:.2f}; "
                  f"one graph p50 {p50['full']:.2f} ms")
            for name in models:
                between = [1000 * (t - s) for t, s in zip(times[name], runs[name])]
                print(f"  {name:>6}: p50 {p50[name]:6.2f} ms = {p50[name] / p50['full']:.3f} x one graph; "
                      f"session.run p50 {1000 * statistics.median(runs[name]):6.2f} ms, between runs p50 "
                      f"{statistics.median(between):5.3f} ms")


if __name__ == "__main__":
    main()
