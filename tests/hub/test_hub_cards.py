"""Model cards (ElasticBERT variants, HashEE, LPT adapters) with ELUE results in their model-index; citations."""

from __future__ import annotations

import pytest
from huggingface_hub import ModelCard

from elue_hf.citations import CITATIONS, bibtex
from elue_hf.elue.score import score_submission
from elue_hf.hub.cards import (
    ELASTICBERT_VARIANTS,
    TEMPLATES_ENV,
    elasticbert_card,
    eval_results_from_published,
    eval_results_from_score,
    hashee_card,
    lpt_adapter_card,
    results_table,
    template_dir,
)
from elue_hf.leaderboard.seed import published_data
from tests.helpers.leaderboard import gold_labels, make_submission


def reload(card, tmp_path) -> ModelCard:
    path = tmp_path / "README.md"
    card.save(str(path))
    return ModelCard.load(path)


@pytest.mark.parametrize("variant", sorted(ELASTICBERT_VARIANTS))
def test_elasticbert_cards_for_the_released_checkpoints(variant, tmp_path):
    v = ELASTICBERT_VARIANTS[variant]
    card = reload(elasticbert_card(variant), tmp_path)
    assert card.data.language == v.language and card.data.library_name == "transformers"
    assert "elasticbert" in card.data.tags
    text = card.text
    assert f'from_pretrained("{v.repo_id}"' in text and "import elue_hf" in text
    assert f"| `layer_norm_eps` | {v.layer_norm_eps:g} (read from `config.json`" in text
    assert "liu-etal-2022-towards" in text and "trust_remote_code=True)` works" not in text
    if variant == "chinese-base":
        assert card.data.eval_results is None and "## ELUE results" not in text
    else:
        assert "## ELUE results" in text and len(card.data.eval_results) == 12


def test_base_card_numbers_come_from_the_paper_and_the_elue_rules(tmp_path):
    card = reload(elasticbert_card("base"), tmp_path)
    rows = {r["id"]: r for r in published_data()["entries"]}
    results = {(r.dataset_config, r.metric_name): r.metric_value for r in card.data.eval_results}
    published = rows["eb-elasticbert-base"]["static"]["tasks"]
    assert results[("sst-2", "Accuracy (ElasticBERT-base, static)")] == published["sst-2"]
    assert results[("mrpc", "(Acc+F1)/2 (ElasticBERT-6L, static)")] == 87.3
    assert all(r.source_url == "https://arxiv.org/abs/2110.07038" and r.verified is False
               for r in card.data.eval_results)
    assert "| 12 | 109.48M | 22,367.7 |" in card.text  # docs/elue.md: 22,367.70 MFLOPs at n=128, 109.48 MParams
    assert "| 6 | 66.96M |" in card.text


def test_cards_carry_a_submission_score(tmp_path):
    gold = gold_labels(("sst-2", "mrpc"))
    score = score_submission(make_submission(tmp_path, gold), gold)
    results = eval_results_from_score(score, url="https://example.org/run")
    kinds = {(r.dataset_config, r.metric_type) for r in results}
    assert kinds == {(t, m) for t in ("sst-2", "mrpc") for m in ("flops", "elue_score")} | {
        ("sst-2", "accuracy"), ("mrpc", "acc_and_f1")}
    flops = [r for r in results if r.metric_type == "flops"]
    assert len(flops) == 4 and all(r.metric_name.startswith("MFLOPs per instance (k=") for r in flops)
    config = type("Cfg", (), {"vocab_size": 100, "num_hidden_layers": 2, "hidden_size": 32,
                               "num_attention_heads": 4, "intermediate_size": 64, "layer_norm_eps": 1e-12})()
    card = reload(elasticbert_card(None, config=config, repo_id="me/tiny-elasticbert", eval_results=results,
                                   remote_code=True), tmp_path)
    loaded = {(r.dataset_config, r.metric_type, r.metric_name): r.metric_value for r in card.data.eval_results}
    first = score.tasks["sst-2"].files[0]
    key = ("sst-2", "flops", f"MFLOPs per instance ({first.label}; consistent FLOPs)")
    assert loaded[key] == round(first.mean_mflops, 4)
    assert loaded[("mrpc", "elue_score", "ELUE task score")] == round(score.tasks["mrpc"].score, 4)
    assert "trust_remote_code=True)` works" in card.text and "| 2 |" in card.text
    assert "| 0 |" not in card.text  # depths start at 1


def test_full_score_adds_the_elue_score_row(tmp_path):
    gold = gold_labels()
    score = score_submission(make_submission(tmp_path, gold), gold)
    overall = [r for r in eval_results_from_score(score) if r.dataset_name == "ELUE"]
    assert len(overall) == 1 and overall[0].metric_value == round(score.elue_score, 4)


def test_lpt_and_hashee_cards(tmp_path):
    import elue_hf.lpt  # noqa: F401
    from elue_hf.lpt import LPTConfig

    config = LPTConfig(task_type="SEQ_CLS", prompt_layer=6, num_prompt_tokens=5, generator="npg",
                       base_model_name_or_path="fnlp/elasticbert-base")
    card = reload(lpt_adapter_card("me/lpt-sst2", config, trainable_params=593792), tmp_path)
    assert card.data.library_name == "peft" and card.data.base_model == "fnlp/elasticbert-base"
    text = card.text
    assert "after layer 6 (the paper's prompt layer 7)" in text and "| prompt generator | npg |" in text
    assert "PeftModel.from_pretrained(base, \"me/lpt-sst2\")" in text and "593,792" in text
    assert "liu-etal-2022-late" in text
    local = lpt_adapter_card("me/lpt", {"base_model_name_or_path": str(tmp_path), "prompt_layer": 2,
                                        "num_prompt_tokens": 3})
    assert local.data.base_model is None  # a local path is not Hub metadata
    hashee = reload(hashee_card("me/hashee-sst2", "fnlp/elasticbert-base", num_layers=6, num_buckets=6), tmp_path)
    assert "| layers L / buckets B | 6 / 6 |" in hashee.text and "sun-etal-2022-simple" in hashee.text
    assert hashee.data.base_model == "fnlp/elasticbert-base" and "hashee" in hashee.data.tags


def test_template_dir_and_helpers(tmp_path, monkeypatch):
    assert (template_dir() / "lpt-adapter.md").is_file()
    monkeypatch.setenv(TEMPLATES_ENV, str(tmp_path))
    (tmp_path / "elasticbert.md").write_text("---\n{{ card_data }}\n---\n# custom {{ model_name }}\n")
    assert template_dir() == tmp_path
    assert "# custom elasticbert-base" in str(elasticbert_card("base"))
    monkeypatch.setenv(TEMPLATES_ENV, str(tmp_path / "nowhere"))
    monkeypatch.setattr("elue_hf.hub.cards.Path.is_file", lambda self: False)
    with pytest.raises(FileNotFoundError, match="model card templates not found"):
        template_dir()
    monkeypatch.undo()
    assert results_table([]) == ""
    assert "| ELUE SST-2 | Accuracy (BERT-base, static) | 85.1 |" in results_table(
        eval_results_from_published(["eb-bert-base"]))
    with pytest.raises(ValueError, match="unknown ElasticBERT variant"):
        elasticbert_card("xxl")


def test_citations():
    assert set(CITATIONS) == {"elue", "hashee", "lpt"}
    assert bibtex().count("@inproceedings") == 3
    assert "2203.01670" in bibtex("hashee")
    with pytest.raises(ValueError, match="unknown citation keys"):
        bibtex("bert")


def test_model_card_command(tmp_path, capsys):
    import argparse

    from elue_hf.commands.hub import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["model-card", "elasticbert", "--variant", "large", "--output", str(tmp_path / "c.md")])
    assert args.func(args) == 0
    card = ModelCard.load(tmp_path / "c.md")
    assert "fnlp/elasticbert-large" in card.text and card.data.eval_results[0].metric_value == 89.8
    args = parser.parse_args(["model-card", "lpt", "--repo-id", "me/lpt", "--base-model", "fnlp/elasticbert-base"])
    assert args.func(args) == 0 and "me/lpt" in capsys.readouterr().out
    args = parser.parse_args(["model-card", "hashee"])
    with pytest.raises(ValueError, match="needs --repo-id and --base-model"):
        args.func(args)
