"""Sweeps derived from one full pass equal the model's own batched early exit (tiny random ElasticBERTs)."""

import datasets
import numpy as np
import pytest
import torch

from elue_hf.elue.inference import ExitSetting, derive_exits, full_pass, run_operating_points
from elue_hf.elue.tasks import TASKS
from tests.helpers.elue_fixtures import SYNTHETIC_WORDS, synthetic_vocab

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module

TINY = dict(hidden_size=32, num_hidden_layers=6, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=128)


def _tokenizer():
    from transformers import BertTokenizer

    return BertTokenizer(vocab=synthetic_vocab())


def _model(num_labels, num_output_layers=6, seed=0, **extra):
    from elue_hf.elasticbert import ElasticBertConfig, ElasticBertForSequenceClassification

    torch.manual_seed(seed)
    cfg = ElasticBertConfig(vocab_size=len(synthetic_vocab()), **TINY, max_output_layers=6,
                            num_output_layers=num_output_layers, num_labels=num_labels, **extra)
    model = ElasticBertForSequenceClassification(cfg).eval()
    with torch.no_grad():  # spread the heads so exits disagree and entropies differ
        for head in model.classifiers:
            head.weight.mul_(40.0)
    return model


def _dataset(task_key, n=40, seed=1):
    rng = np.random.default_rng(seed)
    sentence = lambda: " ".join(rng.choice(SYNTHETIC_WORDS, size=int(rng.integers(2, 14))))  # noqa: E731
    cols = {"sentence": [sentence() for _ in range(n)], "label": [0] * n}
    if task_key == "sts-b":
        cols = {"sentence1": cols["sentence"], "sentence2": [sentence() for _ in range(n)], "label": [0.0] * n}
    return datasets.Dataset.from_dict(cols)


def _model_run(model, tokenizer, dataset, task, batch_size, **kwargs):
    """The model's own batched early exit over the data: (exit layers, logits)."""
    from elue_hf.elue.data import tokenize_examples

    layers, logits = [], []
    with torch.no_grad():
        for start in range(0, len(dataset), batch_size):
            enc = tokenize_examples(tokenizer, TASKS[task], dataset[start : start + batch_size], 64, padding=True,
                                    return_tensors="pt")
            out = model(**enc, **kwargs)
            layers.append(out.exit_layer)
            logits.append(out.logits)
    return torch.cat(layers), torch.cat(logits)


def _midpoints(values, count):
    """Thresholds strictly between distinct observed values (no ties at the boundary)."""
    v = np.unique(np.round(np.asarray(values, dtype=np.float64), 6))
    mids = (v[1:] + v[:-1]) / 2
    return [float(m) for m in mids[np.linspace(0, len(mids) - 1, count).astype(int)]]


@pytest.mark.parametrize("batch_size", [7, 40])
def test_entropy_and_patience_sweeps_match_the_models_early_exit(batch_size):
    from elue_hf.elasticbert import prediction_entropy

    model, tok, data = _model(num_labels=3), _tokenizer(), _dataset("sst-2")
    all_logits, _ = full_pass(model, tok, data, TASKS["sst-2"], max_length=64, batch_size=batch_size)
    exits = list(range(1, 7))
    thresholds = _midpoints(prediction_entropy(all_logits).flatten(), 5)
    settings = [ExitSetting("entropy", t) for t in thresholds] + [ExitSetting("patience", p) for p in range(6)]
    seen_layers = set()
    for s in settings:
        layers, logits = derive_exits(all_logits, exits, s, decide=model.exit_layers_from_logits)
        kwargs = ({"entropy_threshold": s.value} if s.exit == "entropy" else {"patience": int(s.value)})
        want_layers, want_logits = _model_run(model, tok, data, "sst-2", batch_size, exit_criterion=s.exit, **kwargs)
        assert layers.tolist() == want_layers.tolist(), s.label
        assert logits.argmax(-1).tolist() == want_logits.argmax(-1).tolist(), s.label
        torch.testing.assert_close(logits, want_logits.float(), atol=1e-4, rtol=1e-4)
        seen_layers |= set(layers.tolist())
    assert len(seen_layers) >= 4  # the sweep really exits at different layers


def test_regression_patience_matches_the_models_early_exit():
    model, tok, data = _model(num_labels=1), _tokenizer(), _dataset("sts-b")
    all_logits, _ = full_pass(model, tok, data, TASKS["sts-b"], max_length=64, batch_size=8)
    diffs = (all_logits[:, 1:, 0] - all_logits[:, :-1, 0]).abs().flatten()
    seen_layers = set()
    for threshold in _midpoints(diffs, 3):
        model.config.regression_threshold = threshold
        for p in (1, 2, 3):
            layers, logits = derive_exits(all_logits, range(1, 7), ExitSetting("patience", p), threshold,
                                          model.exit_layers_from_logits)
            want_layers, want_logits = _model_run(model, tok, data, "sts-b", 8, exit_criterion="patience", patience=p)
            assert layers.tolist() == want_layers.tolist()
            torch.testing.assert_close(logits, want_logits.float(), atol=1e-4, rtol=1e-4)
            seen_layers |= set(layers.tolist())
    assert len(seen_layers) >= 3


def test_run_operating_points_mixes_modes_in_one_pass():
    model, tok, data = _model(num_labels=2, num_output_layers=3), _tokenizer(), _dataset("sst-2", n=12)
    calls = []
    model.register_forward_hook(lambda *a: calls.append(1))
    settings = [ExitSetting("static", 4), ExitSetting("static", 6), ExitSetting("entropy", 0.3),
                ExitSetting("patience", 1), ExitSetting("entropy", 0.3)]
    points = run_operating_points(model, tok, data, TASKS["sst-2"], max_length=64, batch_size=5, settings=settings)
    assert len(calls) == 3  # one forward per batch, whatever the number of settings
    assert [p.label for p in points] == ["static k=4", "static k=6", "entropy 0.30", "patience 1"]
    assert [p.mode for p in points] == ["static", "static", "dynamic", "dynamic"]
    assert points[0].exit_layers == [4] * 12 and set(points[2].exit_layers) <= {4, 5, 6}
    with pytest.raises(ValueError, match="static depth 2 has no exit; available: \\[4, 5, 6\\]"):
        run_operating_points(model, tok, data, TASKS["sst-2"], settings=[ExitSetting("static", 2)])
    with pytest.raises(ValueError, match="patience must be an integer between 0 and 2"):
        run_operating_points(model, tok, data, TASKS["sst-2"], settings=[ExitSetting("patience", 3)])


def test_labels_are_readable():
    assert ExitSetting("entropy", 0.3).label == "entropy 0.30"
    assert ExitSetting("entropy", 0.125).label == "entropy 0.125"
    assert ExitSetting("patience", 1).label == "patience 1"
    assert ExitSetting("static", 3.0).label == "static k=3"


def test_dynamic_exits_need_the_models_rule_static_ones_do_not():
    all_logits = torch.randn(5, 3, 2)
    layers, logits = derive_exits(all_logits, [2, 4, 6], ExitSetting("static", 4))
    assert layers.tolist() == [4] * 5 and torch.equal(logits, all_logits[:, 1])
    with pytest.raises(ValueError, match="decide=model.exit_layers_from_logits"):
        derive_exits(all_logits, [2, 4, 6], ExitSetting("entropy", 0.5))
    model = _model(num_labels=2, num_output_layers=3)
    layers, _ = derive_exits(all_logits, [4, 5, 6], ExitSetting("entropy", 10.0), decide=model.exit_layers_from_logits)
    assert layers.tolist() == [4] * 5  # every entropy is below 10: all rows leave at the first exit
