"""Hostile uploads at the leaderboard's size limit: how long each takes to be refused and the peak memory it costs.

Each case is a zip no larger than the upload limit (32 MiB), built here, then given to
``elue_hf.leaderboard.submit.submit_file`` in a fresh subprocess (so the peak resident memory, ``VmHWM``, is the
case's own; the baseline after importing elue_hf, which loads torch and transformers, is printed next to it). Cases:

- rows: an IMDb file with 4.2 million rows of random-length modules (32 MiB compressed) for a 25,000-row test set;
- stream: the same with 1.3 million rows (68 MB unpacked, under the per-file cap): refused while streaming;
- wide: 25,000 rows each just under the 1,536-byte row limit (the largest file the caps allow);
- deep: a manifest of ~1 MiB nested brackets;
- bomb: one member of 120 MiB of zeros;
- many: 128 files of the maximum size.

Run: ``.venv/bin/python benchmarks/bench_hostile_uploads.py`` (about a minute on 2 CPU cores).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

LIMIT = 32 * 2**20
SPEC_NOTE = "BERT-base module spec, 12 exits"


def _spec() -> dict:
    from elue_hf.elue.flops import ModelDims
    from elue_hf.elue.flops.module_spec import module_spec_from_config

    dims = ModelDims(hidden=768, intermediate=3072, heads=12, num_layers=12, num_labels=2,
                     exit_layers=tuple(range(1, 13)))
    spec = module_spec_from_config(dims)
    spec["emb"].update(vocab=30522, positions=512, token_types=2)
    return spec


def _manifest(files: list[dict], **extra) -> bytes:
    doc = {"format": "elue-hf-submission/1", "model_name": "hostile", "params": 110_000_000,
           "module_spec": _spec(), "files": files, **extra}
    return json.dumps(doc).encode()


def _rows(n: int, rng, repeat: int = 1) -> bytes:
    lengths = rng.integers(5, 512, n)
    lines = [b"index\tpred\tmodules"]
    for i, length in enumerate(lengths.tolist()):
        modules = f"({length}),emb; ({length},768),layer_1; (768),exit_1"
        lines.append(f"{i}\t{i % 2}\t{'; '.join([modules] * repeat)}".encode())
    return b"\n".join(lines) + b"\n"


def build(folder: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    entry = {"path": "imdb/a.tsv", "task": "imdb", "mean_flops": 1.0}
    cases = {}

    for name, n in (("rows", 4_200_000), ("stream", 1_300_000)):  # 32 MiB zip; a member under the 128 MiB cap
        path = folder / f"{name}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            zf.writestr("submission.json", _manifest([entry]))
            zf.writestr("imdb/a.tsv", _rows(n, rng))
        cases[name] = path

    path = folder / "wide.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("submission.json", _manifest([entry]))
        zf.writestr("imdb/a.tsv", _rows(25_000, rng, repeat=33))
    cases["wide"] = path

    path = folder / "deep.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("submission.json", b"[" * (2**19 - 1) + b"]" * (2**19 - 1))
    cases["deep"] = path

    path = folder / "bomb.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("submission.json", _manifest([entry]))
        zf.writestr("imdb/a.tsv", b"0" * (120 * 2**20))
    cases["bomb"] = path

    path = folder / "many.zip"
    per_file = _rows(25_001, rng)  # one row more than the test set
    files = [{"path": f"imdb/p{i}.tsv", "task": "imdb", "mean_flops": 1.0} for i in range(128)]
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("submission.json", _manifest(files))
        for f in files[:40]:  # as many as fit in 32 MiB
            zf.writestr(f["path"], per_file)
    cases["many"] = path
    return cases


_CHILD = """
import json, sys, time
from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.leaderboard.submit import SubmitError, submit_file
store = SQLiteStore(sys.argv[2])
gold = {"imdb": [0, 1] * 12_500}
def hwm():  # peak resident set of this process image (VmHWM resets at exec, unlike ru_maxrss)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
base = hwm()
start = time.perf_counter()
try:
    submit_file(store, sys.argv[1], gold)
    outcome = "ACCEPTED"
except SubmitError as err:
    outcome = str(err)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "base_mb": base, "peak_mb": hwm(), "outcome": outcome}))
"""


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_hostile_") as tmp:
        cases = build(Path(tmp))
        print(f"{'case':<6} {'zip MiB':>8} {'refused in':>11} {'peak RSS':>9} {'(after imports)':>16}  message")
        for name, path in cases.items():
            size = path.stat().st_size / 2**20
            assert size <= LIMIT / 2**20, (name, size)
            done = subprocess.run([sys.executable, "-c", _CHILD, str(path), os.path.join(tmp, f"{name}.db")],
                                  capture_output=True, text=True, check=True)
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{name:<6} {size:>8.1f} {r['seconds']:>9.2f} s {r['peak_mb']:>6.0f} MB {r['base_mb']:>13.0f} MB  "
                  f"{r['outcome'][:90]}")


if __name__ == "__main__":
    main()
