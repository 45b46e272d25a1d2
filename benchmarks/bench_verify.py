"""Verification by re-running the model: wall time of one sandboxed re-run and the throughput it records.

A tiny random ElasticBERT (4 layers, hidden 32, safetensors) over a synthetic SST-2-shaped test set of N rows, a
submission written with the package (static k = 1, 3 and entropy 0.5), then ``run_sandboxed`` (the subprocess with
``resource.setrlimit`` limits) as the leaderboard's worker runs it. The wall time is mostly the child's imports
(torch, transformers); the re-run itself is reported separately. Everything is offline.

Run: ``.venv/bin/python benchmarks/bench_verify.py [N]`` (about 30 s on 2 CPU cores).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

WORDS = "good bad great awful movie plot actor film story fun dull a the is was not very really".split()


def main(n: int = 400) -> None:
    import torch
    from transformers import BertTokenizer

    from elue_hf import ElasticBertConfig, ElasticBertForSequenceClassification
    from elue_hf.elue.flops import dims_from_config
    from elue_hf.elue.flops.params import count_parameters
    from elue_hf.elue.inference import point_params, run_operating_points, submission_spec, to_prediction_file
    from elue_hf.elue.submission import write_submission, zip_submission
    from elue_hf.elue.tasks import get_task
    from elue_hf.verify.rerun import _dataset, _setting_of
    from elue_hf.verify.sandbox import SandboxLimits, run_sandboxed

    root = Path(tempfile.mkdtemp(prefix="bench_verify_"))
    task = get_task("sst-2")
    rng = np.random.default_rng(0)
    folder = root / "ELUE" / task.dir_name
    folder.mkdir(parents=True)
    rows = ["\t".join(task.tsv_columns["test_full"])]
    rows += [f"{' '.join(rng.choice(WORDS, rng.integers(3, 30)))}\t{rng.integers(0, 2)}" for _ in range(n)]
    (folder / "test_full.tsv").write_text("\n".join(rows) + "\n")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tokenizer = BertTokenizer(vocab=vocab, do_lower_case=True)
    tokenizer.save_pretrained(root / "tokenizers" / "bench--wordpiece")
    torch.manual_seed(0)
    config = ElasticBertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=64, max_output_layers=4,
                               num_output_layers=4, num_labels=2)
    model = ElasticBertForSequenceClassification(config).eval()
    model.save_pretrained(root / "models" / "bench--tiny-elasticbert")
    dataset = _dataset(root / "ELUE", task)
    points = run_operating_points(model, tokenizer, dataset, task, "static", [1, 3], 64)
    points += run_operating_points(model, tokenizer, dataset, task, "entropy", [0.5], 64)
    files = {}
    for p in points:
        files[p.label] = to_prediction_file(p, task, dims_from_config(config), point_params(model, p), 64)
        files[p.label].settings = _setting_of(p)
    sub = write_submission(root / "sub", "bench", "bench", count_parameters(model), files,
                           module_spec=submission_spec(model), tokenizer="bench/wordpiece",
                           model={"id": "bench/tiny-elasticbert"})
    start = time.perf_counter()
    report = run_sandboxed(zip_submission(sub), root / "ELUE", model_roots=[root / "models"],
                           tokenizer_roots=[root / "tokenizers"], allow_hub=False,
                           limits=SandboxLimits(memory_bytes=6 * 2**30, cpu_seconds=600, wall_seconds=600))
    wall = time.perf_counter() - start
    print(f"{n} test rows, 3 operating points: verified={report['verified']}, sandboxed wall {wall:.1f} s, "
          f"re-run {report['seconds']:.2f} s")
    tp = report["throughput"]
    print(f"throughput: batch 1 {tp['batch_1']:,.0f} instances/s, batch 32 {tp['batch_32']:,.0f} instances/s")
    m = report["machine"]
    print(f"machine: {m['cpu']}, {m['threads']} thread(s), GPU {m['gpu'] or 'none'}, torch {m['torch']}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 400)
