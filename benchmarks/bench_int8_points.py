"""int8 vs fp32 at every operating point of the demo's fine-tuned model (docs/benchmarks.md, "Deployment").

Operating points: static exit k = 1..L, entropy below each threshold of ``--thresholds``, patience 1-4. Each point
prints accuracy fp32 ONNX / int8 ONNX (and PyTorch int8 through torchao when importable), the change and the
prediction agreement with fp32. int8 ONNX runs each point through the bundle's own batched exit loop
(``OnnxElasticBertForSequenceClassification.forward``, batches of 32, length-sorted: what a user gets; its dynamic
activation scales depend on the rows in the batch). fp32 ONNX and PyTorch int8 (weight-only: row-independent) run
every exit on every row once and apply the exit rules (``elue_hf.deploy.policy.NumpyExitPolicy``) to those logits; one
fp32 point (entropy at ``--check-threshold``) is re-run through the exit loop to show the two routes agree.

``--study`` instead compares quantization settings on the VALIDATION split (per-channel, reduce-range, exit heads
in fp32, one projection kind kept fp32 in every layer: the per-node sensitivity), which is how ``quantize="int8"``'s
default was chosen (docs/deploy.md, "int8 accuracy").

    .venv/bin/python benchmarks/bench_int8_points.py --model elue_hf_outputs/demo/model [--split test] [--study]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from elue_hf.deploy.policy import NumpyExitPolicy

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
PATIENCE = (1, 2, 3, 4)
BATCH_SIZE = 32


def split_rows(split: str, size: int | None, max_length: int, tokenizer):
    """The demo's data (``load_rotten_tomatoes(seed=0)``; the test split sliced as ``make demo`` slices it):
    length-sorted padded int64 batches and the labels in that order."""
    from elue_hf.assets import load_rotten_tomatoes

    data = load_rotten_tomatoes(seed=0)[split]
    if size:
        data = data.shuffle(seed=0).select(range(min(size, len(data))))
    enc = tokenizer(list(data["sentence"]), truncation=True, max_length=max_length)
    order = sorted(range(len(data)), key=lambda i: len(enc["input_ids"][i]))
    labels = np.asarray(data["label"])[order]
    batches = []
    for start in range(0, len(order), BATCH_SIZE):
        rows = [{k: enc[k][i] for k in enc} for i in order[start:start + BATCH_SIZE]]
        padded = tokenizer.pad(rows, padding=True, return_tensors="np")
        batches.append(tuple(np.asarray(padded[k], dtype=np.int64)
                             for k in ("input_ids", "attention_mask", "token_type_ids")))
    return batches, labels


def onnx_exit_logits(bundle: Path, batches) -> np.ndarray:
    """(exits, rows, labels): every exit's logits from the bundle's graphs, every row running every layer."""
    from elue_hf.deploy import OnnxElasticBertForSequenceClassification

    model = OnnxElasticBertForSequenceClassification.from_pretrained(bundle, threads=1)
    names = [i.name for i in model.embeddings.get_inputs()]
    out = []
    for ids, mask, types in batches:
        feeds = dict(zip(("input_ids", "attention_mask", "token_type_ids"), (ids, mask, types)))
        hidden = model.embeddings.run(None, {n: feeds[n] for n in names})[0]
        exits = []
        for session in model.layers:
            outputs = session.run(None, {"hidden_states": hidden, "attention_mask": mask})
            hidden = outputs[0]
            exits.extend(outputs[1:])
        out.append(np.stack(exits))
    return np.concatenate(out, axis=1)


def torch_exit_logits(model, batches) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return np.concatenate([model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                                     token_type_ids=torch.from_numpy(types)).all_logits.numpy().transpose(1, 0, 2)
                               for ids, mask, types in batches], axis=1)


def operating_points(num_exits: int, thresholds=THRESHOLDS, patience=PATIENCE) -> list[tuple[str, str, object]]:
    return ([("static", f"k={k}", k) for k in range(1, num_exits + 1)]
            + [("entropy", f"H<{t}", t) for t in thresholds]
            + [("patience", f"p={p}", p) for p in patience if p < num_exits])


def decide(all_logits: np.ndarray, criterion: str, value) -> tuple[np.ndarray, np.ndarray]:
    """Predictions and 1-based exit index per row of one operating point, from every exit's logits."""
    exits, rows = all_logits.shape[:2]
    if criterion == "static":
        return all_logits[value - 1].argmax(-1), np.full(rows, value)
    policy = NumpyExitPolicy(criterion, entropy_threshold=value if criterion == "entropy" else 0.0,
                             patience=value if criterion == "patience" else 0)
    chosen = np.full(rows, exits)
    for j in range(exits):
        done = policy.step(all_logits[j], last=j + 1 == exits) & (chosen == exits) & (j + 1 < exits)
        chosen[done] = j + 1
    picked = all_logits[chosen - 1, np.arange(rows)]
    return picked.argmax(-1), chosen


def exit_loop(bundle: Path, batches):
    """``decide``'s twin that runs each point through the bundle's own batched exit loop
    (``OnnxElasticBertForSequenceClassification.forward``: rows leave, padding is trimmed). int8 ONNX needs it: dynamic
    quantization scales each activation tensor by its own range, so a row's int8 result depends on the rows and
    positions still in the batch, and the all-exits route would not be what a user gets."""
    from elue_hf.deploy import OnnxElasticBertForSequenceClassification

    model = OnnxElasticBertForSequenceClassification.from_pretrained(bundle, threads=1)

    def run(criterion: str, value):
        options = ({"exit_layer": value} if criterion == "static" else
                   {"exit_criterion": "entropy", "entropy_threshold": value} if criterion == "entropy" else
                   {"exit_criterion": "patience", "patience": value})
        outs = [model.forward(*b, **options) for b in batches]
        return (np.concatenate([o.logits.argmax(-1) for o in outs]),
                np.concatenate([np.asarray(o.exit_layer).reshape(-1) for o in outs]))

    return run


def compare(reference: np.ndarray, other, labels: np.ndarray, points) -> list[dict]:
    """Per point, fp32 (``reference``: every exit's logits) against ``other`` (every exit's logits, or a function
    ``(criterion, value) -> (predictions, exit layers)`` such as :func:`exit_loop`)."""
    rows = []
    for criterion, label, value in points:
        ref_pred, ref_exit = decide(reference, criterion, value)
        pred, exit_ = other(criterion, value) if callable(other) else decide(other, criterion, value)
        rows.append({"point": label, "fp32": 100 * np.mean(ref_pred == labels), "other": 100 * np.mean(pred == labels),
                     "agree": 100 * np.mean(pred == ref_pred), "exit_agree": 100 * np.mean(exit_ == ref_exit),
                     "mean_exit": float(exit_.mean()), "fp32_mean_exit": float(ref_exit.mean())})
    return rows


def quantized_bundle(fp32: Path, target: Path, **settings) -> Path:
    """A copy of the fp32 bundle with every graph quantized by ``quantize_onnx_int8(**settings)`` (settings over
    ``quantize_dynamic``'s defaults, ``PLAIN_INT8``)."""
    import json

    from elue_hf.deploy.export import PLAIN_INT8, quantize_onnx_int8

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(fp32, target)
    config = json.loads((fp32 / "elue_deploy.json").read_text())
    hidden = json.loads((fp32 / "config.json").read_text()).get("hidden_size")
    for name in [config["embeddings"], *config["layers"]]:
        quantize_onnx_int8(fp32 / name, target / name, hidden_size=hidden, **{**PLAIN_INT8, **settings})
    config["quantize"] = "int8"
    (target / "elue_deploy.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return target


def projection_names(layer_graph: Path) -> list[list[str]]:
    """Per projection kind (in graph order: BERT's query, key, value, attention output, FFN in, FFN out), the
    MatMul node with a constant weight of that kind in one layer graph."""
    import onnx

    graph = onnx.load(str(layer_graph)).graph
    constants = {i.name for i in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in constants]


PROJECTIONS = ("query", "key", "value", "attention output", "FFN in", "FFN out")


def study(fp32: Path, work: Path, batches, labels, points) -> None:
    """Quantization settings on the given split: mean and worst |accuracy change| over the points, agreement."""
    import json

    from elue_hf.deploy.export import INT8_SETTINGS

    reference = onnx_exit_logits(fp32, batches)
    config = json.loads((fp32 / "elue_deploy.json").read_text())
    per_layer = [projection_names(fp32 / name) for name in config["layers"]]
    settings = {
        "QInt8 per-tensor (the quantize_dynamic default)": {"per_channel": False},
        "per-channel": {"per_channel": True},
        "reduce-range": {"reduce_range": True},
        "per-channel + reduce-range": {"per_channel": True, "reduce_range": True},
        "exit heads fp32": {"op_types": ("MatMul",)},
        "per-channel, exit heads fp32": {"per_channel": True, "op_types": ("MatMul",)},
    }
    for k, kind in enumerate(PROJECTIONS):
        if all(len(names) == len(PROJECTIONS) for names in per_layer):
            settings[f"{kind} fp32"] = {"exclude": [names[k] for names in per_layer]}
    settings["FFN out fp32, found by shape"] = {"fp32_down_projection": True}
    settings["per-channel, FFN out fp32"] = {"per_channel": True, "fp32_down_projection": True}
    settings["per-channel + reduce-range, FFN out fp32 (the default)"] = dict(INT8_SETTINGS)
    print(f"{'setting':<56} {'mean |d|':>8} {'max |d|':>8} {'d @H<0.4':>8} {'agree %':>8}")
    for name, kwargs in settings.items():
        exclude = kwargs.pop("exclude", ())
        bundle = quantized_bundle(fp32, work / "study", exclude=exclude, **kwargs)
        rows = compare(reference, onnx_exit_logits(bundle, batches), labels, points)
        deltas = np.array([r["other"] - r["fp32"] for r in rows])
        at = next((r["other"] - r["fp32"] for r in rows if r["point"] == "H<0.4"), float("nan"))
        print(f"{name:<56} {np.abs(deltas).mean():8.2f} {np.abs(deltas).max():8.2f} {at:+8.2f} "
              f"{np.mean([r['agree'] for r in rows]):8.2f}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a fine-tuned multi-exit classifier folder (the demo's)")
    p.add_argument("--split", default="test", choices=("test", "validation"))
    p.add_argument("--size", type=int, default=None, help="rows (test default: the demo's 800; validation: all)")
    p.add_argument("--max-length", type=int, default=64, help="the demo's truncation")
    p.add_argument("--thresholds", type=float, nargs="+", default=THRESHOLDS)
    p.add_argument("--check-threshold", type=float, default=0.4)
    p.add_argument("--study", action="store_true", help="compare quantization settings instead")
    p.add_argument("--work-dir", default=None, help="keep the bundles here (default: a temporary folder)")
    args = p.parse_args()

    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import elue_hf  # noqa: F401  (registers ElasticBERT with the Auto classes)
    from elue_hf.deploy import export_multi_exit

    torch.set_num_threads(1)
    size = args.size if args.size is not None else (800 if args.split == "test" else None)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model).eval()
    batches, labels = split_rows(args.split, size, args.max_length, tokenizer)
    points = operating_points(len(model.config.exit_layer_indices), tuple(args.thresholds))
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="int8_points_"))
    fp32 = export_multi_exit(model, work / "fp32", tokenizer=tokenizer, overwrite=True)
    print(f"{args.model}: {args.split} split, {len(labels)} rows, 1 thread")
    if args.study:
        study(fp32, work, batches, labels, points)
        return
    int8 = export_multi_exit(model, work / "int8", quantize="int8", tokenizer=tokenizer, overwrite=True)
    reference = onnx_exit_logits(fp32, batches)
    others = {"ONNX int8": exit_loop(int8, batches)}
    try:
        from elue_hf.deploy.int8 import quantize_int8

        others["PyTorch int8 (torchao)"] = torch_exit_logits(quantize_int8(model), batches)
    except ImportError as err:
        print(f"PyTorch int8 row skipped: {err}")
    tables = {name: compare(reference, logits, labels, points) for name, logits in others.items()}
    header = f"{'point':<8} {'fp32 ONNX':>9} {'mean exit':>9}"
    for name in tables:
        header += f" | {name + ' acc':>28} {'change':>7} {'agree %':>7}"
    print(header)
    for i, (_, label, _) in enumerate(points):
        first = next(iter(tables.values()))[i]
        line = f"{label:<8} {first['fp32']:9.2f} {first['fp32_mean_exit']:9.2f}"
        for rows in tables.values():
            r = rows[i]
            line += f" | {r['other']:28.2f} {r['other'] - r['fp32']:+7.2f} {r['agree']:7.2f}"
        print(line)
    check = exit_loop(fp32, batches)("entropy", args.check_threshold)[0]
    offline = decide(reference, "entropy", args.check_threshold)[0]
    print(f"check: fp32 ONNX at H<{args.check_threshold}, the bundle's batched exit loop and the all-exits route give "
          f"the same prediction on {100 * np.mean(check == offline):.2f} % of the rows")

if __name__ == "__main__":
    main()
