"""How long ``export_multi_exit`` takes: every layer traced vs one layer traced and the others derived (docs/deploy.md,
"Fast export"; docs/benchmarks.md, "Deployment").

Each export runs in a fresh Python process (as ``make demo`` or ``elue-hf export`` pays the exporter's one-time
start-up), the two ways alternating round by round, on the demo's model: MiniLM converted to a 6-exit ElasticBERT
with mean pooling (or ``--model FOLDER``). Prints wall and CPU seconds of each export and the ratio.

    .venv/bin/python benchmarks/bench_export.py [--model FOLDER] [--quantize int8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile

CHILD = r"""
import json, sys, time, resource
import torch
torch.set_num_threads(1)
from elue_hf.deploy import export as ex
model_arg, out, quantize, every_layer = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
if model_arg == "minilm":
    from elue_hf.assets import minilm_path
    from elue_hf.elasticbert.convert import convert_bert_to_elasticbert
    model = convert_bert_to_elasticbert(minilm_path(), num_labels=2, pooling="mean")
else:
    from transformers import AutoModelForSequenceClassification
    import elue_hf
    model = AutoModelForSequenceClassification.from_pretrained(model_arg)
if every_layer:
    ex._DERIVABLE = ()  # trace every layer (the exporter before graphs were derived)
traces = []
trace = ex._trace
ex._trace = lambda *a, **k: traces.append(1) or trace(*a, **k)
wall, cpu = time.perf_counter(), time.process_time()
ex.export_multi_exit(model, out, quantize=None if quantize == "none" else quantize, overwrite=True)
print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu, "traces": len(traces)}))
"""


def run_once(model: str, quantize: str, every_layer: bool) -> dict:
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-c", CHILD, model, out, quantize, "1" if every_layer else "0"],
                              capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="minilm", help="a saved multi-exit classifier (default: the demo's MiniLM)")
    p.add_argument("--quantize", default="int8", choices=("int8", "none"))
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    results = {"every layer traced": [], "one layer traced, others derived": []}
    for _ in range(args.rounds):
        for name in results:
            results[name].append(run_once(args.model, args.quantize, name == "every layer traced"))
    print(f"export of {args.model} (quantize={args.quantize}), fresh process each, 1 torch thread, "
          f"{args.rounds} alternating rounds (median)")
    print(f"{'exporter':<34} {'traces':>6} {'wall s':>7} {'CPU s':>7}")
    medians = {}
    for name, runs in results.items():
        medians[name] = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        print(f"{name:<34} {runs[0]['traces']:6d} {medians[name]:7.1f} {cpu:7.1f}")
    print(f"speed-up: {medians['every layer traced'] / medians['one layer traced, others derived']:.2f}x")


if __name__ == "__main__":
    main()
