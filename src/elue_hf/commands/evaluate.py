"""``elue-hf evaluate | score | recompute-imdb-flops`` (registered by ``elue_hf.cli``).

Module import stays light (``elue-hf --help``): NumPy, torch and transformers load inside the commands.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from .sources import TOKENIZER_FILES, load_from
from .task_arg import task_arg

__all__ = ["register", "cmd_evaluate", "cmd_score", "cmd_recompute_imdb", "parse_settings", "prepare_output",
           "clear_earlier_run"]

_OUTPUTS = ("submission", "submission.zip", "operating_points.json", "int8_vs_fp32.json")  # + pareto_<task>.png


def _numbers(kind: str, cast):
    def parse(text: str):
        try:
            values = [cast(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} takes comma-separated numbers, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"{kind} needs at least one value")
        return values

    return parse


def _depths(text: str):
    return "all" if text.strip().lower() == "all" else _numbers("--static", int)(text)


def register(subparsers) -> None:
    ev = subparsers.add_parser(
        "evaluate",
        help="run a model over an ELUE test set, write a submission + Pareto plot, print the scores",
        description="Run a sequence classifier (BERT, RoBERTa, ElasticBERT, DistilBERT, ALBERT, DeBERTa-v2, "
        "ModernBERT; other encoders via the generic FLOPs route) over an ELUE test set (or data in the ELUE layout). "
        "Every operating point -- static depths, entropy thresholds, patience counts (ElasticBERT), in any mix -- "
        "comes from one pass over the data. Writes <output>/submission/ (+ .zip) with one TSV per point and a Pareto "
        "PNG, and prints the ELUE scores.",
        epilog="examples: elue-hf evaluate --model DIR --task sst-2 --data-dir ELUE --static --entropy 0.1,0.3 "
        "--patience 1,2    |    --static 1,3,6 (chosen depths)",
    )
    ev.add_argument("--model", required=True,
                    help="local model folder (or a Hub id available offline); a HashEE folder gives one token-level "
                    "point, an LPT adapter folder static points")
    ev.add_argument("--base-model", default=None,
                    help="for an LPT adapter folder: its base model (folder or Hub id; default: the adapter's "
                    "base_model_name_or_path)")
    ev.add_argument("--task", required=True, type=task_arg, help="sst-2, imdb, mrpc, sts-b, snli or scitail")
    ev.add_argument("--tokenizer", default=None,
                    help="tokenizer folder or Hub id (default: the model folder; needed when it has no tokenizer)")
    ev.add_argument("--model-id", default=None,
                    help="Hub id (owner/name, optionally @revision) the model and its tokenizer are published under, "
                         "written into submission.json so a leaderboard can check token lengths and re-run the model "
                         "(default: --model's folder name or id)")
    ev.add_argument("--data-dir", help="ELUE data directory (<Task>/test.tsv and test_full.tsv)")
    ev.add_argument("--data-name", default=None,
                    help="name of the data when it is not the ELUE test set (plot title, submission description)")
    ev.add_argument("--hub", action="store_true", help="load the task's public Hub copy instead (needs network)")
    ev.add_argument("--static", nargs="?", const="all", type=_depths, default=None, metavar="K,K",
                    help="static exits at these depths ('all' or no value: every exit); the default when no "
                    "--entropy/--patience is given")
    ev.add_argument("--entropy", type=_numbers("--entropy", float), default=None, metavar="T,T",
                    help="entropy early exit at these thresholds (ElasticBERT)")
    ev.add_argument("--patience", type=_numbers("--patience", int), default=None, metavar="P,P",
                    help="patience early exit with these counts (ElasticBERT; 0 = no early exit)")
    ev.add_argument("--quantize", choices=("int8",), default=None,
                    help="int8: also evaluate the model quantized to int8 in PyTorch (torchao int8 weights; pip "
                    "install \"elue-hf[int8]\"), print its accuracy cost next to fp32 at every operating point and "
                    "write the int8 model's submission (an exported bundle is quantized at export instead)")
    ev.add_argument("--max-length", type=int, default=None, help="truncation (default: 128; 512 for IMDb)")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--limit", type=int, default=None, help="only the first N test rows (smoke runs; not scorable)")
    ev.add_argument("--output", default=None,
                    help="output folder (default: a new elue_hf_outputs/evaluate/<model>-<task>-<time>)")
    ev.add_argument("--overwrite", action="store_true", help="replace the outputs of an earlier run in --output")
    ev.add_argument("--model-name", default=None, help="name written into submission.json (default: folder name)")
    ev.add_argument("--reference", default=None, help="reference-curve JSON (default: shipped / $ELUE_HF_REFERENCE)")
    ev.add_argument("--no-progress", action="store_true", help="no progress bars (they go to stderr)")
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


def parse_settings(args, exit_layers=()) -> list:
    """The operating points asked for: ``--static``, ``--entropy`` and ``--patience`` together. ``[]`` = the
    default (every exit of an ElasticBERT, else the full depth); ``--static`` alone or ``--static all`` = every layer
    in ``exit_layers`` (the model's exits)."""
    from ..elue.inference import ExitSetting

    depths = exit_layers if args.static == "all" else args.static or []
    settings = [ExitSetting("static", k) for k in depths]
    settings += [ExitSetting("entropy", t) for t in args.entropy or []]
    settings += [ExitSetting("patience", p) for p in args.patience or []]
    return settings


def _load_model(name: str, base_model: str | None = None, num_labels: int | None = None):
    """A classifier folder or Hub id (HashEE folders included), or an LPT adapter folder on its base model
    (``base_model``, default the adapter's ``base_model_name_or_path``, given a head of ``num_labels``)."""
    from transformers import AutoModelForSequenceClassification

    import elue_hf  # noqa: F401  (registers ElasticBERT, HashEE and LPT with the Auto classes and PEFT)

    from ..methods.bundles import is_bundle, load_bundle

    if is_bundle(name):  # an `elue-hf export` folder: run by ONNX Runtime with its exits
        return load_bundle(name)

    def load(source):
        if not (isinstance(source, Path) and (source / "adapter_config.json").is_file()):
            return AutoModelForSequenceClassification.from_pretrained(source)
        from peft import PeftConfig, PeftModel

        base_name = base_model or PeftConfig.from_pretrained(source).base_model_name_or_path
        load_base = lambda b: AutoModelForSequenceClassification.from_pretrained(  # noqa: E731
            b, num_labels=num_labels, ignore_mismatched_sizes=True)
        base = load_from(load_base, str(base_name), "--base-model")
        return PeftModel.from_pretrained(base, source, is_trainable=False).eval()

    return load_from(load, name, "--model", ("config.json", "adapter_config.json"))


def _tokenizer_source(args) -> tuple[str, str]:
    """``(name, flag)`` of the tokenizer: ``--tokenizer``, else the model's own, else for an LPT adapter folder
    without tokenizer files its base model's (``--base-model`` or the adapter's ``base_model_name_or_path``)."""
    from ..tokenizer_io import has_tokenizer_files

    if args.tokenizer:
        return args.tokenizer, "--tokenizer"
    adapter = Path(args.model) / "adapter_config.json"
    if adapter.is_file() and not has_tokenizer_files(args.model):
        base = args.base_model or json.loads(adapter.read_text(encoding="utf-8")).get("base_model_name_or_path")
        if isinstance(base, str) and base:
            return base, "--base-model"
    return args.model, "--model"


def _load_tokenizer(name: str, flag: str = "--tokenizer"):
    from transformers import AutoTokenizer

    if name == "embedded":
        from elue_hf.assets import minilm_path

        name = str(minilm_path())
    hint = "; pass --tokenizer DIR_OR_ID (e.g. the BERT it was converted from)" if flag != "--tokenizer" else ""
    return load_from(AutoTokenizer.from_pretrained, name, flag, TOKENIZER_FILES, "tokenizer", hint)


def _test_dataset(args, task):
    from ..elue.data import load_elue_split, load_hub_task

    if args.data_dir:
        ds = load_elue_split(args.data_dir, task, "test")
    elif args.hub:
        try:
            ds = load_hub_task(task)["test"]
        except (ConnectionError, OSError):
            raise ValueError(f"the {task.name} test set could not be loaded from the Hub ({task.hub.repo}): offline "
                             "or unreachable; give --data-dir DIR with the ELUE files instead") from None
    else:
        raise ValueError("give --data-dir DIR (ELUE TSV layout) or --hub (public Hub copy)")
    if args.limit:
        ds = ds.select(range(min(args.limit, len(ds))))
    return ds


def prepare_output(output: str | None, model: str, task_key: str, overwrite: bool = False,
                   root: str = "elue_hf_outputs/evaluate") -> Path:
    """The run's output folder. Default: a new ``<root>/<model>-<task>-<UTC time>`` (never reused). A given folder
    that holds an earlier run's outputs is refused unless ``overwrite`` (see :func:`clear_earlier_run`)."""
    if output is None:
        when = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        stem = Path(root) / f"{Path(str(model)).name or 'model'}-{task_key}-{when}"
        out, n = stem, 1
        while out.exists():
            n += 1
            out = stem.with_name(f"{stem.name}-{n}")
        return out
    out = Path(output)
    earlier = _earlier_outputs(out)
    if earlier and not overwrite:
        raise ValueError(f"--output {out} already holds an earlier run ({', '.join(p.name for p in earlier)}); pass "
                         "--overwrite to replace it, or choose another folder")
    sub = out / "submission"
    if sub.is_dir() and any(sub.iterdir()) and not (sub / "submission.json").exists():
        raise ValueError(f"--output {out}: {sub} is not an elue-hf submission folder; refusing to replace it")
    return out


def _earlier_outputs(out: Path) -> list[Path]:
    return sorted({*out.glob("pareto_*.png"), *(out / n for n in _OUTPUTS if (out / n).exists())})


def clear_earlier_run(out: Path) -> None:
    """Remove what an earlier ``evaluate`` wrote into ``out`` (submission/, its zip, Pareto PNGs); nothing else."""
    for target in _earlier_outputs(out):
        shutil.rmtree(target) if target.is_dir() else target.unlink()


def _progress(disabled: bool):
    from tqdm import tqdm

    return lambda it, **kw: tqdm(it, file=sys.stderr, disable=disabled, dynamic_ncols=True, **kw)


def cmd_evaluate(args) -> int:
    from ..elue.plots import pareto_plot
    from ..elue.score import score_submission
    from ..elue.submission import write_submission, zip_submission

    task = args.task  # an ElueTask: resolved once, by --task's type
    parse_settings(args)  # flag mistakes first, before anything is loaded
    out = prepare_output(args.output, args.model, task.key, args.overwrite)
    max_length = args.max_length or (512 if task.key == "imdb" else 128)
    model = _load_model(args.model, args.base_model, task.num_labels)
    _check_quantize(args, model)
    if model.config.num_labels != task.num_labels:
        raise ValueError(f"the model has {model.config.num_labels} labels but {task.name} needs {task.num_labels}")
    tokenizer = _load_tokenizer(*_tokenizer_source(args))
    dataset = _test_dataset(args, task)
    start = time.perf_counter()
    files, spec, params, route, int8_rows = _prediction_files(model, tokenizer, dataset, task, args, max_length)
    passes = "one pass each for fp32 and int8" if int8_rows is not None else "one pass"
    print(f"{len(files)} operating point{'s' if len(files) != 1 else ''} from {passes} over {len(dataset)} rows "
          f"({time.perf_counter() - start:.1f} s)")
    print(f"FLOPs: {route} route for model_type {model.config.model_type!r}"
          + (" (FlopCounterMode + ELUE terms; self-reported)" if route == "generic" else "")
          + (" (self-reported; `elue-hf verify` re-runs it)" if route == "lpt" else ""))
    clear_earlier_run(out)
    if int8_rows is not None:
        _report_int8(out, task, int8_rows)
    name = args.model_name or Path(str(args.model)).name + (f" ({args.quantize})" if args.quantize else "")
    data = args.data_name or f"the ELUE {task.name} test set"
    modes = ", ".join(files) + (f" ({args.quantize}, torchao)" if args.quantize else "")
    extra = {**({"data_name": args.data_name} if args.data_name else {}),
             **({"flops_route": route} if route in ("generic", "lpt") else {}),
             **({"quantize": args.quantize} if args.quantize else {})}
    model_id, revision = _published_as(args.model_id or args.model)
    sub = write_submission(out / "submission", name, f"elue-hf evaluate on {data} ({task.name} format): {modes}",
                           params, files, module_spec=spec, extra=extra or None,
                           tokenizer=model_id, model={"id": model_id, **({"revision": revision} if revision else {})})
    zipped = zip_submission(sub)
    print(f"submission: {sub} ({zipped})")
    labels = _gold_labels(dataset, args)
    if labels is None:
        print("no gold test labels (or --limit given): the submission was written but not scored")
        return 0
    result = score_submission(zipped, {task.key: labels}, args.reference)
    print(result.format_table())
    if args.data_name:
        print(illustrative_note(args.data_name, [task.name]))
    plot_points = [{"method": f"{name} ({fs.label.split()[0]})", "label": fs.label, "mflops": fs.mean_mflops,
                    "performance": fs.performance} for fs in result.tasks[task.key].files]
    png = pareto_plot(plot_points, task, out / f"pareto_{task.key}.png", args.reference, data_label=args.data_name)
    print(f"Pareto plot: {png}")
    return 0


def _prediction_files(model, tokenizer, dataset, task, args, max_length: int):
    """``(files by label, module spec, params, FLOPs route, int8 comparison rows or None)`` of a plain, HashEE or LPT
    classifier or an exported bundle; with ``--quantize int8`` the files are the int8 model's."""
    from ..elue.flops.architectures import flops_shape
    from ..elue.flops.params import count_parameters
    from ..elue.inference import (
        point_mean_mflops,
        point_params,
        run_operating_points,
        submission_spec,
        to_prediction_file,
    )
    from ..hashee.auto import is_hashee_config
    from ..methods.bundles import ExportedBundle
    from ..methods.lpt_points import is_lpt_model, lpt_params, lpt_prediction_file

    progress = _progress(args.no_progress)
    if isinstance(model, ExportedBundle):
        return _bundle_prediction_files(model, tokenizer, dataset, task, args, max_length, progress)
    if is_hashee_config(model.config):
        from ..methods.hashee_points import HASHEE_LABEL, hashee_prediction_file, hashee_spec, run_hashee

        if parse_settings(args):
            raise ValueError("a HashEE model exits token by token as its table says: --static/--entropy/--patience "
                             "do not apply")
        out = run_hashee(model, tokenizer, dataset, task, max_length, args.batch_size, progress)
        params = count_parameters(model)
        return ({HASHEE_LABEL: hashee_prediction_file(out, task, model.config, params, max_length)},
                hashee_spec(model), params, "token-level (HashEE)", None)
    lpt = is_lpt_model(model)
    dims = flops_shape(model)
    settings = parse_settings(args, dims.exit_layers)
    if lpt and any(s.exit != "static" for s in settings):
        raise ValueError("an LPT classifier is evaluated at static exits only (--static)")
    points = run_operating_points(model, tokenizer, dataset, task, max_length=max_length,
                                  batch_size=args.batch_size, progress=progress, settings=settings)
    if lpt:
        files = [lpt_prediction_file(model, p, task, max_length) for p in points]
        return {f.label: f for f in files}, None, lpt_params(model), "lpt", None
    files = {p.label: to_prediction_file(p, task, dims, point_params(model, p), max_length) for p in points}
    int8_rows = None
    if args.quantize:  # the same points of the int8 model; FLOPs, spec and parameters stay the fp32 model's
        from ..deploy.int8 import quantize_model
        from ..methods.int8_points import int8_comparison

        int8_points = run_operating_points(quantize_model(model, args.quantize), tokenizer, dataset, task,
                                           max_length=max_length, batch_size=args.batch_size, progress=progress,
                                           settings=settings)
        mean = ((lambda p: sum(dims.mflops(p.lengths)) / len(p.lengths)) if getattr(dims, "route", None) == "generic"
                else (lambda p: point_mean_mflops(model, p)))  # the generic route has one exit: FLOPs by length
        mflops = [(mean(a), mean(b)) for a, b in zip(points, int8_points)]
        int8_rows = int8_comparison(task, points, int8_points, mflops, _gold_labels(dataset, args))
        files = {p.label: to_prediction_file(p, task, dims, point_params(model, p), max_length) for p in int8_points}
    return files, submission_spec(model), count_parameters(model), getattr(dims, "route", "analytic"), int8_rows


def _bundle_prediction_files(bundle, tokenizer, dataset, task, args, max_length: int, progress):
    """The files of an exported bundle's operating points, each run by ONNX Runtime's exit loop; FLOPs, module spec
    and parameters are the source model's (its config.json): ELUE counts operations, not bits."""
    from ..elue.flops.architectures import flops_shape
    from ..elue.flops.params import count_parameters
    from ..elue.inference import point_params, submission_spec, to_prediction_file
    from ..methods.bundles import run_bundle_points

    dims = flops_shape(bundle.config)
    points = run_bundle_points(bundle, tokenizer, dataset, task, parse_settings(args, dims.exit_layers), max_length,
                               args.batch_size, progress)
    files = {p.label: to_prediction_file(p, task, dims, point_params(bundle.skeleton, p), max_length)
             for p in points}
    return (files, submission_spec(bundle.skeleton), count_parameters(bundle.skeleton), "analytic (ONNX bundle)",
            None)


def _gold_labels(dataset, args):
    """The test rows' gold labels, or None when they are hidden (ELUE's public test.tsv) or --limit cut the set."""
    import numpy as np

    labels = np.asarray(dataset["label"], dtype=np.float64)
    scorable = not args.limit and np.all(np.isfinite(labels)) and np.all(labels >= 0)
    return labels if scorable else None


def _check_quantize(args, model) -> None:
    """--quantize applies to a PyTorch classifier (plain or multi-exit): one sentence for anything else."""
    from ..hashee.auto import is_hashee_config
    from ..methods.bundles import ExportedBundle
    from ..methods.lpt_points import is_lpt_model

    if not args.quantize:
        return
    if isinstance(model, ExportedBundle):
        raise ValueError("--quantize applies to PyTorch models; an exported bundle is quantized when exported "
                         "(elue-hf export MODEL DIR --quantize int8): evaluate that bundle without --quantize")
    if is_hashee_config(model.config) or is_lpt_model(model):
        raise ValueError("--quantize int8 is offered for plain and multi-exit classifiers (not HashEE or LPT models)")
    from ..deploy.int8 import int8_config

    int8_config()  # a missing torchao: one sentence now, before the fp32 pass


def _report_int8(out: Path, task, rows) -> None:
    from ..methods.int8_points import format_int8_comparison

    out.mkdir(parents=True, exist_ok=True)
    (out / "int8_vs_fp32.json").write_text(json.dumps({"task": task.key, "points": rows}, indent=1) + "\n",
                                           encoding="utf-8")
    print(format_int8_comparison(task, rows))
    print(f"int8 vs fp32 per point: {out / 'int8_vs_fp32.json'}; the submission below is the int8 model's")


def _published_as(name: str) -> tuple[str, str | None]:
    """``owner/name[@revision]`` (or a local folder, by its folder name) -> (id, revision)."""
    text, _, revision = str(name).partition("@")
    path = Path(text)
    model_id = path.name if path.is_dir() or text.startswith((".", "/", "~")) else text
    return model_id, revision or None


def illustrative_note(data_name: str, task_names) -> str:
    """The line that says a score on other data than the ELUE test set is no ELUE result."""
    sets = ", ".join(f"the ELUE {name} test set" for name in task_names)
    return (f"(scored on {data_name} against the reference curve of {sets}: illustrative, not an ELUE result)")


def cmd_score(args) -> int:
    from ..elue.score import score_submission
    from ..elue.submission import read_submission
    from ..elue.tasks import get_task

    submission = read_submission(args.submission)
    result = score_submission(submission, args.data_dir, args.reference)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(result.format_table())
    data_name = (submission.manifest.get("extra") or {}).get("data_name")
    if isinstance(data_name, str) and data_name:
        print(illustrative_note(data_name, [get_task(t).name for t in result.tasks]))
    return 0


def cmd_recompute_imdb(args) -> int:
    from ..elue.data import SPLIT_FILES, read_elue_tsv, task_dir, token_lengths
    from ..elue.score.reference import REFERENCE_ENV, recompute_imdb_reference
    from ..elue.tasks import TASKS

    imdb = TASKS["imdb"]
    folder = task_dir(args.data_dir, imdb)
    split = "test_full" if (folder / SPLIT_FILES["test_full"]).exists() else "test"
    columns = read_elue_tsv(folder / SPLIT_FILES[split], imdb, split)
    tokenizer = _load_tokenizer(args.tokenizer)
    lengths = token_lengths(tokenizer, imdb, {"sentence": columns["sentence"]}, args.max_length)
    doc = recompute_imdb_reference(lengths, max_seq_length=args.max_length,
                                   source=f"tokenizer {args.tokenizer}, file {folder / SPLIT_FILES[split]}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    points = ", ".join(f"L={p['layers']}: {p['mflops']:.1f}" for p in doc["tasks"]["imdb"]["points"])
    print(f"IMDb: {len(lengths)} instances, mean {sum(lengths) / len(lengths):.2f} tokens -> MFLOPs {points}")
    print(f"wrote {args.output}; use it with --reference {args.output} or `export {REFERENCE_ENV}={args.output}`")
    if os.environ.get(REFERENCE_ENV):
        print(f"note: ${REFERENCE_ENV} is currently {os.environ[REFERENCE_ENV]}")
    return 0

