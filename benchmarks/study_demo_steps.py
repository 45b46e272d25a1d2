"""``make demo``'s training budgets against VALIDATION accuracy: how many steps (and which batch order) each of the
demo's fine-tunes needs before its result stops moving. Every run is the demo's own code (``elue_hf.demo``) with the
held-out slice replaced by 800 rows of the same seed's validation split (the test split is never read).

    # one JSON line per (section, steps, seed, order) appended to OUT; --table prints the markdown table of OUT
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/study_demo_steps.py main:150:grouped main:200:seeded --seeds 0 1 2 \
        --hashee-after 60 100 --out /tmp/demo_study.jsonl
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/study_demo_steps.py lpt:100:seeded --seeds 0 1 \
        --out /tmp/demo_study.jsonl
    .venv/bin/python benchmarks/study_demo_steps.py --table --out /tmp/demo_study.jsonl

Runs: ``main`` (the multi-exit fine-tune: static accuracies, best entropy point at <= 60 % of the full-depth FLOPs)
and ``lpt`` (the three few-shot methods), each ``SECTION:STEPS[:ORDER]`` with ORDER ``seeded`` (one seeded shuffle,
the default) or ``grouped`` (length-grouped batches). The HashEE section starts from the main model, so it runs after
each ``main`` run, once per step count of ``--hashee-after`` (accuracy, its gap to full depth, FLOPs ratio).
One torch thread per process: run several processes side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _context(seed: int, out_dir: Path):
    from elue_hf.demo.runner import _slice, build_context

    args = SimpleNamespace(seed=seed, train_size=3200, test_size=800, out_dir=str(out_dir), max_length=64,
                           quick=False, pooling="mean")
    ctx = build_context(args)
    ctx.data["test"] = _slice(ctx.data["validation"], 800, seed)  # validation rows in the held-out role
    ctx.progress = lambda it, **kw: it
    return ctx


def _main(ctx, steps: int, order: str) -> dict:
    from elue_hf.demo.elue import fill_flops
    from elue_hf.demo.runner import evaluate_exits, fine_tune_exits

    fine_tune_exits(ctx.model, ctx, steps, 32, 3e-4, group_by_length=order == "grouped")
    ctx.points.extend(evaluate_exits(ctx))
    fill_flops(ctx)
    static = {p.label: p for p in ctx.points if p.method.endswith("static")}
    full = static["k=6"]
    cheap = [p for p in ctx.points if p.method.endswith("entropy") and p.mean_flops <= 0.6 * full.mean_flops]
    best = max(cheap, key=lambda p: (p.accuracy, -p.mean_flops))
    return {"static": [round(static[f"k={k}"].accuracy, 2) for k in range(1, 7)], "full": full.accuracy,
            "entropy_best": best.accuracy, "entropy_label": best.label,
            "entropy_flops_share": best.mean_flops / full.mean_flops,
            "entropy_gap": best.accuracy - full.accuracy}


def _hashee(ctx, steps: int) -> dict:
    """The HashEE section (from ``ctx.model``: run ``main`` first in the same process, see ``--hashee-after``)."""
    from elue_hf.demo import hashee

    hashee.STEPS = steps
    hashee.run(ctx)
    point = ctx.points[-1]
    return {"accuracy": point.accuracy, "flops_x": point.extra["flops_speedup_vs_6L"]}


def _lpt(ctx, steps: int, order: str) -> dict:
    from elue_hf.demo import lpt

    lpt.GROUP_BY_LENGTH = order == "grouped"
    rows = lpt.run(ctx, steps=steps, eval_size=800)
    return {r["method"]: round(r["acc"], 2) for r in rows}


def run_one(section: str, steps: int, order: str, seed: int, hashee_after: list[int]) -> list[dict]:
    """One row for the run, and for ``main`` one ``hashee`` row per step count of ``hashee_after`` (each a fresh copy
    of the main model, as in the demo)."""
    import torch

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ctx = _context(seed, Path(tmp))
        start, cpu = time.perf_counter(), time.process_time()
        result = _main(ctx, steps, order) if section == "main" else _lpt(ctx, steps, order)
        rows.append({"section": section, "steps": steps, "order": order, "seed": seed, **result,
                     "wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu})
        for hashee_steps in hashee_after if section == "main" else ():
            start, cpu = time.perf_counter(), time.process_time()
            result = _hashee(ctx, hashee_steps)
            rows.append({"section": "hashee", "steps": hashee_steps, "order": f"from main:{steps}:{order}",
                         "seed": seed, **result, "gap": result["accuracy"] - rows[0]["full"],
                         "wall_s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu})
    return rows


def table(rows: list[dict]) -> str:
    """Mean (min-max) over the seeds of each (section, steps, order)."""
    import statistics

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["section"], r["order"], r["steps"]), []).append(r)
    keys = {"main": ["full", "entropy_best", "entropy_gap", "entropy_flops_share"],
            "hashee": ["accuracy", "gap", "flops_x"], "lpt": ["Full fine-tuning", "PEFT prompt tuning", "LPT"]}
    lines = []
    for (section, order, steps), rs in sorted(groups.items()):
        cells = []
        if section == "main":
            cells.append("min static " + "/".join(f"{min(r['static']):.2f}" for r in rs))
        for k in keys[section]:
            values = [r[k] for r in rs if k in r]
            if not values:
                continue
            cells.append(f"{k} {statistics.mean(values):.2f} ({'/'.join(f'{v:.2f}' for v in values)})")
        cpu = statistics.mean(r["cpu_s"] for r in rs)
        lines.append(f"| {section} | {order} | {steps} | seeds {','.join(str(r['seed']) for r in rs)} | "
                     + "; ".join(cells) + f" | {cpu:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="SECTION:STEPS[:ORDER], e.g. main:150:grouped, hashee:120, lpt:60")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--hashee-after", type=int, nargs="*", default=[],
                        help="after each main run, the HashEE section from its model with these step counts")
    parser.add_argument("--out", required=True, help="JSON lines file the results are appended to")
    parser.add_argument("--table", action="store_true", help="print the table of --out and exit")
    args = parser.parse_args()
    out = Path(args.out)
    if args.table:
        print(table([json.loads(line) for line in out.read_text().splitlines() if line.strip()]))
        return
    for spec in args.runs:
        section, steps, *order = spec.split(":")
        if section not in ("main", "lpt"):
            parser.error(f"unknown run {spec!r}: use main:STEPS[:ORDER] or lpt:STEPS[:ORDER] (HashEE: --hashee-after)")
        for seed in args.seeds:
            for row in run_one(section, int(steps), order[0] if order else "seeded", seed, args.hashee_after):
                print(json.dumps(row), flush=True)
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
