"""``elue-hf evaluate | score | recompute-imdb-flops`` (registered by ``elue_hf.cli``)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

__all__ = ["register", "cmd_evaluate", "cmd_score", "cmd_recompute_imdb"]


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sweep takes comma-separated numbers, got {text!r}") from None


def register(subparsers) -> None:
    ev = subparsers.add_parser(
        "evaluate",
        help="run a model over an ELUE test set, write a submission + Pareto plot, print the scores",
        description="Run a sequence classifier (BERT, RoBERTa, ElasticBERT, DistilBERT, ALBERT, DeBERTa-v2, "
        "ModernBERT; other encoders via the generic FLOPs route) over an ELUE test set. Writes <output>/submission/ "
        "(+ .zip) with one TSV per operating point, a Pareto PNG, and prints the ELUE scores.",
    )
    ev.add_argument("--model", required=True, help="local model directory (or a Hub id available offline)")
    ev.add_argument("--task", required=True, help="sst-2, imdb, mrpc, sts-b, snli or scitail")
    ev.add_argument("--data-dir", help="ELUE data directory (<Task>/test.tsv and test_full.tsv)")
    ev.add_argument("--hub", action="store_true", help="load the task's public Hub copy instead (needs network)")
    ev.add_argument("--exit", default="static", choices=["static", "entropy", "patience"])
    ev.add_argument("--sweep", type=_floats, default=None,
                    help="static: depths (e.g. 1,2,3,6); entropy: thresholds; patience: counts")
    ev.add_argument("--max-length", type=int, default=None, help="truncation (default 128; 512 for IMDb)")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--limit", type=int, default=None, help="only the first N test rows (smoke runs; not scorable)")
    ev.add_argument("--output", default="elue_hf_outputs/evaluate", help="output directory")
    ev.add_argument("--model-name", default=None, help="name written into submission.json")
    ev.add_argument("--reference", default=None, help="reference-curve JSON (default: shipped / $ELUE_HF_REFERENCE)")
    ev.set_defaults(func=cmd_evaluate)

    sc = subparsers.add_parser("score", help="validate and score a submission (directory or zip)")
    sc.add_argument("submission", help="submission directory or zip")
    sc.add_argument("--data-dir", required=True, help="ELUE data directory with <Task>/test_full.tsv (gold labels)")
    sc.add_argument("--reference", default=None, help="reference-curve JSON (default: shipped / $ELUE_HF_REFERENCE)")
    sc.add_argument("--json", action="store_true", help="print the full result as JSON")
    sc.set_defaults(func=cmd_score)

    rc = subparsers.add_parser(
        "recompute-imdb-flops",
        help="recompute the IMDb reference FLOPs from a local IMDb test set (makes IMDb scores non-provisional)",
        description="Tokenise a local IMDb test set (bert-base-uncased WordPiece, truncation 512), compute "
        "ElasticBERT-base FLOPs per reference depth and write a complete reference-curve JSON. Use it with "
        "--reference FILE or export ELUE_HF_REFERENCE=FILE.",
    )
    rc.add_argument("--data-dir", required=True, help="ELUE data directory holding IMDb/test_full.tsv or test.tsv")
    rc.add_argument("--tokenizer", default="bert-base-uncased",
                    help="tokenizer dir or id; 'embedded' = the embedded MiniLM tokenizer (same uncased vocabulary)")
    rc.add_argument("--max-length", type=int, default=512)
    rc.add_argument("--output", required=True, help="where to write the reference-curve JSON")
    rc.set_defaults(func=cmd_recompute_imdb)


def _load_tokenizer(name: str):
    from transformers import AutoTokenizer

    if name == "embedded":
        from elue_hf.assets import minilm_path

        name = str(minilm_path())
    return AutoTokenizer.from_pretrained(name)


def _test_dataset(args, task):
    from ..elue.data import load_elue_split, load_hub_task

    if args.data_dir:
        ds = load_elue_split(args.data_dir, task, "test")
    elif args.hub:
        ds = load_hub_task(task)["test"]
    else:
        raise ValueError("give --data-dir DIR (ELUE TSV layout) or --hub (public Hub copy)")
    if args.limit:
        ds = ds.select(range(min(args.limit, len(ds))))
    return ds


def cmd_evaluate(args) -> int:
    from transformers import AutoModelForSequenceClassification

    import elue_hf  # noqa: F401  (registers ElasticBERT with the Auto classes)

    from ..elue.flops.architectures import flops_shape
    from ..elue.flops.params import count_parameters
    from ..elue.plots import pareto_plot
    from ..elue.inference import point_params, run_operating_points, submission_spec, to_prediction_file
    from ..elue.score import score_submission
    from ..elue.submission import write_submission, zip_submission
    from ..elue.tasks import get_task

    task = get_task(args.task)
    max_length = args.max_length or (512 if task.key == "imdb" else 128)
    dataset = _test_dataset(args, task)
    model = AutoModelForSequenceClassification.from_pretrained(args.model)
    if model.config.num_labels != task.num_labels:
        raise ValueError(f"the model has {model.config.num_labels} labels but {task.name} needs {task.num_labels}")
    tokenizer = _load_tokenizer(args.model)
    sweep = args.sweep if args.exit != "static" or not args.sweep else [int(v) for v in args.sweep]
    points = run_operating_points(model, tokenizer, dataset, task, args.exit, sweep, max_length, args.batch_size)
    dims = flops_shape(model)
    route = getattr(dims, "route", "analytic")
    print(f"FLOPs: {route} route for model_type {model.config.model_type!r}"
          + (" (FlopCounterMode + ELUE terms; self-reported)" if route == "generic" else ""))
    out = Path(args.output)
    files = {
        p.label: to_prediction_file(p, task, dims, point_params(model, p), max_length) for p in points
    }
    name = args.model_name or Path(str(args.model)).name
    sub = write_submission(out / "submission", name, f"elue-hf evaluate --exit {args.exit} on {task.name}",
                           count_parameters(model), files, module_spec=submission_spec(model),
                           extra={"flops_route": route} if route == "generic" else None)
    zipped = zip_submission(sub)
    print(f"submission: {sub} ({zipped})")
    labels = np.asarray(dataset["label"], dtype=np.float64)
    scorable = not args.limit and np.all(np.isfinite(labels)) and np.all(labels >= 0)
    if scorable:
        result = score_submission(zipped, {task.key: labels}, args.reference)
        print(result.format_table())
        plot_points = [{"method": name, "label": fs.label.replace("static ", ""), "mflops": fs.mean_mflops,
                        "performance": fs.performance} for fs in result.tasks[task.key].files]
        png = pareto_plot(plot_points, task, out / f"pareto_{task.key}.png", args.reference)
        print(f"Pareto plot: {png}")
    else:
        print("no gold test labels (or --limit given): the submission was written but not scored")
    return 0


def cmd_score(args) -> int:
    from ..elue.score import score_submission

    result = score_submission(args.submission, args.data_dir, args.reference)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.format_table())
    return 0


def cmd_recompute_imdb(args) -> int:
    from ..elue.data import SPLIT_FILES, read_elue_tsv, task_dir, token_lengths
    from ..elue.score.reference import REFERENCE_ENV, recompute_imdb_reference

    folder = task_dir(args.data_dir, "imdb")
    split = "test_full" if (folder / SPLIT_FILES["test_full"]).exists() else "test"
    columns = read_elue_tsv(folder / SPLIT_FILES[split], "imdb", split)
    tokenizer = _load_tokenizer(args.tokenizer)
    lengths = token_lengths(tokenizer, "imdb", {"sentence": columns["sentence"]}, args.max_length)
    doc = recompute_imdb_reference(lengths, max_seq_length=args.max_length,
                                   source=f"tokenizer {args.tokenizer}, file {folder / SPLIT_FILES[split]}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    points = ", ".join(f"L={p['layers']}: {p['mflops']:.1f}" for p in doc["tasks"]["imdb"]["points"])
    print(f"IMDb: {len(lengths)} instances, mean {np.mean(lengths):.2f} tokens -> MFLOPs {points}")
    print(f"wrote {args.output}; use it with --reference {args.output} or `export {REFERENCE_ENV}={args.output}`")
    if os.environ.get(REFERENCE_ENV):
        print(f"note: ${REFERENCE_ENV} is currently {os.environ[REFERENCE_ENV]}")
    return 0

