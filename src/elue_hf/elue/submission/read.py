"""Read an ELUE submission (a folder or a zip) safely: bounded reads, strict parsing, FLOPs recomputed."""

from __future__ import annotations

import json
import re
import stat
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Mapping

import numpy as np

from ...validators import MAX_MFLOPS, finite_positive, load_json, positive_int, require
from ..flops.analytic import MFLOPS
from ..flops.module_spec import ModulesError, modules_macs_column, validate_module_spec
from ..tasks import ElueTask, get_task
from .format import (
    _HEADERS,
    _SAFE_PATH,
    FLOPS_TOLERANCE,
    FORMAT,
    MANIFEST,
    Submission,
    SubmissionError,
    SubmissionFile,
    SubmissionLimits,
    _mean_from_macs,
    exact_mean,
)

__all__ = ["read_submission", "parse_predictions_tsv"]


class _Source:
    """Bounded reads from a directory or a zip, with the safety checks of :class:`SubmissionLimits`."""

    def __init__(self, path, limits: SubmissionLimits):
        self.path = Path(path)
        self.limits = limits
        self.total = 0
        self.zip: zipfile.ZipFile | None = None
        self.prefix = ""
        if not self.path.exists():
            raise SubmissionError(f"submission not found: {self.path}")
        if self.path.is_dir():
            self.members = None
            return
        size = self.path.stat().st_size
        if size > limits.max_archive_bytes:
            raise SubmissionError(f"{self.path.name} is {size} bytes; the limit is {limits.max_archive_bytes}")
        if not zipfile.is_zipfile(self.path):
            raise SubmissionError(f"{self.path} is neither a submission directory nor a zip file")
        try:
            self.zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, EOFError) as err:
            raise SubmissionError(f"{self.path.name} is not a readable zip: {err}") from None
        self.members = self._check_members()

    def _check_members(self) -> dict[str, zipfile.ZipInfo]:
        infos = self.zip.infolist()
        if len(infos) > self.limits.max_entries:
            raise SubmissionError(f"the zip has {len(infos)} entries; the limit is {self.limits.max_entries}")
        members: dict[str, zipfile.ZipInfo] = {}
        for info in infos:
            name = info.filename
            parts = PurePosixPath(name).parts
            if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or "\\" in name:
                raise SubmissionError(f"zip entry {name!r} has an absolute or non-POSIX path")
            if ".." in parts or "" in name.split("/")[:-1]:
                raise SubmissionError(f"zip entry {name!r} escapes the archive ('..' or empty path component)")
            if stat.S_ISLNK(info.external_attr >> 16):
                raise SubmissionError(f"zip entry {name!r} is a symbolic link")
            if info.flag_bits & 0x1:
                raise SubmissionError(f"zip entry {name!r} is encrypted")
            if name.endswith("/"):
                continue
            if name in members:
                raise SubmissionError(f"zip entry {name!r} appears twice")
            if info.file_size > self.limits.max_file_bytes:
                raise SubmissionError(
                    f"zip entry {name!r} unpacks to {info.file_size} bytes; the limit is {self.limits.max_file_bytes}"
                )
            if info.file_size > self.limits.max_compression_ratio * max(info.compress_size, 1):
                raise SubmissionError(
                    f"zip entry {name!r} has compression ratio {info.file_size / max(info.compress_size, 1):.0f}; "
                    f"the limit is {self.limits.max_compression_ratio:.0f} (zip bomb?)"
                )
            members[name] = info
        declared = sum(i.file_size for i in members.values())
        if declared > self.limits.max_total_bytes:
            raise SubmissionError(f"the zip unpacks to {declared} bytes; the limit is {self.limits.max_total_bytes}")
        if MANIFEST not in members:
            nested = [n for n in members if n.endswith("/" + MANIFEST) and n.count("/") == 1]
            if len(nested) != 1:
                raise SubmissionError(f"the zip has no {MANIFEST} at its root (or in one top-level folder)")
            self.prefix = nested[0][: -len(MANIFEST)]
            if any(not n.startswith(self.prefix) for n in members):
                raise SubmissionError(f"zip entries outside the folder {self.prefix!r} that holds {MANIFEST}")
        return members

    def read(self, rel: str, limit: int, max_lines: int | None = None, why: str = "") -> bytes:
        """The bytes of ``rel``, streamed in 1 MiB chunks: refused as soon as it passes ``limit`` bytes, the zip
        member's compression-ratio cap, or ``max_lines`` newlines, before the rest is read."""
        if self.zip is None:
            target = self._file(rel)
            opener, cap = (lambda: target.open("rb")), limit
        else:
            info = self.members.get(self.prefix + rel)
            if info is None:
                raise SubmissionError(f"{rel} is listed in {MANIFEST} but missing from the zip")
            opener = lambda: self.zip.open(info)  # noqa: E731 - never trust the header: count what comes out
            cap = min(limit, int(self.limits.max_compression_ratio * max(info.compress_size, 1)))
        chunks, size, lines = [], 0, 0
        try:
            with opener() as handle:
                while chunk := handle.read(1 << 20):
                    size += len(chunk)
                    if size > cap:
                        raise SubmissionError(f"{rel} is larger than allowed ({cap:,} bytes{why})")
                    lines += chunk.count(b"\n")
                    if max_lines is not None and lines > max_lines:
                        raise SubmissionError(f"{rel} has more than {max_lines - 1:,} rows; its task has "
                                              f"{max_lines - 1:,} test instances")
                    chunks.append(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
            raise SubmissionError(f"zip entry {rel} is corrupt or unsupported: {err}") from None
        except OSError as err:
            raise SubmissionError(f"cannot read {rel}: {err.strerror or err}") from None
        self._account(rel, size)
        return b"".join(chunks)

    def _file(self, rel: str) -> Path:
        root = self.path.resolve()
        target = (self.path / rel).resolve()
        if root not in target.parents:
            raise SubmissionError(f"{rel} resolves outside the submission directory")
        if not target.is_file():
            raise SubmissionError(f"{rel} is listed in {MANIFEST} but is not a file in {self.path.name}")
        return target

    def _account(self, rel: str, size: int) -> None:
        self.total += size
        cap = self.limits.max_total_bytes if self.zip is not None else self.limits.max_archive_bytes
        if self.total > cap:
            raise SubmissionError(f"reading {rel} takes the submission past {cap} bytes")

    def unlisted(self, listed: set[str]) -> list[str]:
        if self.zip is None:
            return []
        return sorted(n[len(self.prefix):] for n in self.members if n[len(self.prefix):] not in listed)

    def close(self) -> None:
        if self.zip is not None:
            self.zip.close()


def _require(cond, message: str) -> None:
    require(cond, message, SubmissionError)


def _positive_int(value, what: str) -> int:
    return positive_int(value, what, SubmissionError)


def _optional(entry: Mapping, key: str, kind: type | tuple, what: str, default=None):
    value = entry.get(key, default)
    _require(value is None or (isinstance(value, kind) and not isinstance(value, bool)),
             f"{what}: {key!r} must be {_KIND_NAMES.get(kind, 'of another type')} or absent, "
             f"got {type(value).__name__}")
    return value


_KIND_NAMES = {str: "a string", dict: "a JSON object", int: "an integer"}


def _parse_manifest(raw: bytes, limits: SubmissionLimits) -> tuple[dict, list[ElueTask]]:
    """Parse and type-check ``submission.json`` (every field the reader uses; a UTF-8 BOM is accepted); returns it
    with each file's task, resolved from the name the manifest gives (once, here)."""
    manifest = load_json(raw, MANIFEST, SubmissionError)
    _require(isinstance(manifest, dict), f"{MANIFEST} must hold a JSON object")
    _require(manifest.get("format") == FORMAT,
             f"{MANIFEST}: 'format' must be {FORMAT!r}, got {str(manifest.get('format'))[:40]!r}")
    name = manifest.get("model_name")
    _require(isinstance(name, str) and 0 < len(name.strip()) <= 200,
             f"{MANIFEST}: 'model_name' must be 1-200 characters")
    description = _optional(manifest, "description", str, MANIFEST, "")
    _require(len(description or "") <= 10_000, f"{MANIFEST}: 'description' must be at most 10,000 characters")
    _positive_int(manifest.get("params"), f"{MANIFEST}: 'params'")
    _optional(manifest, "module_spec", dict, MANIFEST)
    tokenizer = _optional(manifest, "tokenizer", str, MANIFEST)
    _require(tokenizer is None or 0 < len(tokenizer) <= 300, f"{MANIFEST}: 'tokenizer' must be 1-300 characters")
    _optional(manifest, "model", dict, MANIFEST)
    extra = _optional(manifest, "extra", dict, MANIFEST)
    data_name = (extra or {}).get("data_name")
    _require(data_name is None or (isinstance(data_name, str) and 0 < len(data_name) <= 200),
             f"{MANIFEST}: 'extra.data_name' must be a string of 1-200 characters or absent")
    files = manifest.get("files")
    _require(isinstance(files, list) and files, f"{MANIFEST}: 'files' must be a non-empty list")
    _require(len(files) <= limits.max_files, f"{MANIFEST}: {len(files)} files; the limit is {limits.max_files}")
    seen, tasks = set(), []
    for i, entry in enumerate(files):
        where = f"{MANIFEST} files[{i}]"
        _require(isinstance(entry, dict), f"{where} must be an object")
        path = entry.get("path")
        _require(isinstance(path, str) and _SAFE_PATH.fullmatch(path) is not None and path.endswith(".tsv")
                 and ".." not in path.split("/"),
                 f"{where}: 'path' {str(path)[:60]!r} must be a relative .tsv path like 'sst-2/k3.tsv'")
        _require(path not in seen, f"{where}: file {path} is listed twice")
        seen.add(path)
        _require(isinstance(entry.get("task"), str), f"{where} ({path}): 'task' must be a string")
        try:
            tasks.append(get_task(entry["task"]))
        except ValueError as err:
            raise SubmissionError(f"{where}: {err}") from None
        finite_positive(entry.get("mean_flops"), f"{where} ({path}): 'mean_flops'", SubmissionError)
        for key in ("params", "max_seq_length"):
            if entry.get(key) is not None:
                _positive_int(entry[key], f"{where} ({path}): {key!r}")
        label = _optional(entry, "label", str, where, "")
        _require(len(label or "") <= 200, f"{where}: 'label' must be at most 200 characters")
        _optional(entry, "module_spec", dict, where)
        _optional(entry, "flops_source", str, where)
        _optional(entry, "settings", dict, where)
    return manifest, tasks


class _Rows:
    """The body of a TSV split into rows and columns with a few C-level passes (no per-row Python split)."""

    def __init__(self, path: str, body: bytes, width: int):
        self.path, self.body = path, body
        buf = np.frombuffer(body, dtype=np.uint8)
        self.ends = np.flatnonzero(buf == 10)  # body ends with a newline: one per row
        self.n = int(self.ends.size)
        tabs_before = np.searchsorted(np.flatnonzero(buf == 9), self.ends)
        per_row = np.diff(np.r_[0, tabs_before]) + 1
        bad = np.flatnonzero(per_row != width)
        if bad.size:
            raise self.error(int(bad[0]), f"expected {width} tab-separated fields, got {int(per_row[bad[0]])}")
        fields = body[:-1].replace(b"\n", b"\t").split(b"\t")
        self.columns = [fields[i::width] for i in range(width)]

    def line(self, row: int) -> str:
        start = 0 if row == 0 else int(self.ends[row - 1]) + 1
        return self.body[start : int(self.ends[row])].decode("utf-8", "replace")

    def error(self, row: int, message: str) -> SubmissionError:
        text = self.line(row) if 0 <= row < self.n else ""
        shown = text if len(text) <= 80 else text[:77] + "..."
        return SubmissionError(f"{self.path} line {row + 2}: {message} ({shown!r})")


def _int_column(rows: _Rows, col: list[bytes], what: str, allow_sign: bool = False) -> np.ndarray:
    """Validate + convert a column of integers (``-`` allowed only with ``allow_sign``), row-precise errors."""
    pattern = re.compile(rb"-?[0-9]{1,9}" if allow_sign else rb"[0-9]{1,9}")
    allowed = b"0123456789\n" + (b"-" if allow_sign else b"")
    arr = np.array(col)
    if (b"\n".join(col).translate(None, allowed) or arr.dtype.itemsize > 10 or np.any(arr == b"")):
        arr = None
    else:
        try:
            return arr.astype(np.int64)
        except ValueError:
            arr = None
    for r, v in enumerate(col):
        if not pattern.fullmatch(v):
            raise rows.error(r, f"{what} {v.decode('utf-8', 'replace')!r} is not an integer")
    return np.array([int(v) for v in col], dtype=np.int64)


def _float_column(rows: _Rows, col: list[bytes], what: str) -> np.ndarray:
    """Validate + convert a column of finite floats, row-precise errors."""
    try:
        values = np.array(col).astype(np.float64)
    except ValueError:
        for r, v in enumerate(col):
            try:
                float(v)
            except ValueError:
                raise rows.error(r, f"{what} {v.decode('utf-8', 'replace')!r} is not a number") from None
        raise
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        raise rows.error(int(bad[0]), f"{what} is NaN or infinite")
    return values


def parse_predictions_tsv(
    data: bytes,
    task: ElueTask | str,
    path: str = "<tsv>",
    module_spec: Mapping[str, dict] | None = None,
    max_rows: int = SubmissionLimits.max_rows,
    cache: dict | None = None,
    max_line_bytes: int = SubmissionLimits.max_line_bytes,
    keep: dict | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Parse one prediction TSV -> (predictions sorted by index, per-instance MACs from modules or None,
    self-reported per-instance MFLOPs or None). Raises :class:`SubmissionError` naming the line.

    ``cache``: parsed ``modules`` values, reusable across files that share ``module_spec``; ``keep``: a dict that
    receives the raw ``modules`` column in index order (key ``"modules"``) when it is filled."""
    task = get_task(task)
    if not data.isascii():
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise SubmissionError(f"{path} is not UTF-8 (byte {err.start})") from None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        _require(b"\r" not in data, f"{path}: stray carriage return")
    if not data.endswith(b"\n"):
        data += b"\n"
    header, _, body = data.partition(b"\n")
    columns = _HEADERS.get(header)
    _require(columns is not None,
             f"{path}: header must be 'index<TAB>pred<TAB>modules[<TAB>flops]', got {header[:80]!r}")
    _require(len(body) > 0, f"{path} has a header but no rows")
    n_rows = body.count(b"\n")
    _require(n_rows <= max_rows, f"{path} has {n_rows:,} rows; the limit is {max_rows:,}")
    rows = _Rows(path, body, 2 + len(columns))
    longest = int(np.max(np.diff(np.r_[-1, rows.ends])) - 1)
    if longest > max_line_bytes:
        row = int(np.argmax(np.diff(np.r_[-1, rows.ends])))
        raise rows.error(row, f"a row of {longest:,} bytes; the limit is {max_line_bytes:,}")
    cols = rows.columns

    index = _int_column(rows, cols[0], "index")
    n = len(index)
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    dup = np.flatnonzero(sorted_index[1:] == sorted_index[:-1])
    if dup.size:
        raise rows.error(int(order[dup[0] + 1]), f"duplicate index {int(sorted_index[dup[0]])}")
    if sorted_index[-1] != n - 1 or sorted_index[0] != 0:
        expected = np.arange(n)
        missing = np.setdiff1d(expected, sorted_index)
        extra = np.setdiff1d(sorted_index, expected)
        raise SubmissionError(
            f"{path}: indices must be exactly 0..{n - 1} (one per row); missing {missing[:5].tolist()}, "
            f"unexpected {extra[:5].tolist()}"
        )

    if task.is_regression:
        preds = _float_column(rows, cols[1], "pred")
    else:
        preds = _int_column(rows, cols[1], "pred", allow_sign=True)
        out = np.flatnonzero((preds < 0) | (preds >= task.num_labels))
        if out.size:
            raise rows.error(int(out[0]),
                             f"label {int(preds[out[0]])} is outside {task.key}'s label set 0..{task.num_labels - 1}")

    macs = None
    if any(cols[2]):
        _require(module_spec is not None,
                 f"{path}: the modules column needs a 'module_spec' in {MANIFEST} to be verified")
        try:
            macs = modules_macs_column(cols[2], module_spec, cache)[order]
        except ModulesError as err:
            raise rows.error(err.row, f"malformed modules: {err}") from None
        if keep is not None:
            keep["modules"] = [cols[2][i] for i in order.tolist()]
    flops = None
    if "flops" in columns:
        flops = _float_column(rows, cols[3], "flops")
        nonpos = np.flatnonzero((flops <= 0) | (flops > MAX_MFLOPS))
        if nonpos.size:
            raise rows.error(int(nonpos[0]), f"flops must be > 0 and <= {MAX_MFLOPS:g} MFLOPs")
        flops = flops[order]
    _require(macs is not None or flops is not None,
             f"{path}: no FLOPs: fill the modules column (with a module_spec) or add a flops column")
    return preds[order], macs, flops


def _spec_or_none(spec, where: str) -> dict | None:
    if spec is None:
        return None
    try:
        return validate_module_spec(spec)
    except ModulesError as err:
        raise SubmissionError(f"{where}: {err}") from None


def _row_cap(task: ElueTask, expected_rows: Mapping[str, int] | None, limits: SubmissionLimits) -> int:
    """Most rows a file of ``task`` may have: the known test-set size (exact when ``expected_rows`` gives it)."""
    if expected_rows is not None and task.key in expected_rows:
        return int(expected_rows[task.key])
    return min(limits.max_rows, task.test_size)


def read_submission(path, limits: SubmissionLimits | None = None, tolerance: float = FLOPS_TOLERANCE,
                    expected_rows: Mapping[str, int] | None = None) -> Submission:
    """Read and validate a submission directory or zip; recompute and check every file's mean FLOPs.

    ``expected_rows``: test-set size per task (the server's gold); a file with another row count is refused, and a
    longer one while it is still being read. Without it a file may have at most the task's ELUE test-set size.
    Raises :class:`SubmissionError` (a ``ValueError``) with the offending file/row for any problem.
    """
    limits = limits or SubmissionLimits()
    source = _Source(path, limits)
    try:
        manifest, tasks = _parse_manifest(source.read(MANIFEST, limits.max_manifest_bytes), limits)
        spec = _spec_or_none(manifest.get("module_spec"), MANIFEST)
        listed = {MANIFEST} | {e["path"] for e in manifest["files"]}
        extra = source.unlisted(listed)
        _require(not extra, f"the zip holds files not listed in {MANIFEST}: {extra[:5]}")
        files, caches = [], {}
        for entry, task in zip(manifest["files"], tasks):
            rel = entry["path"]
            file_spec = _spec_or_none(entry.get("module_spec"), f"{MANIFEST} ({rel})") or spec
            cache = caches.setdefault(json.dumps(file_spec, sort_keys=True), {})
            cap = _row_cap(task, expected_rows, limits)
            budget = (cap + 1) * (limits.max_line_bytes + 1)
            why = f": {cap:,} rows of at most {limits.max_line_bytes:,} bytes" if budget < limits.max_file_bytes else ""
            data = source.read(rel, min(limits.max_file_bytes, budget), cap + 1, why)
            kept: dict = {}
            preds, macs, flops = parse_predictions_tsv(data, task, rel, file_spec, cap, cache, limits.max_line_bytes,
                                                       kept)
            del data
            if expected_rows is not None and task.key in expected_rows and len(preds) != cap:
                raise SubmissionError(f"{rel}: wrong row count: {len(preds)} predictions for {cap} {task.key} "
                                      "test instances")
            claimed = float(entry["mean_flops"])
            if macs is not None:
                per_instance, mean, origin = 2.0 * macs / MFLOPS, _mean_from_macs(macs), "modules"
            else:
                per_instance, mean, origin = flops, exact_mean(flops), "self-reported"
            if abs(mean - claimed) > tolerance * abs(mean):
                raise SubmissionError(
                    f"{rel}: claimed mean FLOPs {claimed:.2f} MFLOPs but the {origin} give {mean:.2f} MFLOPs "
                    f"({100 * abs(claimed - mean) / mean:.2f}% off; tolerance {100 * tolerance:g}%)"
                )
            files.append(
                SubmissionFile(
                    path=rel, task=task.key, label=entry.get("label", "") or rel, predictions=preds,
                    mflops=per_instance, mean_mflops=mean, flops_source=origin,
                    params=int(manifest["params"] if entry.get("params") is None else entry["params"]),
                    claimed_mean_mflops=claimed,
                    max_seq_length=entry.get("max_seq_length"),
                    modules=kept.get("modules"), module_spec=file_spec,
                )
            )
        return Submission(
            model_name=manifest["model_name"], description=manifest.get("description") or "",
            params=int(manifest["params"]), files=files, module_spec=spec, manifest=manifest,
        )
    finally:
        source.close()

