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

Then the token-length cross-check, the one check whose cost grows with the test texts: a valid submission of 8 IMDb
files (25,000 rows each, every declared length true) naming a tokenizer on the server's allow-list, against an IMDb
test set of 25,000 synthetic reviews of 230 words, validated three times in a row in one process (cold, then served
by the in-memory cache) and once more in a fresh process (served by the cache on disk next to the store). CPU
seconds are the process's own (user + system).

Run: ``.venv/bin/python benchmarks/bench_hostile_uploads.py`` (a few minutes on 2 CPU cores, most of it building the
zips).
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


_TOKENS_CHILD = """
import json, resource, sys, time
from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.leaderboard.submit import SubmitError, submit_file
args = json.loads(sys.argv[1])
store = SQLiteStore(args["db"])
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
rows = []
for i, path in enumerate(args["zips"]):
    base, start, wall = hwm(), cpu(), time.perf_counter()
    try:
        submit_file(store, path, args["gold"], tokenizer_roots=[args["tokenizers"]], store_result=False)
        outcome = "accepted"
    except SubmitError as err:
        outcome = str(err)
    rows.append({"cpu": cpu() - start, "wall": time.perf_counter() - wall, "base_mb": base, "peak_mb": hwm(),
                 "outcome": outcome})
print(json.dumps(rows))
"""


def build_tokens(folder: Path) -> dict:
    """An IMDb test set of synthetic reviews, a tokenizer folder on the allow-list, and a valid 8-file submission."""
    import shutil

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from elue_hf.assets import minilm_path
    from elue_hf.elue.data import load_test_labels, token_lengths
    from elue_hf.elue.submission.checks import load_tokenizer
    from elue_hf.leaderboard.submit import server_texts
    from tests.helpers.leaderboard import make_submission

    tokenizers = folder / "tokenizers"
    source = Path(minilm_path())
    (tokenizers / "bench--minilm").mkdir(parents=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(source / name, tokenizers / "bench--minilm" / name)
    rng = np.random.default_rng(1)
    words = [w for w in (source / "vocab.txt").read_text().split() if w.isalpha() and len(w) > 2]
    imdb = folder / "ELUE" / "IMDb"
    imdb.mkdir(parents=True)
    reviews = [" ".join(rng.choice(words, 230)) for _ in range(25_000)]
    lines = ["sentence\tlabel", *(f"{r}\t{i % 2}" for i, r in enumerate(reviews))]
    (imdb / "test_full.tsv").write_text("\n".join(lines) + "\n")
    data = folder / "ELUE"
    tokenizer = load_tokenizer("bench/minilm", [tokenizers], allow_hub=False)
    lengths = {"imdb": token_lengths(tokenizer, "imdb", server_texts(data)("imdb"), 512)}
    gold = {"imdb": load_test_labels(data, "imdb")}
    zipped = make_submission(folder, gold, name="tokens", depths=(1, 2, 3, 4, 5, 6, 7, 8), lengths=lengths,
                             tokenizer="bench/minilm")
    return {"gold": str(data), "tokenizers": str(tokenizers), "zips": [str(zipped)] * 4}  # "validate only": nothing
    # is stored, so the same upload is checked four times


def _tokens(tmp: str) -> None:
    case = build_tokens(Path(tmp) / "tokens")
    db = os.path.join(tmp, "tokens.db")
    runs = []
    for zips in (case["zips"][:3], case["zips"][3:]):  # one process, three uploads; then a fresh process
        done = subprocess.run([sys.executable, "-c", _TOKENS_CHILD, json.dumps({**case, "zips": zips, "db": db})],
                              capture_output=True, text=True, check=True)
        runs += json.loads(done.stdout.strip().splitlines()[-1])
    size = Path(case["zips"][0]).stat().st_size / 2**20
    print(f"\ntoken-length check, 8 IMDb files of 25,000 rows ({size:.1f} MiB zip), tokenizer on the allow-list:")
    print(f"{'upload':<28} {'CPU':>7} {'wall':>7} {'peak RSS':>9} {'(before)':>9}  outcome")
    for label, r in zip(("1st (cold)", "2nd (memory cache)", "3rd (memory cache)", "4th, new process (disk cache)"),
                        runs):
        print(f"{label:<28} {r['cpu']:>5.2f} s {r['wall']:>5.2f} s {r['peak_mb']:>6.0f} MB {r['base_mb']:>6.0f} MB  "
              f"{r['outcome'][:60]}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench_hostile_") as tmp:
        _tokens(tmp)
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
