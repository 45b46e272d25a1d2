"""int8 in PyTorch for the batched exit: which API is fastest on this CPU (docs/benchmarks.md, "int8 in PyTorch").

Variants of one random ElasticBERT, each timed once per round, rounds interleaved (a shared machine's load drifts; the
median over rounds of each variant is compared): fp32 eager, fp32 under ``torch.compile``, torchao
``Int8DynamicActivationInt8WeightConfig`` (what ``elue_hf.deploy.quantize_int8`` applies) eager and compiled, torchao
``Int8WeightOnlyConfig`` eager and compiled, and the deprecated ``torch.ao.quantization.quantize_dynamic`` as a
reference (not offered by the package). ``torch.compile`` wraps each layer with ``dynamic=True``: the batched exit
changes the rows and the sequence length from layer to layer. Workloads: full depth at batch 32 / seq 128, the entropy
exit at batch 32 / seq 128 (threshold calibrated to a mean exit layer of 5/12 of the depth on the fp32 model), and the
exit at batch 1 / seq 32 (ms per call: the median over rounds of each round's mean). Also the largest logit
difference from fp32.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_int8.py [--layers 6 --hidden 384] [--rounds 3] [--no-compile]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings

import torch
from bench_deploy import cpu_summary
from bench_dynamic_exit import calibrate_threshold

from elue_hf import ElasticBertConfig, ElasticBertForSequenceClassification


def build(layers: int, hidden: int) -> ElasticBertForSequenceClassification:
    torch.manual_seed(0)
    config = ElasticBertConfig(num_labels=2, hidden_size=hidden, num_hidden_layers=layers,
                               num_attention_heads=12, intermediate_size=4 * hidden,
                               max_output_layers=layers, num_output_layers=layers)
    model = ElasticBertForSequenceClassification(config).eval()
    with torch.no_grad():
        for head in model.classifiers:
            head.weight.normal_(0, 0.5)
    return model


def torchao(model, kind: str):
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig, quantize_

    quantized = copy.deepcopy(model)
    quantize_(quantized, Int8DynamicActivationInt8WeightConfig() if kind == "dynamic" else Int8WeightOnlyConfig())
    return quantized


def quantize_dynamic(model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated since torch 2.10: the reference row only
        return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def compiled(model):
    encoder = model.elasticbert.encoder
    for i, layer in enumerate(encoder.layer):
        encoder.layer[i] = torch.compile(layer, dynamic=True)
    return model


def variants(model, compile_too: bool) -> dict:
    makers = {"fp32 eager": lambda: model}
    if compile_too:
        makers["fp32 compile"] = lambda: compiled(copy.deepcopy(model))
    makers["torchao int8 dynamic eager"] = lambda: torchao(model, "dynamic")
    if compile_too:
        makers["torchao int8 dynamic compile"] = lambda: compiled(torchao(model, "dynamic"))
    makers["torchao int8 weight-only eager"] = lambda: torchao(model, "weight")
    if compile_too:
        makers["torchao int8 weight-only compile"] = lambda: compiled(torchao(model, "weight"))
    makers["quantize_dynamic (deprecated)"] = lambda: quantize_dynamic(model)
    return makers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--hidden", type=int, default=384)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch1-calls", type=int, default=6, help="batch-1 calls per round (their median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows (minutes to compile)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = build(args.layers, args.hidden)
    g = torch.Generator().manual_seed(1)
    big = torch.randint(1000, 20000, (32, 128), generator=g)
    big[:, 0] = 101
    lengths = torch.randint(16, 129, (32,), generator=g)
    mask = (torch.arange(128)[None] < lengths[:, None]).long()  # padded rows: the exit trims padding
    small = big[:1, :32]
    with torch.no_grad():
        reference = model(input_ids=big, attention_mask=mask, exit_criterion="none").all_logits
    threshold, _ = calibrate_threshold(reference, 5 / 12 * args.layers)
    exit_kwargs = {"exit_criterion": "entropy", "entropy_threshold": threshold}
    workloads = {
        "full bs32": lambda m: m(input_ids=big, attention_mask=mask, exit_criterion="none"),
        "exit bs32": lambda m: m(input_ids=big, attention_mask=mask, **exit_kwargs),
        "exit bs1": lambda m: [m(input_ids=small, **exit_kwargs) for _ in range(args.batch1_calls)],
    }

    built, setup, error, mean_exit = {}, {}, {}, {}
    with torch.no_grad():
        for name, make in variants(model, not args.no_compile).items():
            start = time.perf_counter()
            try:
                built[name] = make()
                for run in workloads.values():  # warm-up (and compilation) of every shape family
                    run(built[name])
            except Exception as err:  # an API this torch / torchao cannot run: say so, measure the rest
                print(f"{name}: failed ({type(err).__name__}: {str(err)[:200]})")
                built.pop(name, None)
                continue
            setup[name] = time.perf_counter() - start
            out = built[name](input_ids=big, attention_mask=mask, exit_criterion="none").all_logits
            error[name] = float((out - reference).abs().max())
            mean_exit[name] = float(workloads["exit bs32"](built[name]).exit_layer.float().mean())
            print(f"built {name} (set-up and warm-up {setup[name]:.0f} s)", flush=True)
        times = {name: {w: [] for w in workloads} for name in built}
        for _ in range(args.rounds):
            for name, m in built.items():
                for w, run in workloads.items():
                    start = time.perf_counter()
                    run(m)
                    times[name][w].append(time.perf_counter() - start)

    med = {n: {w: statistics.median(t) for w, t in ws.items()} for n, ws in times.items()}
    print(f"ElasticBERT, random weights, {args.layers} layers, hidden {args.hidden}, {args.threads} threads, "
          f"torch {torch.__version__}, torchao {__import__('torchao').__version__}; {args.rounds} interleaved rounds")
    print(f"CPU: {cpu_summary()}")
    print(f"entropy threshold {threshold:.5f} (fp32 mean exit layer {mean_exit['fp32 eager']:.2f} of {args.layers})")
    print(f"{'variant':<34} {'full bs32':>10} {'exit bs32':>10} {'bs1 ms/call':>13} {'x fp32 full/exit/bs1':>22} "
          f"{'mean exit':>9} {'max|dlogit|':>11} {'setup s':>8}")
    base = med["fp32 eager"]
    for name, m in med.items():
        full, exit_, one = 32 / m["full bs32"], 32 / m["exit bs32"], 1000 * m["exit bs1"] / args.batch1_calls
        ratios = (f"{base['full bs32'] / m['full bs32']:.2f}/{base['exit bs32'] / m['exit bs32']:.2f}/"
                  f"{base['exit bs1'] / m['exit bs1']:.2f}")
        print(f"{name:<34} {full:7.2f}/s {exit_:7.2f}/s {one:10.1f} ms {ratios:>22} {mean_exit[name]:9.2f} "
              f"{error[name]:11.3g} {setup[name]:8.0f}")


if __name__ == "__main__":
    main()
