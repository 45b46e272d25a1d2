"""Write an ELUE submission folder (manifest + one TSV per operating point) and zip it."""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..flops.module_spec import ModulesError, modules_macs_column, validate_module_spec
from ..tasks import ElueTask, get_task
from .format import FORMAT, MANIFEST, PredictionFile, SubmissionError, _mean_from_macs, exact_mean

__all__ = ["write_submission", "zip_submission", "submission_bytes"]


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.=+\-]+", "_", str(text)).strip("_.")
    return slug[:80] or "point"


def _format_pred(task: ElueTask, value) -> str:
    if task.is_regression:
        v = float(value)
        if not math.isfinite(v):
            raise SubmissionError(f"{task.key}: prediction {value!r} is not finite")
        return repr(v)
    if isinstance(value, (float, np.floating)) and not float(value).is_integer():
        raise SubmissionError(f"{task.key}: prediction {value!r} is not an integer label code")
    code = int(value)
    if not 0 <= code < task.num_labels:
        raise SubmissionError(f"{task.key}: prediction {code} is outside the label set 0..{task.num_labels - 1}")
    return str(code)



def _tsv_text(task: ElueTask, point: PredictionFile) -> str:
    preds = list(point.predictions)
    n = len(preds)
    if n == 0:
        raise SubmissionError(f"{task.key}: an operating point needs at least one prediction")
    modules = list(point.modules) if point.modules is not None else None
    flops = None if point.flops is None else np.asarray(point.flops, dtype=np.float64)
    if modules is None and flops is None:
        raise SubmissionError(f"{task.key} {point.label!r}: give `modules` (verifiable) or `flops` (self-reported)")
    for name, col in (("modules", modules), ("flops", flops)):
        if col is not None and len(col) != n:
            raise SubmissionError(f"{task.key} {point.label!r}: {len(col)} {name} values for {n} predictions")
    if flops is not None and (not np.all(np.isfinite(flops)) or np.any(flops <= 0)):
        raise SubmissionError(f"{task.key} {point.label!r}: self-reported FLOPs must be finite and > 0")
    rows = ["index\tpred\tmodules" + ("\tflops" if flops is not None else "")]
    for i in range(n):
        mod = "" if modules is None else str(modules[i])
        if any(c in mod for c in "\t\n\r"):
            raise SubmissionError(f"{task.key} row {i}: modules may not contain tabs or newlines")
        row = f"{i}\t{_format_pred(task, preds[i])}\t{mod}"
        rows.append(row + (f"\t{float(flops[i])!r}" if flops is not None else ""))
    return "\n".join(rows) + "\n"


def write_submission(
    directory,
    model_name: str,
    description: str,
    params: int,
    files: Mapping[str, PredictionFile | Mapping] | Sequence[PredictionFile | Mapping],
    module_spec: Mapping | None = None,
    extra: Mapping[str, Any] | None = None,
    tokenizer: str | None = None,
    model: Mapping[str, Any] | None = None,
) -> Path:
    """Write a submission directory (TSVs + ``submission.json``) and return its path.

    ``files`` maps a point name (e.g. ``"k=3"``; written to ``<task>/<name>.tsv``) to a :class:`PredictionFile`
    (or a dict of its fields), or is a list of them (names from ``label``). Mean FLOPs per file are computed here: from
    ``modules`` + ``module_spec`` when both are given (checkable), else from the self-reported ``flops``.
    ``tokenizer``: the Hub id whose tokenisation gave the declared lengths; ``model``: ``{"id": "owner/name",
    "revision": ...}`` so the server can re-run it (with each file's ``settings``).
    """
    if not isinstance(model_name, str) or not model_name.strip():
        raise SubmissionError("model_name must be a non-empty string")
    if isinstance(params, bool) or not isinstance(params, (int, np.integer)) or params <= 0:
        raise SubmissionError(f"params must be a positive integer parameter count, got {params!r}")
    spec = validate_module_spec(module_spec) if module_spec is not None else None
    items = list(files.items()) if isinstance(files, Mapping) else [(None, f) for f in files]
    if not items:
        raise SubmissionError("a submission needs at least one prediction file")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    entries, seen = [], set()
    for name, point in items:
        point = point if isinstance(point, PredictionFile) else PredictionFile(**point)
        task = get_task(point.task)
        label = point.label or (name if name is not None else f"point{len(entries)}")
        rel = f"{task.key}/{_slug(name if name is not None else label)}.tsv"
        if rel in seen:
            raise SubmissionError(f"two operating points map to the same file {rel}")
        seen.add(rel)
        text = _tsv_text(task, point)
        file_spec = validate_module_spec(point.module_spec) if point.module_spec is not None else spec
        if point.modules is not None and file_spec is not None:
            try:
                macs = modules_macs_column(list(point.modules), file_spec)
            except ModulesError as err:
                raise SubmissionError(f"{rel} row {err.row}: {err}") from None
            mean, source = _mean_from_macs(macs), "modules"
        elif point.flops is not None:
            mean, source = exact_mean(point.flops), "self-reported"
        else:
            raise SubmissionError(f"{rel}: `modules` need a module_spec to give FLOPs (or pass self-reported `flops`)")
        (directory / task.key).mkdir(exist_ok=True)
        (directory / rel).write_text(text, encoding="utf-8")
        entry = {"path": rel, "task": task.key, "label": label, "mean_flops": mean, "flops_source": source}
        if point.params is not None:
            entry["params"] = int(point.params)
        if point.max_seq_length is not None:
            entry["max_seq_length"] = int(point.max_seq_length)
        if point.module_spec is not None:
            entry["module_spec"] = file_spec
        if point.settings is not None:
            entry["settings"] = dict(point.settings)
        entries.append(entry)
    manifest = {
        "format": FORMAT,
        "model_name": model_name,
        "description": description or "",
        "params": int(params),
        "module_spec": spec,
        "files": entries,
    }
    if tokenizer is not None:
        manifest["tokenizer"] = str(tokenizer)
    if model is not None:
        manifest["model"] = dict(model)
    if extra:
        manifest["extra"] = dict(extra)
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return directory


def _zip_into(directory: Path, target) -> None:
    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(directory / MANIFEST, MANIFEST)
        for entry in manifest["files"]:
            zf.write(directory / entry["path"], entry["path"])


def zip_submission(directory, zip_path=None) -> Path:
    """Zip a submission directory (manifest + its listed files only) for upload."""
    directory = Path(directory)
    zip_path = Path(zip_path) if zip_path is not None else directory.with_suffix(".zip")
    _zip_into(directory, zip_path)
    return zip_path


def submission_bytes(path) -> bytes:
    """The zip of a submission (a zip file as is, a directory zipped in memory), e.g. for an upload."""
    path = Path(path)
    if path.is_file():
        return path.read_bytes()
    buffer = io.BytesIO()
    _zip_into(path, buffer)
    return buffer.getvalue()


