"""LPT training efficiency vs full fine-tuning, PEFT prompt tuning, P-tuning v2 (prefix tuning) and LoRA, one run.

Setting (the paper's Tab. 4 protocol, scaled to CPU): sequence classifiers of three shapes with random weights and 2
labels, input length 256, the same batch for every method, AdamW. Shapes (``--shapes``, default all three):

- ``bert``: BERT-base (12 layers, d = 768, 12 heads); LoRA on query/value;
- ``gpt2``: GPT-2 small (12 layers, d = 768, 12 heads, vocabulary 50,257); LoRA on ``c_attn``; the paper's GPT-2 family;
- ``llama``: a small Llama (8 layers, d = 512, 8 heads, 4 key/value heads, MLP 1,376, vocabulary 32,000, rotary
  positions); LoRA on q_proj/v_proj.

Each method runs in its own subprocess: one warm-up step (allocations, optimiser state), then ``--steps`` timed training
steps (forward, backward, optimiser step).

- tokens/s = batch x 256 x steps / wall time of the timed steps (prompt tokens are not counted as input tokens);
  tok/CPU-s divides by the process's CPU time instead. The default is one intra-op thread, so CPU time is compute
  time and the ratios stay stable when other jobs share the cores (wall-clock ratios on a busy machine mostly measure
  the neighbours; with several threads, idle OpenMP threads spin and inflate CPU time). ``--threads 2`` on a quiet
  machine gives wall-clock figures;
- peak memory: on CPU the process's peak resident set size (``ru_maxrss``) minus its resident size right before the
  model is built, i.e. the memory the run added (weights, gradients, optimiser state, activations, allocator slack) —
  the CPU analogue of ``torch.cuda.max_memory_allocated``, which is what ``--device cuda`` reports. Peak RSS itself
  is printed too.

Methods: full fine-tuning; PEFT prompt tuning (20 virtual tokens); PEFT prefix tuning (20 tokens per layer, the
P-tuning v2 setting); PEFT LoRA (r 8, alpha 16, attention query/value); LPT (NPG, l = 5, m = 128, prompt layer k = L/2;
on the decoders the prompt is generated from the last token). Targets from the paper (RoBERTa-large / GPT2-large on
GPU): LPT >= 2.0x full fine-tuning throughput, <= 45 % of its peak memory (paper: -56.6 % / -57.5 %), faster than both
prompt methods.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_lpt.py                  # all three shapes, ~10-15 min on 2 cores
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_lpt.py --shapes bert    # the BERT-base shape only (~3-5 min)
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_lpt.py --quick          # smoke run (tiny shapes, seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

METHODS = {
    "full": "Full fine-tuning",
    "prompt_tuning": "PEFT prompt tuning (l=20)",
    "prefix_tuning": "PEFT prefix tuning / P-tuning v2 (l=20)",
    "lora": "PEFT LoRA (r=8, q/v)",
    "lpt": "LPT NPG (k=L/2, l=5)",
}


def _current_rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        resident_pages = int(handle.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


#: Preset shapes: layers, hidden size, attention heads (``--layers``/``--hidden``/``--heads`` override them).
SHAPES = {
    "bert": {"layers": 12, "hidden": 768, "heads": 12, "label": "BERT-base"},
    "gpt2": {"layers": 12, "hidden": 768, "heads": 12, "label": "GPT-2 small"},
    "llama": {"layers": 8, "hidden": 512, "heads": 8, "label": "small Llama"},
}
QUICK_SHAPE = {"layers": 4, "hidden": 64, "heads": 4}
LORA_TARGETS = {"bert": ["query", "value"], "gpt2": ["c_attn"], "llama": ["q_proj", "v_proj"]}


def _base_model(shape: str, layers: int, hidden: int, heads: int):
    """A randomly initialised 2-label sequence classifier of the requested family and size."""
    import transformers

    if shape == "bert":
        config = transformers.BertConfig(
            hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=4 * hidden
        )
        return transformers.BertForSequenceClassification(config)
    if shape == "gpt2":
        config = transformers.GPT2Config(n_embd=hidden, n_layer=layers, n_head=heads, pad_token_id=0)
        return transformers.GPT2ForSequenceClassification(config)
    config = transformers.LlamaConfig(
        vocab_size=32000,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=max(1, heads // 2),
        intermediate_size=(hidden * 8 // 3 + 31) // 32 * 32,
        max_position_embeddings=512,
        pad_token_id=0,
    )
    return transformers.LlamaForSequenceClassification(config)


def build_model(method: str, layers: int, hidden: int, heads: int, shape: str = "bert"):
    """A randomly initialised classifier of ``shape`` and the requested size, wrapped for ``method``."""
    import peft

    import elue_hf.lpt as lpt

    model = _base_model(shape, layers, hidden, heads)
    if method == "full":
        return model
    configs = {
        "prompt_tuning": lambda: peft.PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20),
        "prefix_tuning": lambda: peft.PrefixTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=20),
        "lora": lambda: peft.LoraConfig(task_type="SEQ_CLS", r=8, lora_alpha=16, target_modules=LORA_TARGETS[shape]),
        "lpt": lambda: lpt.LPTConfig(
            task_type="SEQ_CLS", prompt_layer=layers // 2, num_prompt_tokens=5, generator="npg", bottleneck_size=128
        ),
    }
    return peft.get_peft_model(model, configs[method]())


def worker(args) -> dict:
    """Measure one method in this process (called in a subprocess by :func:`main`)."""
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    ids = torch.randint(1000, 30000, (args.batch_size, args.seq_len), device=device)
    mask = torch.ones_like(ids)
    labels = torch.randint(0, 2, (args.batch_size,), device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss_before = _current_rss_mb()
    model = build_model(args.worker, args.layers, args.hidden, args.heads, args.shape).to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.1)

    def step():
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak = _peak_rss_mb()
    added = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else peak - rss_before
    return {
        "method": args.worker,
        "shape": args.shape,
        "trainable": sum(p.numel() for p in params),
        "total": sum(p.numel() for p in model.parameters()),
        "tokens_per_s": args.batch_size * args.seq_len * args.steps / seconds,
        "tokens_per_cpu_s": args.batch_size * args.seq_len * args.steps / cpu_seconds,
        "seconds_per_step": seconds / args.steps,
        "memory_mb": added,
        "peak_rss_mb": peak,
    }


def _run_worker(method: str, args) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--worker", method]
    for name in ("batch_size", "seq_len", "steps", "warmup", "layers", "hidden", "heads", "threads", "device", "shape"):
        command += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def format_table(results: list[dict], memory_label: str) -> str:
    base = results[0]
    lines = [
        f"{'method':<40} {'trainable':>11} {'tokens/s':>8} {'speed-up':>8} {'tok/CPU-s':>9} {'speed-up':>8} "
        f"{memory_label:>9} {'vs full':>7} {'peak RSS MB':>11}"
    ]
    for r in results:
        lines.append(
            f"{METHODS[r['method']]:<40} {r['trainable']:>11,d} {r['tokens_per_s']:>8.1f} "
            f"{r['tokens_per_s'] / base['tokens_per_s']:>7.2f}x {r['tokens_per_cpu_s']:>9.1f} "
            f"{r['tokens_per_cpu_s'] / base['tokens_per_cpu_s']:>7.2f}x {r['memory_mb']:>9.0f} "
            f"{100 * r['memory_mb'] / base['memory_mb']:>6.1f}% {r['peak_rss_mb']:>11.0f}"
        )
    return "\n".join(lines)


def check_targets(results: list[dict]) -> list[str]:
    """The paper's targets, checked on wall-clock and on CPU-time throughput (robust on a shared machine)."""
    by = {r["method"]: r for r in results}
    lpt, full = by["lpt"], by["full"]
    memory = lpt["memory_mb"] / full["memory_mb"]
    checks = [(f"LPT memory {100 * memory:.1f}% of full fine-tuning (target <= 45%)", memory <= 0.45)]
    for key, clock in (("tokens_per_s", "wall clock"), ("tokens_per_cpu_s", "CPU time")):
        speed = lpt[key] / full[key]
        checks.append((f"LPT throughput {speed:.2f}x full fine-tuning, {clock} (target >= 2.0x)", speed >= 2.0))
        for other in ("prompt_tuning", "prefix_tuning"):
            ratio = lpt[key] / by[other][key]
            checks.append((f"LPT {ratio:.2f}x the throughput of {METHODS[other]}, {clock} (target > 1)", ratio > 1.0))
    return [f"[{'met' if ok else 'MISSED'}] {text}" for text, ok in checks]


def _dims(args, shape: str) -> dict:
    preset = QUICK_SHAPE if args.quick else SHAPES[shape]
    return {key: getattr(args, key) if getattr(args, key) is not None else preset[key] for key in QUICK_SHAPE}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=2, help="timed training steps per method")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated subset of {list(SHAPES)}")
    parser.add_argument("--layers", type=int, help="override the shapes' layer count")
    parser.add_argument("--hidden", type=int, help="override the shapes' hidden size")
    parser.add_argument("--heads", type=int, help="override the shapes' attention heads")
    parser.add_argument(
        "--threads", type=int, default=1, help="intra-op threads (1: CPU time = compute time even on shared cores)"
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset (full always runs first)")
    parser.add_argument("--quick", action="store_true", help="tiny shapes: a smoke run of the whole pipeline")
    parser.add_argument("--worker", choices=list(METHODS), help=argparse.SUPPRESS)
    parser.add_argument("--shape", choices=list(SHAPES), default="bert", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    if args.quick:
        args.batch_size, args.seq_len, args.steps = 2, 32, 1
    wanted = ["full"] + [m for m in args.methods.split(",") if m and m != "full"]
    unknown = set(wanted) - set(METHODS)
    shapes = [s for s in args.shapes.split(",") if s]
    unknown |= set(shapes) - set(SHAPES)
    if unknown:
        raise SystemExit(f"unknown methods/shapes {sorted(unknown)}; choose from {list(METHODS)} / {list(SHAPES)}")
    print(
        f"batch {args.batch_size} x seq {args.seq_len}; {args.warmup} warm-up + {args.steps} timed steps per method; "
        f"device {args.device}, {args.threads} threads; each method in its own process; random weights."
    )
    started = time.perf_counter()
    memory_label = "peak MB" if args.device.startswith("cuda") else "added MB"
    for shape in shapes:
        dims = _dims(args, shape)
        label = SHAPES[shape]["label"]
        print(f"\n== {label} shape: {dims['layers']} layers, d={dims['hidden']}, {dims['heads']} heads")
        results = []
        for method in wanted:
            shape_args = argparse.Namespace(**{**vars(args), **dims, "shape": shape})
            results.append(_run_worker(method, shape_args))
            print(f"  measured {METHODS[method]} ({time.perf_counter() - started:.0f} s elapsed)", flush=True)
        print()
        print(format_table(results, memory_label))
        if {"lpt", "prompt_tuning", "prefix_tuning"} <= set(wanted):
            print()
            print("\n".join(check_targets(results)))
    print(f"\nTotal time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
