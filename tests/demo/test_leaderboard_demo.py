"""The leaderboard's ``make demo`` section: the ELUE section's zip lands in a local store, ranked, with the command."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from elue_hf.demo.context import DemoContext
from elue_hf.demo.leaderboard import find_submission_zip, run, task_ranking_table
from elue_hf.leaderboard.seed import seed_entries
from elue_hf.leaderboard.store import SQLiteStore
from tests.helpers.leaderboard import make_submission

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module


def context(tmp_path, labels, **kw) -> DemoContext:
    return DemoContext(out_dir=tmp_path / "demo", tokenizer=None, data={"test": {"label": list(labels)}}, model=None,
                       base_model_path=tmp_path, **kw)


def test_demo_section_stores_ranks_and_prints_the_command(tmp_path, capsys):
    labels = np.random.default_rng(0).integers(0, 2, 40)
    ctx = context(tmp_path, labels)
    (ctx.out_dir / "elue").mkdir(parents=True)
    zipped = make_submission(ctx.out_dir / "elue", {"sst-2": labels}, name="demo-model")
    ctx.artifacts["elue_submission_zip"] = zipped
    run(ctx)
    out = capsys.readouterr().out
    db = ctx.out_dir / "leaderboard" / "leaderboard.db"
    assert "Stored demo-model" in out and "<- this demo (not ranked: scored on this server's SST-2 data" in out
    assert "Rank: not ranked" in out  # the demo's RT snippets are never ranked against the papers' rows
    assert f"Open the leaderboard: elue-hf leaderboard --db {db} --port 7860" in out
    store = SQLiteStore(db)
    (entry,) = [e for e in store.entries() if e.source == "submission"]
    assert entry.submitter == "make demo" and entry.tasks == ["sst-2"] and store.count() == 32
    run(ctx)  # the demo again: same results, no second entry
    assert "nothing new was stored" in capsys.readouterr().out and store.count() == 32


def test_demo_section_falls_back_to_the_newest_zip(tmp_path, capsys):
    labels = np.random.default_rng(1).integers(0, 2, 40)
    ctx = context(tmp_path, labels)
    assert find_submission_zip(ctx) is None
    ctx.out_dir.mkdir(parents=True)
    run(ctx)
    assert "no ELUE submission zip found" in capsys.readouterr().out
    old = make_submission(ctx.out_dir, {"sst-2": labels}, name="old", seed=3)
    new = make_submission(ctx.out_dir / "elue", {"sst-2": labels}, name="new", seed=4)
    past = time.time() - 100
    os.utime(old, (past, past))
    assert find_submission_zip(ctx) == new


def test_task_ranking_table_marks_the_entry():
    table = task_ranking_table(seed_entries(), "sst-2", "paper-eb-bert-base", top=2)
    lines = table.splitlines()
    assert lines[0].split()[:2] == ["rank", "model"]
    assert "BERT-base" in lines[-1] and "<- this demo" in lines[-1] and "-4.60" in lines[-1]
    assert [line.split()[0] for line in lines[1:]] == ["1", "2", "10"]  # entropy +0.8, patience +0.2, BERT-base


@pytest.mark.slow
def test_demo_section_after_the_real_elue_section(tmp_path, capsys):
    """The ELUE section's real output (a tiny random ElasticBERT over a few rows) goes straight into the store."""
    datasets = pytest.importorskip("datasets")
    import torch
    from transformers import BertTokenizer

    from elue_hf import ElasticBertConfig, ElasticBertForSequenceClassification
    from elue_hf.demo import elue as elue_demo
    from tests.helpers.elue_fixtures import SYNTHETIC_WORDS, synthetic_vocab

    torch.manual_seed(0)
    vocab = synthetic_vocab()
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    config = ElasticBertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=64, max_output_layers=3,
                               num_output_layers=3, num_labels=2)
    model = ElasticBertForSequenceClassification(config).eval()
    rng = np.random.default_rng(0)
    rows = {"sentence": [" ".join(rng.choice(SYNTHETIC_WORDS[:20], 6)) for _ in range(16)],
            "label": rng.integers(0, 2, 16).tolist()}
    data = datasets.DatasetDict({"test": datasets.Dataset.from_dict(rows)})
    ctx = DemoContext(out_dir=tmp_path / "demo", tokenizer=tokenizer, data=data, model=model,
                      base_model_path=tmp_path, max_length=16, quick=True)
    elue_demo.run(ctx)
    run(ctx)
    out = capsys.readouterr().out
    assert "Stored elue-hf demo" in out and "Open the leaderboard: elue-hf leaderboard --db" in out
    store = SQLiteStore(ctx.out_dir / "leaderboard" / "leaderboard.db")
    (entry,) = [e for e in store.entries() if e.source == "submission"]
    assert entry.flops_tier == "consistent" and {p.task for p in entry.points} == {"sst-2"} and len(entry.points) == 3
