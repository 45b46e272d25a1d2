"""Continued multi-exit pre-training: exit groups, SOP pairs, n-gram masking, a few real steps under accelerate."""

import json
import os
import random
import subprocess
import sys
from argparse import Namespace

import pytest
import torch

from elue_hf.elasticbert.pretraining import exit_groups, ngram_mask, run, sop_pair

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module


def test_exit_groups_match_the_paper():
    assert exit_groups(12, 2) == [[1, 3, 5, 7, 9, 11, 12], [2, 4, 6, 8, 10, 12]]
    large = exit_groups(24, 3)
    assert large[0] == [1, 4, 7, 10, 13, 16, 19, 22, 24]
    assert large[1] == [2, 5, 8, 11, 14, 17, 20, 23, 24]
    assert large[2] == [3, 6, 9, 12, 15, 18, 21, 24]
    assert exit_groups(6, 1) == [[1, 2, 3, 4, 5, 6]]
    with pytest.raises(ValueError, match="num_groups must be between 1 and 6"):
        exit_groups(6, 7)


def test_sop_pairs_keep_or_swap_order():
    rng = random.Random(0)
    text = "The first sentence is here. The second one follows! And a third?"
    seen = set()
    for _ in range(20):
        a, b, label = sop_pair(text, rng)
        joined = f"{b} {a}" if label else f"{a} {b}"
        assert joined == text
        seen.add(label)
    assert seen == {0, 1}
    assert sop_pair("too short", rng) is None
    a, b, label = sop_pair("one two three four five", rng)
    assert len(a.split()) + len(b.split()) == 5


def test_ngram_mask_budget_and_specials():
    g = torch.Generator().manual_seed(0)
    ids = torch.arange(10, 110).reshape(2, 50)
    special = torch.zeros_like(ids)
    special[:, 0] = special[:, -1] = 1
    masked, labels = ngram_mask(ids, special, mask_token_id=3, vocab_size=200, generator=g)
    for row in range(2):
        predicted = labels[row] != -100
        assert int(predicted.sum()) == round(48 * 0.15)
        assert not predicted[0] and not predicted[-1]
        assert torch.equal(labels[row][predicted], ids[row][predicted])
        assert torch.equal(masked[row][~predicted], ids[row][~predicted])
    assert (masked == 3).sum() > 0


@pytest.mark.slow
def test_pretraining_runs_a_few_steps_on_embedded_reviews(tmp_path):
    args = Namespace(
        model=None, tokenizer=None, text_file=None, output_dir=str(tmp_path / "out"), max_steps=2, batch_size=4,
        learning_rate=1e-4, max_length=32, num_groups=2, seed=0,
    )  # fmt: skip
    result = run(args)
    assert result["steps"] == 2 and all(torch.isfinite(torch.tensor(result["losses"])))
    log = json.loads((tmp_path / "out" / "pretraining_log.json").read_text())
    assert [entry["group"] for entry in log] == [[1, 3, 5, 6], [2, 4, 6]]
    from transformers import AutoModelForPreTraining

    reloaded = AutoModelForPreTraining.from_pretrained(tmp_path / "out")
    assert reloaded.config.model_type == "elasticbert"


@pytest.mark.slow
def test_entry_point_runs_under_accelerate_launch(tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text(
        "A fine film. It kept me watching until the end.\nNot funny at all, and much too long for its plot.\n"
    )
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    cmd = [
        accelerate, "launch", "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "-m", "elue_hf.elasticbert.pretraining", "--text-file", str(text),
        "--max-steps", "1", "--batch-size", "2", "--max-length", "32", "--output-dir", str(tmp_path / "out"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "step 0 exits [1, 3, 5, 6]" in done.stdout
    assert (tmp_path / "out" / "model.safetensors").exists()


def test_module_entry_point_is_the_pretrain_command(tmp_path):
    """`python -m elue_hf.elasticbert.pretraining` parses and checks its options as `elue-hf pretrain` does."""
    missing = tmp_path / "nope.txt"
    done = subprocess.run([sys.executable, "-m", "elue_hf.elasticbert.pretraining", "--text-file", str(missing)],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2
    assert done.stderr.strip() == f"elue-hf pretrain: error: --text-file {missing}: no such file"
