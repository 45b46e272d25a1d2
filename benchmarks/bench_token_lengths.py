"""The cold cost of the token-length cache in one process: load an allowed tokenizer (MiniLM's WordPiece, a local
folder) and count the tokens of 25,000 synthetic IMDb reviews of 230 words once, as the first upload naming that
tokenizer does (``elue_hf.elue.submission.tokenizers.TokenLengthCache``). Prints CPU seconds (user + system), wall
seconds and the peak RSS (``VmHWM``) before and after.

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
        texts = {"sentence": [" ".join(rng.choice(words, 230)) for _ in range(25_000)]}
        from elue_hf.elue.submission.tokenizers import TokenizerAllowList, TokenLengthCache

        base, cpu, wall = _hwm(), _cpu(), time.perf_counter()
        cache = TokenLengthCache(TokenizerAllowList([tmp / "tokenizers"]))
        lengths = cache.lengths("bench/minilm", "imdb", lambda task: texts, 512)
        print(json.dumps({"cpu_s": round(_cpu() - cpu, 2), "wall_s": round(time.perf_counter() - wall, 2),
                          "rss_before_mb": round(base), "peak_rss_mb": round(_hwm()),
                          "mean_tokens_at_512": float(lengths.mean())}))
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
