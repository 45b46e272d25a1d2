"""HashEE checkpoints are a model type of their own: Auto classes keep HashEE, plain transformers refuses
(docs/hashee.md, "Saving and loading")."""

import json
import pickle
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
)

from elue_hf.hashee import (
    HashEEModelConfig,
    apply_hashee,
    base_model_type,
    hashee_config_class,
    hashee_table,
    is_hashee_model,
    load_hashee_model,
    remove_hashee,
)

from .test_hashee_model import batch, bert, elasticbert, roberta, scaled, table_for

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module

MODELS = {"bert": (bert, 0), "roberta": (roberta, 1), "elasticbert": (elasticbert, 0)}


def saved(name, folder, seed=8):
    make, pad = MODELS[name]
    torch.manual_seed(seed)
    model = scaled(make()).eval()
    table = table_for(model, seed=seed + 3)
    apply_hashee(model, table)
    model.save_pretrained(folder)
    ids, mask = batch(seed + 1, pad=pad, cls=0 if pad else 1)
    return model, table, ids, mask


def logits(model, ids, mask):
    return model(input_ids=ids, attention_mask=mask).logits


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_checkpoint_declares_a_hashee_model_type(name, tmp_path):
    model, table, _, _ = saved(name, tmp_path)
    written = json.loads((tmp_path / "config.json").read_text())
    assert written["model_type"] == f"hashee_{name}" and written["hashee"] == table.config.to_dict()
    assert written["architectures"] == [type(model).__name__] and "auto_map" not in written  # never remote code
    config = model.config
    assert isinstance(config, HashEEModelConfig) and type(config).__name__.startswith("HashEE")
    assert isinstance(config, type(config).base_config_class) and base_model_type(config) == name
    assert all(m.config is config for m in model.modules() if hasattr(m, "config"))  # one config, bound everywhere
    assert type(pickle.loads(pickle.dumps(config))) is type(config)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_auto_loading_keeps_hashee(name, tmp_path):
    model, table, ids, mask = saved(name, tmp_path)
    auto = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert is_hashee_model(auto) and type(auto) is type(model)  # the base class with the table applied
    assert torch.equal(hashee_table(auto).exits, table.exits) and hashee_table(auto).config == table.config
    expected = logits(model, ids, mask)
    assert torch.equal(logits(auto, ids, mask), expected)
    assert torch.equal(logits(load_hashee_model(tmp_path).eval(), ids, mask), expected)
    remove_hashee(model)
    assert not torch.equal(logits(model, ids, mask), expected)  # the table matters for these weights


def test_auto_model_loads_the_hashee_backbone(tmp_path):
    model, _, ids, mask = saved("bert", tmp_path)
    backbone, info = AutoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert type(backbone) is BertModel and is_hashee_model(backbone.eval())
    assert set(info["unexpected_keys"]) == {"classifier.weight", "classifier.bias"}  # the head; the table is used
    expected = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.equal(backbone(input_ids=ids, attention_mask=mask).last_hidden_state, expected)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "hashee_bert"


def test_from_config_asks_for_a_checkpoint(tmp_path):
    model, _, _, _ = saved("bert", tmp_path)
    with pytest.raises(ValueError, match="needs its exit table.*from_pretrained"):
        AutoModelForSequenceClassification.from_config(model.config)


def test_remove_gives_back_the_base_config_and_save_writes_the_base_type(tmp_path):
    model, _, _, _ = saved("bert", tmp_path / "hashee")
    remove_hashee(model)
    assert type(model.config) is BertConfig and not hasattr(model.config, "hashee")
    assert all(m.config is model.config for m in model.modules() if hasattr(m, "config"))
    model.save_pretrained(tmp_path / "plain")
    assert json.loads((tmp_path / "plain" / "config.json").read_text())["model_type"] == "bert"
    assert type(AutoModelForSequenceClassification.from_pretrained(tmp_path / "plain")) is BertForSequenceClassification


def test_a_folder_in_the_pre_0_1_layout_is_refused_with_the_fix(tmp_path):
    """Base model_type plus a `hashee` block (the layout before the HashEE model types) is no longer read."""
    saved("elasticbert", tmp_path)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "model_type": "elasticbert"}))
    with pytest.raises(ValueError, match="not a saved HashEE model: model_type 'elasticbert'.*save_hashee_model"):
        load_hashee_model(tmp_path)


def test_hashee_config_classes_are_declared_once_per_base():
    cls = hashee_config_class(BertConfig)
    assert cls is hashee_config_class(BertConfig) is hashee_config_class(cls)
    assert (cls.__name__, cls.model_type, cls.base_config_class) == ("HashEEBertConfig", "hashee_bert", BertConfig)
    with pytest.raises(TypeError, match="transformers config class"):
        hashee_config_class(dict)


def test_other_bases_are_registered_on_first_use():
    from elue_hf.hashee.auto import ensure_hashee_model_type

    assert not ensure_hashee_model_type("bert") and not ensure_hashee_model_type(None)
    assert ensure_hashee_model_type("hashee_camembert")  # what load_hashee_model does with a saved model type
    config = AutoConfig.for_model("hashee_camembert")
    assert type(config).__name__ == "HashEECamembertConfig" and base_model_type(config) == "camembert"


_PLAIN_TRANSFORMERS = textwrap.dedent(
    """
    import sys
    from transformers import AutoModelForSequenceClassification
    try:
        AutoModelForSequenceClassification.from_pretrained(sys.argv[1], trust_remote_code=True)
    except ValueError as err:
        print("REFUSED", err)
    assert not any(name.startswith("elue_hf") for name in sys.modules), "elue_hf was imported"
    """
)


@pytest.mark.parametrize("name", ["bert", "elasticbert"])
def test_plain_transformers_refuses_a_hashee_checkpoint(name, tmp_path):
    saved(name, tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", _PLAIN_TRANSFORMERS, str(tmp_path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "REFUSED" in done.stdout and f"`hashee_{name}`" in done.stdout


def test_pipeline_runs_a_saved_hashee_classifier(minilm_dir, tmp_path):
    from transformers import AutoTokenizer, pipeline

    from elue_hf.hashee import frequency_table, hashee_config_for, tokenize_texts

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(minilm_dir, num_labels=2).eval()
    texts = ["a charming , funny ride .", "a dull , lifeless and overlong movie ."]
    apply_hashee(model, frequency_table(hashee_config_for(model, tokenizer), tokenize_texts(tokenizer, texts)))
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    classifier = pipeline("text-classification", model=str(tmp_path), top_k=None)
    assert is_hashee_model(classifier.model)
    scores = [{d["label"]: d["score"] for d in row} for row in classifier(texts)]
    expected = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.softmax(-1)
    assert torch.allclose(torch.tensor([[s["LABEL_0"], s["LABEL_1"]] for s in scores]), expected, atol=1e-6)


def test_shallow_types_and_an_early_special_exit_survive_save_and_load(tmp_path):
    """The demo's kind of table (a floor, the most frequent types after layer 1, special ids after layer 1) on a
    mean-pooled ElasticBERT: saved in the config block, reloaded by the Auto classes, same outputs in both modes."""
    from elue_hf.hashee import frequency_table, hashee_config_for

    from .test_hashee_model import SPECIAL, logits_both_modes

    torch.manual_seed(3)
    model = scaled(elasticbert(pooling="mean")).eval()
    ids, mask = batch(5, cls=1)
    config = hashee_config_for(model, None, special_ids=SPECIAL, min_exit_layer=3, num_shallow_types=4,
                               special_exit_layer=1)  # fmt: skip
    table = frequency_table(config, ids[mask.bool()].view(1, -1))
    assert set(table.exits.unique().tolist()) >= {1, 3} and 2 not in table.exits.tolist()
    apply_hashee(model, table)
    model.save_pretrained(tmp_path)
    auto = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert hashee_table(auto).config.num_shallow_types == 4 and torch.equal(hashee_table(auto).exits, table.exits)
    assert torch.equal(logits(auto, ids, mask), logits(model, ids, mask))
    skip, reference = logits_both_modes(auto, ids, mask)
    torch.testing.assert_close(skip, reference, atol=1e-5, rtol=0)
