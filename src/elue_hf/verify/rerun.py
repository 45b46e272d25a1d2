"""Re-run a submission's model on the server's test sets and compare (runs inside :mod:`.sandbox`'s subprocess).

``python -m elue_hf.verify.rerun ARGS_JSON`` writes the report to ``ARGS_JSON["report"]``; nothing submitted is
executed: weights come from safetensors files, the architecture from this package (ElasticBERT, BERT, RoBERTa, with a
HashEE table or under an LPT adapter), never from remote code.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..elue.flops.params import count_parameters
from ..elue.submission import read_submission
from ..elue.submission.format import SubmissionError, params_disagreement
from ..elue.tasks import TASKS, ElueTask
from ..hashee.auto import base_model_type, is_hashee_config
from ..methods.bundles import ExportedBundle, bundle_throughput, is_bundle, run_bundle_points
from ..validators import require
from .adapter import is_adapter_folder, load_lpt_classifier
from .request import AGREEMENT, ARCHITECTURES, FLOPS_TOLERANCE, VerifyError, VerifyRequest, verify_request

__all__ = ["resolve_model", "resolve_named", "load_model", "load_named_model", "model_kind", "rerun", "compare_point",
           "measure_throughput"]

_WEIGHT_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]  # never *.bin / *.pt / *.pkl
_BUNDLE_PATTERNS = [*_WEIGHT_PATTERNS, "*.onnx", "*.onnx.data"]  # an `elue-hf export` bundle's graphs


def resolve_model(request: VerifyRequest, model_roots=(), allow_hub: bool = True) -> Path:
    """The folder of the model a request names (see :func:`resolve_named`)."""
    return resolve_named(request.model_id, request.revision, model_roots, allow_hub)


def resolve_named(model_id: str, revision: str | None, model_roots=(), allow_hub: bool = True) -> Path:
    """The folder of a (checked) Hub id: a server folder by Hub id (``owner--name``) first, else a Hub snapshot of
    config, tokenizer and safetensors files only."""
    for root in model_roots:
        for folder in (Path(root) / model_id.replace("/", "--"), Path(root) / model_id):
            if folder.is_dir():
                return folder
    where = ("the server's model folders (--model-dir / $ELUE_MODEL_DIR, one folder per model named owner--name)"
             if model_roots else "a model folder: give --model-dir (or $ELUE_MODEL_DIR) with one folder per model "
             "named owner--name")
    require(allow_hub, f"model {model_id!r} is not in {where}, and downloads are off", VerifyError)
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(model_id, revision=revision, allow_patterns=_WEIGHT_PATTERNS))
        if is_bundle(folder):  # an exported bundle: its ONNX graphs too (data for ONNX Runtime, not code)
            folder = Path(snapshot_download(model_id, revision=revision, allow_patterns=_BUNDLE_PATTERNS))
        return folder
    except Exception as err:  # the Hub's many error types: one sentence for the report, no local paths
        raise VerifyError(f"model {model_id!r} is not in {where}, and the Hub download failed "
                          f"({type(err).__name__})") from None


def load_model(folder: Path, num_labels: int | None = None):
    """A known architecture (plain or HashEE) from safetensors weights (no pickles, no remote code), in eval mode on
    the CPU. ``num_labels``: a fresh head of that size where the checkpoint's differs (an adapter's base model)."""
    require(any(folder.glob("*.safetensors")), f"{folder.name} holds no .safetensors weights", VerifyError)
    require((folder / "config.json").is_file(), f"{folder.name} holds no config.json (not a model folder)", VerifyError)
    from transformers import AutoConfig, AutoModelForSequenceClassification

    import elue_hf  # noqa: F401  (registers ElasticBERT and the HashEE model types with the Auto classes)

    config = AutoConfig.from_pretrained(folder, trust_remote_code=False)
    require(base_model_type(config) in ARCHITECTURES, f"architecture {config.model_type!r} cannot be re-run; known: "
            f"{', '.join(ARCHITECTURES)} (plain or with a HashEE table)", VerifyError)
    extra = {} if num_labels is None else {"num_labels": num_labels, "ignore_mismatched_sizes": True}
    model, info = AutoModelForSequenceClassification.from_pretrained(
        folder, use_safetensors=True, trust_remote_code=False, output_loading_info=True, **extra)
    _refuse_missing(info.get("missing_keys") or (), head_replaced=num_labels is not None)
    return model.eval()


def _refuse_missing(missing, head_replaced: bool) -> None:
    """:class:`VerifyError` when the checkpoint leaves a weight of the architecture uninitialised (it would run with
    random values). Under an LPT adapter (``head_replaced``) the base's classifier may be missing: the adapter brings
    its own."""
    missing = sorted(k for k in missing if not (head_replaced and "classifier" in k))
    require(not missing, f"the checkpoint leaves {len(missing)} weight(s) of the architecture uninitialised (e.g. "
            f"{missing[:1][0] if missing else ''}): save the whole model with save_pretrained", VerifyError)


def _load_base(folder: Path, num_labels: int):
    model = load_model(folder, num_labels)
    require(not is_hashee_config(model.config), "a HashEE model under an LPT adapter cannot be re-run", VerifyError)
    return model


def load_named_model(folder: Path, num_labels: int, model_roots=(), allow_hub: bool = True):
    """The model in ``folder``: an exported ONNX bundle (run by ONNX Runtime), an LPT adapter on its (resolved) base
    model, or a plain / HashEE classifier."""
    if is_bundle(folder):
        return _load_bundle(folder)
    if is_adapter_folder(folder):
        return load_lpt_classifier(folder, lambda i, r: resolve_named(i, r, model_roots, allow_hub), _load_base,
                                   num_labels)
    return load_model(folder)


def _load_bundle(folder: Path):
    """An ``elue-hf export`` bundle of a known architecture: ONNX graphs (data run by ONNX Runtime, no code) and the
    source model's config, which gives ELUE's FLOPs and parameters."""
    from ..methods.bundles import load_bundle

    require((folder / "config.json").is_file(), f"bundle {folder.name} holds no config.json", VerifyError)
    from transformers import PretrainedConfig

    model_type = PretrainedConfig.get_config_dict(folder)[0].get("model_type")
    require(model_type == "elasticbert", f"bundle {folder.name}: only ElasticBERT bundles can be re-run, got "
            f"model_type {model_type!r}", VerifyError)
    return load_bundle(folder)


def _quantized(model, kind: str, quantize) -> object:
    """The model as ``elue-hf evaluate --quantize`` ran it (``extra.quantize`` of the submission)."""
    from ..deploy.int8 import QUANTIZE_CHOICES, Int8BackendMissing, quantize_model

    require(quantize in QUANTIZE_CHOICES, f"extra.quantize must be one of {QUANTIZE_CHOICES}, got "
            f"{str(quantize)[:20]!r}", VerifyError)
    require(kind == "plain", f"extra.quantize: a {kind} model is not re-run quantized (plain and multi-exit "
            "classifiers only; a bundle is quantized at export)", VerifyError)
    try:
        return quantize_model(model, quantize)
    except Int8BackendMissing as err:
        raise VerifyError(f"this server cannot re-run int8 submissions: {err}") from None


def model_kind(model) -> str:
    """``bundle`` (an exported ONNX bundle), ``lpt`` (an LPT adapter on its base), ``hashee`` (token-level exits) or
    ``plain``."""
    from ..methods.lpt_points import is_lpt_model

    if isinstance(model, ExportedBundle):
        return "bundle"
    return "lpt" if is_lpt_model(model) else "hashee" if is_hashee_config(model.config) else "plain"


def _check_fit(kind: str, settings: dict) -> None:
    """:class:`VerifyError` for a file whose settings the model cannot run."""
    for path, s in settings.items():
        if kind == "hashee":
            require(s["exit"] == "hashee", f"{path}: a HashEE model is re-run with settings {{'exit': 'hashee'}} "
                    f"(its table decides each token's exit), got {s}", VerifyError)
        require(kind == "hashee" or s["exit"] != "hashee", f"{path}: settings {{'exit': 'hashee'}} need a HashEE "
                "model; the named model has no exit table", VerifyError)
        require(kind != "lpt" or s["exit"] == "static", f"{path}: an LPT classifier is re-run at static exits only, "
                f"got {s['exit']!r}", VerifyError)


def _tokenizer(submission, folder: Path, tokenizer_roots, allow_hub: bool):
    from ..elue.submission.checks import load_tokenizer
    from ..elue.submission.tokenizers import _fast

    name = submission.manifest.get("tokenizer")
    if name is not None:
        return load_tokenizer(name, tokenizer_roots, allow_hub)
    from transformers import AutoTokenizer

    return _fast(AutoTokenizer.from_pretrained(folder, use_fast=True, trust_remote_code=False), folder.name)


def _dataset(data_dir, task):
    import datasets

    from ..elue.data import SPLIT_FILES, read_elue_tsv, task_dir

    columns = read_elue_tsv(task_dir(data_dir, task) / SPLIT_FILES["test_full"], task, "test_full")
    return datasets.Dataset.from_dict({name: columns[name] for name in task.text_fields})


def compare_point(task: ElueTask, submitted, claimed_mflops: float, predictions, mflops: float) -> dict:
    """Agreement of re-run and submitted predictions and the relative FLOPs difference of one point."""
    submitted, predictions = np.asarray(submitted), np.asarray(predictions)
    if submitted.shape != predictions.shape:
        return {"agreement": 0.0, "rerun_mflops": mflops, "claimed_mflops": claimed_mflops, "flops_diff": 1.0,
                "ok": False, "why": f"{predictions.size} re-run predictions for {submitted.size} rows"}
    same = (np.isclose(submitted, predictions, rtol=1e-3, atol=1e-3) if task.is_regression
            else submitted == predictions)
    agreement = float(np.mean(same))
    diff = abs(claimed_mflops - mflops) / mflops
    why = []
    if agreement < AGREEMENT:
        why.append(f"predictions agree on {100 * agreement:.2f}% of the instances (needed {100 * AGREEMENT:g}%)")
    if diff > FLOPS_TOLERANCE:
        why.append(f"mean FLOPs {claimed_mflops:.2f} claimed, {mflops:.2f} MFLOPs re-run "
                   f"({100 * diff:.2f}% off; tolerance {100 * FLOPS_TOLERANCE:g}%)")
    return {"agreement": agreement, "rerun_mflops": mflops, "claimed_mflops": claimed_mflops, "flops_diff": diff,
            "ok": not why, "why": "; ".join(why)}


def _setting_of(point) -> dict:
    if point.mode == "static":
        return {"exit": "static", "layers": int(point.setting["layers"])}
    return {"exit": point.setting["exit"], "value": point.setting["value"]}


def measure_throughput(model, tokenizer, dataset, task, max_length: int, sizes=(1, 32), rows: int = 64) -> dict:
    """Instances per second of a plain forward at each batch size over the first ``rows`` test instances."""
    import torch

    from ..elue.data import tokenize_examples

    subset = dataset.select(range(min(rows, len(dataset))))
    out = {}
    with torch.no_grad():
        for size in sizes:
            start = time.perf_counter()
            for i in range(0, len(subset), size):
                enc = tokenize_examples(tokenizer, task, subset[i: i + size], max_length, padding=True,
                                        return_tensors="pt")
                model(**enc)
            out[f"batch_{size}"] = len(subset) / (time.perf_counter() - start)
    return out


def _rerun_group(model, kind: str, tokenizer, dataset, task, max_length: int, wanted: dict, counted=None) -> dict:
    """``{path: (predictions, mean MFLOPs, params)}`` of one task and max length: one pass gives every setting.
    ``counted``: the model whose FLOPs and parameters count (a bundle's skeleton, an int8 model's fp32 original)."""
    from ..elue.inference import ExitSetting, point_mean_mflops, point_params, run_operating_points

    if kind == "hashee":
        from ..methods.hashee_points import hashee_mean_mflops, run_hashee

        out = run_hashee(model, tokenizer, dataset, task, max_length)
        row = (out.predictions, hashee_mean_mflops(model.config, out), count_parameters(model))
        return {path: row for path in wanted}
    from ..methods.lpt_points import lpt_mean_mflops, lpt_params

    settings = [ExitSetting(s["exit"], s["layers"] if s["exit"] == "static" else s["value"]) for s in wanted.values()]
    if kind == "bundle":
        points = run_bundle_points(model, tokenizer, dataset, task, settings, max_length)
    else:
        points = run_operating_points(model, tokenizer, dataset, task, max_length=max_length, settings=settings)
    model = model if counted is None else counted
    by_setting = {json.dumps(_setting_of(p), sort_keys=True): p for p in points}
    rows = {}
    for path, setting in wanted.items():
        point = by_setting[json.dumps(setting, sort_keys=True)]
        rows[path] = ((point.predictions, lpt_mean_mflops(model, point), lpt_params(model)) if kind == "lpt" else
                      (point.predictions, point_mean_mflops(model, point), point_params(model, point)))
    return rows


def rerun_figures(task, label: str, labels, predictions, params: int) -> dict:
    """What the leaderboard shows for a verified file: the re-run's metrics (x100, from the server's gold labels)
    and parameter count, with the file's task and label (records.with_verification reads them)."""
    from ..elue.score.metrics import task_metric

    return {"task": task.key, "label": label, "rerun_metrics": task_metric(task, predictions, labels),
            "rerun_params": int(params)}


def _model_params(model, kind: str) -> int:
    from ..methods.lpt_points import lpt_params

    return int(lpt_params(model) if kind == "lpt" else count_parameters(model))


def _architecture(model, kind: str) -> str:
    suffix = {"lpt": "+lpt", "bundle": " (ONNX bundle)"}.get(kind, "")
    return f"{model.config.model_type}{suffix}"


def rerun(submission_path, data_dir, model_roots=(), tokenizer_roots=(), allow_hub: bool = True) -> dict:
    """Re-run the named model with every file's settings; the report says per file what agreed and why not."""
    started = time.perf_counter()
    submission = read_submission(submission_path)
    request = verify_request(submission)
    folder = resolve_model(request, model_roots, allow_hub)
    files = {f.path: f for f in submission.files}
    model = load_named_model(folder, TASKS[submission.files[0].task].num_labels, model_roots, allow_hub)
    kind = model_kind(model)
    _check_fit(kind, request.settings)
    counted = model.skeleton if kind == "bundle" else model  # FLOPs and parameters: the fp32 source's exits
    quantize = (submission.manifest.get("extra") or {}).get("quantize")
    if quantize is not None:
        model = _quantized(model, kind, quantize)
    tokenizer = _tokenizer(submission, folder, tokenizer_roots, allow_hub)
    architecture = _architecture(model, kind) + (f" ({quantize})" if quantize else "")
    report: dict = {"model": {"id": request.model_id, "revision": request.revision, "architecture": architecture},
                    "files": {}}
    from ..elue.data import load_test_labels

    datasets_by_task: dict = {}
    labels_by_task: dict = {}
    groups: dict[tuple, list[str]] = {}  # one full pass per task and max length gives every setting's point
    for path, max_length in request.max_length.items():
        groups.setdefault((files[path].task, max_length), []).append(path)
    for (task_key, max_length), paths in groups.items():
        task = TASKS[task_key]  # keys of a checked submission
        dataset = datasets_by_task.setdefault(task.key, _dataset(data_dir, task))
        rows = _rerun_group(model, kind, tokenizer, dataset, task, max_length, {p: request.settings[p] for p in paths},
                            counted)
        for path in paths:
            f = files[path]
            predictions, mflops, params = rows[path]
            row = compare_point(task, f.predictions, f.mean_mflops, predictions, mflops)
            if params != f.params:
                row["ok"] = False
                row["why"] = "; ".join(filter(None, [row["why"], f"params {f.params:,} declared, the model's "
                                                                 f"operating point holds {params:,}"]))
            labels = labels_by_task.setdefault(task.key, load_test_labels(data_dir, task.key))
            report["files"][path] = {**row, **rerun_figures(task, f.label, labels, predictions, params)}
    report["model"]["params"] = _model_params(counted, kind)
    params_why = params_disagreement(submission.params, report["model"]["params"], "the re-run model")
    if params_why:
        report["why"] = params_why
    first = next(iter(datasets_by_task))
    throughput = bundle_throughput if kind == "bundle" else measure_throughput
    report["throughput"] = throughput(model, tokenizer, datasets_by_task[first], TASKS[first],
                                      next(iter(request.max_length.values())))
    report["verified"] = not params_why and all(r["ok"] for r in report["files"].values())
    report["seconds"] = time.perf_counter() - started
    return report


def public_error(err: BaseException, args: dict) -> str:
    """One sentence for a refusal, without the server's paths: the package's own errors say what is wrong; anything
    else (a damaged weight file, a library error) is named by its type only (the full text goes to the log)."""
    if isinstance(err, SubmissionError):  # VerifyError included
        text = str(err)
    else:
        text = f"the model could not be re-run ({type(err).__name__}; the server log has the details)"
    folders = {args.get("data_dir"): "<data>", str(Path(args.get("submission", "")).parent): "<upload>",
               **{r: "<models>" for r in args.get("model_roots", ())},
               **{r: "<tokenizers>" for r in args.get("tokenizer_roots", ()) if r not in args.get("model_roots", ())}}
    for folder, name in sorted(folders.items(), key=lambda kv: -len(kv[0] or "")):
        if folder and folder != ".":
            text = text.replace(folder, name)
    return text


def main(argv=None) -> int:
    """Child entry point: run :func:`rerun` with the JSON arguments, write the report (or the refusal)."""
    args = json.loads((argv or sys.argv[1:])[0])
    from .sandbox import describe_machine, watch_parent

    if args.get("parent"):
        watch_parent(int(args["parent"]))
    try:
        report = rerun(args["submission"], args["data_dir"], args.get("model_roots", ()),
                       args.get("tokenizer_roots", ()), args.get("allow_hub", True))
    except MemoryError:
        raise  # the sandbox's memory limit: reported as such by the parent
    except Exception as err:  # every refusal is one sentence in the report
        if not isinstance(err, SubmissionError):
            import traceback

            traceback.print_exc()  # to the worker's log
        report = {"verified": False, "error": public_error(err, args)}
    report["machine"] = describe_machine()
    Path(args["report"]).write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
