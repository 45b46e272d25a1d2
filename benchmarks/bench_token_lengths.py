"""What filling the token-length cache costs, and what reading it costs: ``prepare`` (the work of
``elue-hf leaderboard-prepare``, which runs outside the web process) loads an allowed tokenizer (MiniLM's WordPiece, a
local folder) and counts the tokens of 25,000 synthetic IMDb reviews of 230 words once; then the web app's cache
(``compute=False``) reads those lengths. Prints CPU seconds (user + system), wall seconds and the peak RSS (``VmHWM``)
before and after each step (the reader runs in the same process, so only its CPU and wall time are its own).

Run: ``PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_token_lengths.py``
"""

from __future__ import annotations

import json
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np


def _hwm() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    from elue_hf.assets import minilm_path

    tmp = Path(tempfile.mkdtemp(prefix="bench_tokens_"))
    try:
        source, folder = Path(minilm_path()), tmp / "tokenizers" / "bench--minilm"
        folder.mkdir(parents=True)
        for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(source / name, folder / name)
        rng = np.random.default_rng(1)
        words = [w for w in (source / "vocab.txt").read_text().split() if w.isalpha() and len(w) > 2]
        data = tmp / "ELUE" / "IMDb"
        data.mkdir(parents=True)
        reviews = (" ".join(rng.choice(words, 230)) for _ in range(25_000))
        rows = "".join(f"{review}\t{i % 2}\n" for i, review in enumerate(reviews))
        (data / "test_full.tsv").write_text("sentence\tlabel\n" + rows)
        from elue_hf.elue.submission.lengths import ServerTexts, TokenLengthCache, prepare
        from elue_hf.elue.submission.tokenizers import TokenizerAllowList
        from elue_hf.elue.tasks import get_task

        rows = []
        base, cpu, wall = _hwm(), _cpu(), time.perf_counter()
        status = prepare([tmp / "tokenizers"], tmp / "ELUE", tmp / "lengths")
        rows.append({"step": "prepare (outside the web process)", "cpu_s": round(_cpu() - cpu, 2),
                     "wall_s": round(time.perf_counter() - wall, 2), "rss_before_mb": round(base),
                     "peak_rss_mb": round(_hwm()), "status": status[0]["status"]})
        base, cpu, wall = _hwm(), _cpu(), time.perf_counter()
        reader = TokenLengthCache(TokenizerAllowList([tmp / "tokenizers"]), tmp / "lengths", compute=False)
        lengths = reader.lengths("bench/minilm", get_task("imdb"), ServerTexts(tmp / "ELUE"), 512)
        rows.append({"step": "web app's reader (hash files, load .npy)", "cpu_s": round(_cpu() - cpu, 3),
                     "wall_s": round(time.perf_counter() - wall, 3), "mean_tokens_at_512": float(lengths.mean()),
                     "tokenizers_loaded": len(reader.tokenizers._loaded)})
        for row in rows:
            print(json.dumps(row))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
