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

Then the largest honest upload, the one whose token-length cross-check grows with the test texts: 12 IMDb files
(the per-task cap; 25,000 rows each, every declared length true) naming a tokenizer on the server's allow-list, against
an IMDb test set of 25,000 synthetic reviews of 230 words, as the web app handles it (its cache never counts):
validated in a process whose cache is cold (refused: "try again in a minute"); then ``elue-hf leaderboard-prepare``
counts the lengths in its own process; then a new web process validates it twice (lengths from disk, then from
memory) and submits it (scored and stored). CPU seconds are each process's own (user + system).

Run: ``PYTHONPATH=src:. OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_hostile_uploads.py`` (about 15 minutes on
2 shared CPU cores, most of it building the zips and counting the token lengths).
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
#: IMDb files in the widest valid upload: 7 x 25,000 rows x 1.41 kB = 247 MB, the most under the 256 MiB unpacked
#: limit (``UploadLimits``); ``ELUE_BENCH_WIDEST`` sets another count.
WIDEST_FILES = int(os.environ.get("ELUE_BENCH_WIDEST", "7"))
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


_WEB_CHILD = """
import json, resource, sys, time
from elue_hf.leaderboard.lengths_job import web_lengths
from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.leaderboard.submit import SubmitError, UploadLimits, submit_file
args = json.loads(sys.argv[1])
store = SQLiteStore(args["db"])
lengths, job = web_lengths(store, args["gold"], [args["tokenizers"]], start=False)  # the web app's: never counts
limits = UploadLimits(max_checks_per_day=0, max_submissions_per_day=0)
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
def cpu(who=resource.RUSAGE_SELF):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime
rows = []
for path, store_result in args["uploads"]:
    base, start, wall = hwm(), cpu(), time.perf_counter()
    try:
        outcome = submit_file(store, path, args["gold"], tokenizer_roots=[args["tokenizers"]], limits=limits,
                              store_result=store_result, lengths=lengths)
        outcome = "stored" if outcome.stored else "valid"
    except SubmitError as err:
        outcome = str(err)
    rows.append({"cpu": cpu() - start, "wall": time.perf_counter() - wall, "base_mb": base, "peak_mb": hwm(),
                 "outcome": outcome, "tokenizers_loaded": len(lengths.tokenizers._loaded)})
if job.process is not None:  # the cold upload started elue-hf leaderboard-prepare: its own costs, once it is done
    wall = time.perf_counter()
    code = job.wait()
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows.append({"cpu": children.ru_utime + children.ru_stime, "wall": time.perf_counter() - wall, "base_mb": 0,
                 "peak_mb": children.ru_maxrss / 1024, "outcome": f"exit code {code}", "tokenizers_loaded": 1})
print(json.dumps(rows))
"""


def build_tokens(folder: Path) -> dict:
    """An IMDb test set of synthetic reviews, a tokenizer folder on the allow-list, and the largest honest IMDb
    submission the limits allow: 12 operating points (the per-task cap), static exits after layers 1..12 of a
    BERT-base module spec, every declared length true."""
    import shutil

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from elue_hf.assets import minilm_path
    from elue_hf.elue.data import load_test_labels, token_lengths
    from elue_hf.elue.submission.checks import load_tokenizer
    from elue_hf.leaderboard.submit import DEFAULT_UPLOAD_LIMITS, server_texts
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
    depths = tuple(range(1, DEFAULT_UPLOAD_LIMITS.max_points_per_task + 1))
    zipped = make_submission(folder, gold, name="tokens", depths=depths, lengths=lengths, tokenizer="bench/minilm")
    return {"gold": str(data), "tokenizers": str(tokenizers), "zip": str(zipped)}


def build_widest(folder: Path, case: dict, files: int) -> str:
    """The largest upload the byte limits allow that still passes every check: ``files`` IMDb files whose 25,000 rows
    are each just under the 1,536-byte row limit (true token lengths, a valid BERT-base row: embedding, 12 layers,
    the last exit, then spaces after the separators, placed so that no two rows in the upload are alike and no parse
    is shared), with their exact mean FLOPs claimed."""
    from elue_hf.elue.flops.module_spec import modules_macs_column
    from elue_hf.elue.submission.checks import spec_params
    from elue_hf.elue.submission.format import _mean_from_macs
    from elue_hf.elue.submission.lengths import ServerTexts, shared_cache
    from elue_hf.elue.tasks import get_task

    spec = _spec()
    imdb = get_task("imdb")
    lengths = shared_cache([case["tokenizers"]]).lengths("bench/minilm", imdb, ServerTexts(case["gold"]), 512)
    rng = np.random.default_rng(2)
    entries, members = [], {}
    for f in range(files):
        rows = []
        for i, n in enumerate(lengths.tolist()):
            parts = [f"({n}),emb", *(f"({n},768),layer_{j}" for j in range(1, 13)), "(768),exit_12"]
            pad = 1_400 - sum(map(len, parts))
            cut = (i * 7 + f * 131) % pad  # where the spaces go: distinct for every row of every file
            row = "; ".join(parts[:5]) + ";" + " " * (cut + 1) + "; ".join(parts[5:9]) + ";" + " " * (pad - cut)
            rows.append(row + "; ".join(parts[9:]))
        macs = modules_macs_column(rows, spec, {})
        path = f"imdb/wide-{f}.tsv"
        members[path] = "index\tpred\tmodules\n" + "".join(f"{i}\t{rng.integers(2)}\t{r}\n" for i, r in enumerate(rows))
        entries.append({"path": path, "task": "imdb", "mean_flops": _mean_from_macs(macs), "label": f"wide {f}",
                        "params": spec_params(spec), "max_seq_length": 512})
    zipped = folder / f"widest-{files}.zip"
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.writestr("submission.json", _manifest(entries, tokenizer="bench/minilm", model_name="widest",
                                                  params=spec_params(spec)))
        for path, text in members.items():
            zf.writestr(path, text)
    return str(zipped)


def _child(code: str, args) -> list[dict]:
    done = subprocess.run([sys.executable, "-c", code, json.dumps(args)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _tokens(tmp: str) -> None:
    case = build_tokens(Path(tmp) / "tokens")
    db = os.path.join(tmp, "tokens.db")
    web = {"gold": case["gold"], "tokenizers": case["tokenizers"], "db": db}
    runs = _child(_WEB_CHILD, {**web, "uploads": [(case["zip"], False)]})  # cold: refused, and the job started
    runs += _child(_WEB_CHILD, {**web, "uploads": [(case["zip"], False), (case["zip"], False), (case["zip"], True)]})
    widest = build_widest(Path(tmp) / "tokens", case, WIDEST_FILES)
    runs += _child(_WEB_CHILD, {**web, "uploads": [(widest, False)]})
    with zipfile.ZipFile(case["zip"]) as zf:
        unpacked = sum(info.file_size for info in zf.infolist()) / 2**20
    size = Path(case["zip"]).stat().st_size / 2**20
    print(f"\ntoken-length check, 12 IMDb files of 25,000 rows ({size:.1f} MiB zip, {unpacked:.0f} MiB unpacked), "
          "tokenizer on the allow-list:")
    wide = Path(widest).stat().st_size / 2**20
    print(f"(widest upload: {wide:.1f} MiB zip)")
    print(f"{'step':<52} {'CPU':>7} {'wall':>7} {'peak RSS':>9} {'(before)':>9}  outcome")
    labels = ("web process, cold cache: validate", "elue-hf leaderboard-prepare it started (wait from refusal)",
              "web process (new), lengths from disk: validate", "web process, lengths from memory: validate",
              "web process, lengths from memory: submit (stored)",
              f"new web process: widest valid upload ({WIDEST_FILES} files)")
    for label, r in zip(labels, runs):
        print(f"{label:<52} {r['cpu']:>5.2f} s {r['wall']:>5.2f} s {r['peak_mb']:>6.0f} MB {r['base_mb']:>6.0f} MB  "
              f"{r['outcome'][:70]} (tokenizers loaded: {r['tokenizers_loaded']})")


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
