"""A static exit of depth k loaded from a multi-exit classifier gets exit k's own pooler and classifier."""

import re
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

from elue_hf import ElasticBertForSequenceClassification
from elue_hf.elasticbert.modeling_elasticbert import exit_head_key_mapping
from tests.helpers.elasticbert import padded_batch, tiny_config

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    """A saved 4-layer classifier with an exit on every layer, and every exit's logits on a padded batch."""
    torch.manual_seed(0)
    model = ElasticBertForSequenceClassification(tiny_config()).eval()
    path = tmp_path_factory.mktemp("eb-full")
    model.save_pretrained(path)
    ids, mask = padded_batch()
    with torch.no_grad():
        return path, model(input_ids=ids, attention_mask=mask).all_logits


def _logits(model, **kw):
    ids, mask = padded_batch()
    with torch.no_grad():
        return model.eval()(input_ids=ids, attention_mask=mask, **kw)


def _forms(path, k):
    """Every way of asking for the static model of depth k."""
    yield AutoModelForSequenceClassification.from_pretrained(path, num_hidden_layers=k, num_output_layers=1)
    yield ElasticBertForSequenceClassification.from_pretrained(path, num_hidden_layers=k, num_output_layers=1)
    config = AutoConfig.from_pretrained(path, num_hidden_layers=k, num_output_layers=1)
    yield AutoModelForSequenceClassification.from_pretrained(path, config=config)
    config = AutoConfig.from_pretrained(path)
    config.num_hidden_layers, config.num_output_layers = k, 1
    yield AutoModelForSequenceClassification.from_pretrained(path, config=config)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_every_form_of_static_k_is_exit_k(full, k):
    path, all_logits = full
    for model in _forms(path, k):
        assert model.is_static and len(model.elasticbert.encoder.layer) == k
        torch.testing.assert_close(_logits(model).logits, all_logits[:, k - 1], rtol=0, atol=1e-6)


def test_static_exit_loads_silently_and_saves_its_own_layout(full, tmp_path):
    path, all_logits = full
    model, info = AutoModelForSequenceClassification.from_pretrained(
        path, num_hidden_layers=2, num_output_layers=1, output_loading_info=True
    )
    assert not info["missing_keys"] and not info["unexpected_keys"]
    model.save_pretrained(tmp_path / "static")
    from safetensors import safe_open

    with safe_open(str(tmp_path / "static" / "model.safetensors"), "pt") as f:
        heads = sorted(k for k in f.keys() if k.startswith("classifier"))
    assert heads == ["classifier.bias", "classifier.weight"]
    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "static")
    torch.testing.assert_close(_logits(again).logits, all_logits[:, 1], rtol=0, atol=1e-6)


def test_truncated_dynamic_model_keeps_its_exits(full):
    path, all_logits = full
    model = AutoModelForSequenceClassification.from_pretrained(path, num_hidden_layers=3, num_output_layers=3)
    torch.testing.assert_close(_logits(model).all_logits, all_logits[:, :3], rtol=0, atol=1e-6)


def test_an_exit_without_a_trained_head_is_an_error_not_a_random_head(full, tmp_path):
    path, _ = full
    AutoModelForSequenceClassification.from_pretrained(path, num_hidden_layers=3, num_output_layers=1).save_pretrained(
        tmp_path / "static3"
    )
    with pytest.raises(ValueError, match=r"trained exit heads for layer\(s\) \[3\] only.*exits on layer\(s\) \[2\]"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "static3", num_hidden_layers=2)
    with pytest.raises(ValueError, match=r"asks for exits on layer\(s\) \[1, 2\]"):
        AutoModelForSequenceClassification.from_pretrained(tmp_path / "static3", num_output_layers=3)
    with pytest.raises(ValueError, match="would take other slots.*num_output_layers=1"):
        AutoModelForSequenceClassification.from_pretrained(path, num_output_layers=2)


def test_depth_without_num_output_layers_names_both_fixes(full):
    path, _ = full
    with pytest.raises(ValueError, match="num_output_layers=1 for the static model of depth 2, or num_output_layers=2"):
        AutoModelForSequenceClassification.from_pretrained(path, num_hidden_layers=2)


def test_key_mapping_routes_each_head_through_its_layer():
    assert exit_head_key_mapping([0, 1, 2, 3], [0, 1, 2, 3]) == {}
    assert exit_head_key_mapping([0, 1, 2, 3], [0, 1]) == {}
    mapping = exit_head_key_mapping([0, 1, 2, 3], [2])
    assert mapping[r"^classifiers\.2\."] == "classifiers.layer2."
    assert mapping[r"^classifiers\.layer2\."] == "classifier."


@pytest.mark.slow
def test_readme_static_snippet_is_exit_4_of_the_full_model(tmp_path, monkeypatch, minilm_dir):
    """The README's first quickstart, run verbatim: ``static`` scores exactly like exit 4 of ``model``."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### ElasticBERT: one model, every depth", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "num_hidden_layers=4, num_output_layers=1" in code
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own README
    model, static, batch = scope["model"], scope["static"].eval(), scope["batch"]
    with torch.no_grad():
        expected = model(**batch).all_logits[:, 3]
        torch.testing.assert_close(static(**batch).logits, expected, rtol=0, atol=1e-5)
