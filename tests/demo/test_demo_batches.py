"""How the demo batches its data (tokenised once, length-sorted evaluation, length-grouped training) and its one-pass
exit sweep, on a tiny random ElasticBERT and synthetic words (fast)."""

import itertools

import datasets
import pytest
import torch

from elue_hf.demo import runner
from elue_hf.demo.context import DemoContext, in_row_order
from tests.elue.test_elue_commands import _elasticbert, _tokenizer

WORDS = ["good movie", "bad plot and a dull man", "great actor", "awful film", "fun story with a good plot",
         "dull man", "a good movie with a great actor and a fun story", "bad", "fun", "awful plot and dull film"]


def _context(rows: int = 40) -> DemoContext:
    sentences = [WORDS[(i * 7) % len(WORDS)] + (" good" * (i % 5)) for i in range(rows)]
    data = datasets.Dataset.from_dict({"sentence": sentences, "label": [i % 2 for i in range(rows)]})
    return DemoContext(out_dir=None, tokenizer=_tokenizer(), data={"train": data, "test": data},
                       model=_elasticbert(), base_model_path=None, max_length=16)


def test_eval_batches_sort_by_length_and_in_row_order_restores_the_rows():
    ctx = _context()
    test = ctx.data["test"]
    order, batches = ctx.eval_batches(test, batch_size=8)
    assert sorted(order) == list(range(len(test)))
    lengths = torch.cat([b["attention_mask"].sum(-1) for b in batches])
    assert lengths.tolist() == sorted(lengths.tolist())  # shortest first: each batch pads to similar lengths
    own = ctx.encode(test["sentence"])["attention_mask"].sum(-1)
    assert torch.equal(in_row_order(order, lengths), own)
    ids = torch.cat([b["input_ids"][:, :4] for b in batches])  # every row's first tokens, back in row order
    assert torch.equal(in_row_order(order, ids), ctx.encode(test["sentence"])["input_ids"][:, :4])
    assert ctx.features(test) is ctx.features(test)  # tokenised once per slice


def test_training_batches_without_grouping_keep_the_seeded_order():
    ctx = _context(rows=10)
    train = ctx.data["train"]
    import random

    order = list(range(len(train)))
    random.Random(ctx.seed).shuffle(order)
    for i, batch in enumerate(itertools.islice(ctx.training_batches(train, 4, group_by_length=False), 6)):
        rows = [order[(i * 4 + j) % len(order)] for j in range(4)]
        expected = ctx.encode([train["sentence"][r] for r in rows])
        assert torch.equal(batch["input_ids"], expected["input_ids"])
        assert batch["labels"].tolist() == [train["label"][r] for r in rows]


def test_length_grouped_training_batches_cover_each_row_once_per_epoch_with_less_padding():
    ctx = _context(rows=64)
    train = ctx.data["train"]
    lengths = [len(f["input_ids"]) for f in ctx.features(train)]

    def epoch(group):
        return list(itertools.islice(ctx.training_batches(train, 8, group_by_length=group), 8))

    grouped, plain = epoch(True), epoch(False)
    seen = sorted(int(x) for b in grouped for x in b["attention_mask"].sum(-1))
    assert seen == sorted(lengths)  # one epoch = every row once
    padded = [sum(b["input_ids"].numel() for b in batches) for batches in (grouped, plain)]
    assert padded[0] < padded[1]
    again = list(itertools.islice(_context(rows=64).training_batches(train, 8, group_by_length=True), 8))
    assert all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(grouped, again))  # seeded


def test_one_pass_sweep_matches_the_models_own_early_exit(monkeypatch):
    ctx = _context()
    batch = ctx.encode(ctx.data["test"]["sentence"])
    with torch.no_grad():
        probs = ctx.model(**batch).all_logits.softmax(-1)
    entropies = sorted(set((-(probs * probs.log()).sum(-1)).flatten().tolist()))
    # thresholds between observed entropies, so each gives a mix of exit layers and none sits on a tie
    thresholds = [(entropies[i] + entropies[i + 1]) / 2 for i in (len(entropies) // 4, len(entropies) // 2)]
    monkeypatch.setattr(runner, "ENTROPY_SWEEP", tuple(thresholds))
    monkeypatch.setattr(runner, "PATIENCE_SWEEP", (1, 2))
    points = runner.evaluate_exits(ctx, batch_size=8)
    assert [p.label for p in points] == ["k=1", "k=2", "k=3", *[f"H<{t}" for t in thresholds], "p=1", "p=2"]
    assert any(len(set(p.extra["exit_layers"])) > 1 for p in points)
    labels = torch.tensor(ctx.data["test"]["label"])
    for point in points:
        kind = point.method.split()[-1]
        if kind == "static":
            with torch.no_grad():
                logits = ctx.model(**batch).all_logits[:, int(point.label[2:]) - 1]
            layers = [int(point.label[2:])] * len(labels)
        else:
            key = {"entropy": "entropy_threshold", "patience": "patience"}[kind]
            value = float(point.label[2:]) if kind == "entropy" else int(point.label[2:])
            with torch.no_grad():
                out = ctx.model(**batch, exit_criterion=kind, **{key: value})
            logits, layers = out.logits, out.exit_layer.tolist()
        assert point.extra["predictions"] == logits.argmax(-1).tolist(), point.label
        assert point.extra["exit_layers"] == layers, point.label
        assert point.accuracy == pytest.approx(float((logits.argmax(-1) == labels).float().mean() * 100))
    assert points[0].extra["lengths"] == batch["attention_mask"].sum(-1).tolist()
