"""``make demo`` section: ELUE FLOPs for every operating point, an SST-2-like submission and its score.

The data are the embedded RT snippets (Pang & Lee), an SST-2-like task — *not* the ELUE SST-2 test set — so the
score against the SST-2 reference curve only illustrates the pipeline; it is labelled that way everywhere.
"""

from __future__ import annotations

import numpy as np

from ..elue.flops import dims_from_config, model_flops
from ..elue.flops.module_spec import encoder_modules, module_spec_from_config, with_embedding_sizes
from ..elue.flops.params import count_parameters
from ..elue.inference import operating_point_params, point_params, run_operating_points
from ..elue.plots import pareto_plot
from ..elue.score import score_submission
from ..elue.submission import PredictionFile, write_submission, zip_submission
from ..elue.tasks import TASKS
from .context import DemoContext, OperatingPoint

__all__ = ["run", "fill_flops"]

_NEEDED = ("predictions", "exit_layers", "lengths", "mode")


def _has_outputs(point: OperatingPoint, rows: int | None = None) -> bool:
    ok = all(k in point.extra for k in _NEEDED)
    return ok and (rows is None or len(point.extra["predictions"]) == rows)


def fill_flops(ctx: DemoContext) -> dict[str, np.ndarray]:
    """Set ``mean_flops`` (MFLOPs per instance, ELUE rules) of every point that carries per-instance outputs (and
    ``params`` when missing); return the per-instance MFLOPs by point name."""
    per_point = {}
    for point in ctx.points:
        if not _has_outputs(point):
            continue
        extra = point.extra
        mflops = np.asarray(model_flops(ctx.model.config, np.asarray(extra["lengths"]),
                                        np.asarray(extra["exit_layers"]), extra["mode"]), dtype=np.float64)
        point.mean_flops = float(mflops.mean())
        if point.params is None:
            layers = max(extra["exit_layers"]) if extra["mode"] == "static" else None
            point.params = operating_point_params(ctx.model, extra["mode"], layers)
        per_point[f"{point.method} {point.label}"] = mflops
    return per_point


def _own_points(ctx: DemoContext) -> list[OperatingPoint]:
    """Static-depth points of ``ctx.model`` when no other section left per-instance outputs."""
    outputs = run_operating_points(ctx.model, ctx.tokenizer, ctx.data["test"], TASKS["sst-2"], "static",
                                   max_length=ctx.max_length, progress=ctx.progress)
    labels = np.asarray(ctx.data["test"]["label"])
    points = []
    for out in outputs:
        acc = float(100.0 * np.mean(np.asarray(out.predictions) == labels))
        points.append(OperatingPoint(
            method="ElasticBERT static (ELUE section)", label=out.label.replace("static ", ""), accuracy=acc,
            params=point_params(ctx.model, out),
            extra={"predictions": out.predictions, "exit_layers": out.exit_layers, "lengths": out.lengths,
                   "mode": out.mode},
        ))
    return points


def run(ctx: DemoContext) -> None:
    if not any(_has_outputs(p) for p in ctx.points):
        ctx.points.extend(_own_points(ctx))
    per_point = fill_flops(ctx)
    out_dir = ctx.out_dir / "elue"
    out_dir.mkdir(parents=True, exist_ok=True)

    # 1. FLOPs per instance of every operating point
    names = list(per_point)
    with open(out_dir / "flops_per_instance.tsv", "w", encoding="utf-8") as fh:
        fh.write("index\t" + "\t".join(names) + "\n")
        for i in range(len(next(iter(per_point.values()), []))):
            fh.write(f"{i}\t" + "\t".join(f"{per_point[n][i]:.4f}" for n in names) + "\n")
    print(f"\nELUE FLOPs per instance ({ctx.dataset_name}; MFLOPs, ELUE rules, true lengths)")
    print(f"{'operating point':<40} {'mean':>9} {'min':>9} {'max':>9}")
    for name, v in per_point.items():
        print(f"{name[:40]:<40} {v.mean():>9.2f} {v.min():>9.2f} {v.max():>9.2f}")

    # 2. a submission for the SST-2-like task
    dims = dims_from_config(ctx.model.config)
    files = {}
    for point in ctx.points:
        if not _has_outputs(point, len(ctx.data["test"])):
            continue
        extra = point.extra
        modules = [encoder_modules(dims, n, k, extra["mode"]) for n, k in zip(extra["lengths"], extra["exit_layers"])]
        files[f"{point.method} {point.label}"] = PredictionFile(
            "sst-2", extra["predictions"], modules=modules, label=f"{point.method} {point.label}",
            params=point.params, max_seq_length=ctx.max_length,
        )
    sub = write_submission(
        out_dir / "submission", "elue-hf demo: MiniLM-L6 as ElasticBERT",
        f"SST-2-like data: {ctx.dataset_name} test slice, not the ELUE SST-2 test set", count_parameters(ctx.model),
        files, module_spec=with_embedding_sizes(module_spec_from_config(ctx.model.config), ctx.model.config),
    )
    zipped = zip_submission(sub, out_dir / "submission_sst2_like.zip")
    gold = np.asarray(ctx.data["test"]["label"])
    result = score_submission(zipped, {"sst-2": gold})
    print(f"\nELUE score against the SST-2 reference curve, on SST-2-like data ({ctx.dataset_name}):")
    print(result.format_table())
    print("(illustrative only: the reference curve is ElasticBERT-base on the real SST-2 test set; a 6-layer "
          "MiniLM at hidden 384 sits far left of it, where the curve is extrapolated)")

    # 3. Pareto plot of every point with FLOPs
    plotted = [{"method": p.method, "label": p.label, "mflops": p.mean_flops, "performance": p.accuracy}
               for p in ctx.points if p.mean_flops is not None]
    png = pareto_plot(plotted, "sst-2", out_dir / "pareto_sst2_like.png", data_label=ctx.dataset_name,
                      title="Accuracy vs FLOPs on SST-2-like data (RT snippets, Pang & Lee)")
    if isinstance(getattr(ctx, "artifacts", None), dict):
        ctx.artifacts.update(elue_submission_zip=zipped, elue_pareto_png=png,
                             elue_flops_per_instance=out_dir / "flops_per_instance.tsv")
    print(f"saved {zipped}, {png} and {out_dir / 'flops_per_instance.tsv'}")
