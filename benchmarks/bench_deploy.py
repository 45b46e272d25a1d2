"""Early exit where models are deployed: PyTorch vs ONNX Runtime, fp32 vs int8, full depth vs batched entropy exit,
measured side by side in one run (docs/benchmarks.md, "Deployment").

Rows: PyTorch full depth; ONNX Runtime fp32 and int8 full depth (one graph, no exits: what a user deploys today);
PyTorch batched exit (fp32; int8 through torchao when it is installed); ONNX Runtime exit fp32 and int8 (the
``elue-hf export`` bundle run by ``OnnxElasticBertForSequenceClassification``; int8 with the package's default
settings, and "(plain)" with ``quantize_dynamic``'s defaults, the baseline's own, to show what the default's fp32 FFN
down-projections cost in speed). Columns: throughput at batch 32,
p50/p95 latency at batch 1 (seq 32 and 128), mean exit layer, and accuracy when ``--model`` is a fine-tuned
classifier (on the RT held-out split; random weights have no accuracy). The entropy threshold is calibrated on the
batch so that PyTorch's mean exit layer lands near ``--target-layer`` (see bench_dynamic_exit.py); every runtime
uses that one threshold. The CPU model and its int8 instruction features are printed with the table.

Every ONNX Runtime session (the one-graph baselines and the bundles' graphs) gets the same options
(``elue_hf.deploy.session_options``: ``threads`` intra-op threads, worker threads not spinning). The batch-1 target
(exit p50 <= 1.2 x mean exit layer / L x full-depth p50 of the same runtime) uses the mean exit layer of the batch-1
rows at that sequence length. ``--device cuda`` runs PyTorch on the GPU and ONNX Runtime with its
CUDAExecutionProvider (fp32 rows only: dynamic int8 is a CPU path), and says so when either is unavailable.

    .venv/bin/python benchmarks/bench_deploy.py [--layers 12 --hidden 768] [--model FOLDER] [--threads 2]
                                                [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import functools
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_dynamic_exit import calibrate_threshold, timed

from elue_hf import ElasticBertConfig, ElasticBertForSequenceClassification
from elue_hf.deploy import (
    OnnxElasticBertForSequenceClassification,
    export_elasticbert,
    export_full_depth,
    session_options,
)
from elue_hf.deploy.export import PLAIN_INT8

PLAIN_EXIT = "ORT exit int8 (plain)"  # the exit bundle quantized with quantize_dynamic's defaults, as the baseline is

INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def cpu_summary() -> str:
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    have = [f for f in INT8_FLAGS if f in flags]
    return f"{name}; int8 features: {', '.join(have) or 'none of ' + ', '.join(INT8_FLAGS)}"


def build_model(args) -> ElasticBertForSequenceClassification:
    if args.model:
        return ElasticBertForSequenceClassification.from_pretrained(args.model).eval()
    torch.manual_seed(0)
    config = ElasticBertConfig(num_labels=2, hidden_size=args.hidden, num_hidden_layers=args.layers,
                               num_attention_heads=args.hidden // 64, intermediate_size=4 * args.hidden,
                               max_output_layers=args.layers, num_output_layers=args.layers)
    model = ElasticBertForSequenceClassification(config).eval()
    with torch.no_grad():
        for head in model.classifiers:
            head.weight.normal_(0, 0.5)
    return model


def torch_int8(model):
    """(int8 copy, None) through the package's PyTorch int8 (``elue_hf.deploy.int8``, torchao), or (None, why not)."""
    try:
        from elue_hf.deploy.int8 import quantize_int8
    except ImportError:
        return None, "elue_hf.deploy.int8 is not in this version of elue-hf"
    try:
        return quantize_int8(model), None
    except ImportError as err:  # Int8BackendMissing: torchao is not installed
        return None, str(err)


def check_device(device: str) -> list[str]:
    """ONNX Runtime providers for ``device``; exits with one sentence when the device is unavailable."""
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    problems = []
    if not torch.cuda.is_available():
        problems.append(f"torch {torch.__version__} sees no CUDA device")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        problems.append(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (install onnxruntime-gpu)")
    if problems:
        raise SystemExit(f"--device cuda is unavailable here: {'; '.join(problems)}; run with --device cpu")
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


class TorchRunner:
    def __init__(self, model, exit_kwargs, device="cpu"):
        self.model, self.exit_kwargs, self.device = model, exit_kwargs, device

    def __call__(self, ids, mask):
        with torch.no_grad():
            out = self.model(input_ids=torch.from_numpy(ids).to(self.device),
                             attention_mask=torch.from_numpy(mask).to(self.device), **self.exit_kwargs)
        return out.logits.float().cpu().numpy(), out.exit_layer.cpu().numpy()


class OrtFullRunner:
    def __init__(self, path, threads, num_layers, providers):
        import onnxruntime as ort

        self.session = ort.InferenceSession(str(path), session_options(threads), providers=providers)
        self.num_layers = num_layers

    def __call__(self, ids, mask):
        logits = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                         "token_type_ids": np.zeros_like(ids)})[0]
        return logits, np.full(ids.shape[0], self.num_layers)


class OrtExitRunner:
    def __init__(self, bundle, threads, exit_kwargs, providers):
        self.model = OnnxElasticBertForSequenceClassification.from_pretrained(bundle, threads=threads,
                                                                             providers=providers)
        self.exit_kwargs = exit_kwargs

    def __call__(self, ids, mask):
        out = self.model.forward(ids, mask, **self.exit_kwargs)
        return out.logits, out.exit_layer


def latencies(run, rows: np.ndarray, seq: int, sync) -> tuple[float, float, float]:
    """p50 and p95 ms of one row at a time (``rows`` cut to ``seq``), and the mean exit layer of those rows."""
    run(rows[:1, :seq], np.ones_like(rows[:1, :seq]))  # warm-up
    times, layers = [], []
    for r in range(rows.shape[0]):
        ids = rows[r : r + 1, :seq]
        sync()
        start = time.perf_counter()
        layers.append(float(run(ids, np.ones_like(ids))[1][0]))
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
    return 1000 * statistics.median(times), 1000 * p95, float(np.mean(layers))


def accuracy(run, args) -> str:
    if not args.model:
        return "n/a"
    from transformers import AutoTokenizer

    from elue_hf.assets import load_rotten_tomatoes

    data = load_rotten_tomatoes()["test"]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    correct = 0
    for start in range(0, len(data), 64):
        enc = tokenizer(data["sentence"][start : start + 64], padding=True, truncation=True, return_tensors="np")
        logits, _ = run(enc["input_ids"].astype(np.int64), enc["attention_mask"].astype(np.int64))
        correct += int((logits.argmax(-1) == np.asarray(data["label"][start : start + 64])).sum())
    return f"{100 * correct / len(data):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a fine-tuned ElasticBERT folder (default: random weights)")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--latency-rows", type=int, default=12, help="batch-1 samples per latency figure")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--target-layer", type=float, default=None, help="default: 5/12 of the layers")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--export-dir", default=None,
                        help="keep the ONNX exports here and reuse them on the next run of the same model and shape")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    providers = check_device(args.device)

    model = build_model(args)
    layers = model.config.num_hidden_layers
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1000, min(30000, model.config.vocab_size), (args.batch_size, args.seq_len), generator=g)
    ids[:, 0] = 101
    mask = torch.ones_like(ids)
    with torch.no_grad():
        all_logits = model(input_ids=ids, attention_mask=mask).all_logits
    target = args.target_layer or 5 / 12 * layers
    threshold, _ = calibrate_threshold(all_logits, target)
    exit_kwargs = {"exit_criterion": "entropy", "entropy_threshold": threshold}
    ids, mask = ids.numpy(), mask.numpy()
    rows = ids[: args.latency_rows]

    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.export_dir or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        int8 = args.device == "cpu"  # ONNX Runtime's dynamic int8 and torchao's are CPU paths
        exports = [("full.onnx", export_full_depth, None), ("exit", export_elasticbert, None)]
        if int8:
            exports += [("full_int8.onnx", export_full_depth, "int8"), ("exit_int8", export_elasticbert, "int8"),
                        ("exit_int8_plain", functools.partial(export_elasticbert, int8_settings=PLAIN_INT8), "int8")]
        for name, export, quantize in exports:
            if not (tmp / name).exists():  # --export-dir: exports of an earlier run of the same model are reused
                export(model, tmp / name, quantize=quantize)
        export_seconds = time.perf_counter() - start
        on_device = model.to(args.device)
        runners = {
            "PyTorch full depth": TorchRunner(on_device, {"exit_criterion": "none"}, args.device),
            "ORT fp32 full depth": OrtFullRunner(tmp / "full.onnx", args.threads, layers, providers),
            "PyTorch exit fp32": TorchRunner(on_device, exit_kwargs, args.device),
            "ORT exit fp32": OrtExitRunner(tmp / "exit", args.threads, exit_kwargs, providers),
        }
        why_no_torch_int8 = "CPU only (--device cuda)"
        if int8:
            runners["ORT int8 full depth"] = OrtFullRunner(tmp / "full_int8.onnx", args.threads, layers, providers)
            runners["ORT exit int8"] = OrtExitRunner(tmp / "exit_int8", args.threads, exit_kwargs, providers)
            runners[PLAIN_EXIT] = OrtExitRunner(tmp / "exit_int8_plain", args.threads, exit_kwargs, providers)
            quantized, why_no_torch_int8 = torch_int8(model)
            if quantized is not None:
                runners["PyTorch exit int8 (torchao)"] = TorchRunner(quantized, exit_kwargs)
        results = {}
        sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
        for name, run in runners.items():
            seconds = timed(lambda: run(ids, mask), args.repeats, args.device)
            mean_layer = float(run(ids, mask)[1].mean())
            lat = [latencies(run, rows, seq, sync) for seq in (32, 128)]
            results[name] = (args.batch_size / seconds, lat, mean_layer, accuracy(run, args))

    shape = f"{layers} layers, hidden {model.config.hidden_size}"
    print(f"ElasticBERT ({args.model or 'random weights'}; {shape}), {args.threads} CPU threads, "
          f"torch {torch.__version__}, onnxruntime {__import__('onnxruntime').__version__}, device {args.device} "
          f"(ONNX Runtime providers {providers[0]})")
    print(f"CPU: {cpu_summary()}")
    if args.device == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    print(f"entropy threshold {threshold:.6f} (target mean exit layer {target:.1f}); "
          f"exports took {export_seconds:.0f} s")
    base_name = "ORT int8 full depth" if "ORT int8 full depth" in results else "ORT fp32 full depth"
    header = (f"{'runtime':<28} {'inst/s bs' + str(args.batch_size):>11} {'x ' + base_name[:8]:>10} "
              f"{'p50/p95 ms s32':>15} {'p50/p95 ms s128':>16} {'mean exit':>9} {'acc':>5}")
    print(header)
    base = results[base_name][0]
    for name, (throughput, lat, mean_layer, acc) in results.items():
        (p50a, p95a, _), (p50b, p95b, _) = lat
        print(f"{name:<28} {throughput:11.1f} {throughput / base:10.2f} {p50a:7.1f}/{p95a:<7.1f} "
              f"{p50b:8.1f}/{p95b:<7.1f} {mean_layer:9.2f} {acc:>5}")
    if "PyTorch exit int8 (torchao)" not in results:
        print(f"PyTorch exit int8: not measured ({why_no_torch_int8})")
    for runtime, full, exit_ in (("PyTorch", "PyTorch full depth", "PyTorch exit fp32"),
                                 ("ORT fp32", "ORT fp32 full depth", "ORT exit fp32"),
                                 ("ORT int8", "ORT int8 full depth", "ORT exit int8"),
                                 ("ORT int8 plain", "ORT int8 full depth", PLAIN_EXIT)):
        if exit_ not in results:
            continue
        for k, seq in enumerate((32, 128)):
            p50_exit, _, batch1_mean = results[exit_][1][k]
            ratio = p50_exit / results[full][1][k][0]
            bound = 1.2 * batch1_mean / layers
            print(f"batch 1, seq {seq}, {runtime}: exit p50 / full p50 = {ratio:.2f} (target <= 1.2 x {batch1_mean:.2f}"
                  f"/{layers} = {bound:.2f}, mean exit of the batch-1 rows) -> {'PASS' if ratio <= bound else 'MISS'}")
    for name in ("ORT exit int8", PLAIN_EXIT):
        if name in results:
            ideal = 0.85 * layers / results[name][2]
            got = results[name][0] / base
            print(f"{name} / ORT int8 full depth at batch {args.batch_size}: {got:.2f}x (target >= 0.85 x L/mean "
                  f"= {ideal:.2f}x) -> {'PASS' if got >= ideal else 'MISS'}")


if __name__ == "__main__":
    main()
