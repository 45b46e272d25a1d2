"""The HashEE ``make demo`` section on a tiny context (tiny BERT checkpoint + tokenizer, a few rows)."""

import json

import datasets
import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from elue_hf.demo import hashee as demo
from elue_hf.demo.context import DemoContext
from elue_hf.elasticbert.convert import convert_bert_to_elasticbert
from elue_hf.hashee import HashTable

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module

WORDS = "a the film movie is was good bad great dull fun boring plot acting and but not very".split()


@pytest.fixture()
def tiny_context(tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(vocab)})
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)  # fmt: skip
    BertModel(config).save_pretrained(tmp_path / "bert")
    g = torch.Generator().manual_seed(1)

    def rows(n):
        sentences = [" ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (int(k),), generator=g))
                     for k in torch.randint(3, 12, (n,), generator=g)]  # fmt: skip
        return datasets.Dataset.from_dict({"sentence": sentences, "label": [len(s) % 2 for s in sentences]})

    data = datasets.DatasetDict(train=rows(24), validation=rows(8), test=rows(10))
    main = convert_bert_to_elasticbert(tmp_path / "bert", num_labels=2, pooling="cls").eval()  # the main section's
    return DemoContext(out_dir=tmp_path / "out", tokenizer=tokenizer, data=data, model=main,
                       base_model_path=tmp_path / "bert", max_length=16, quick=True)  # fmt: skip


def test_static_copy_is_the_main_models_last_exit_and_leaves_it_untouched(tiny_context):
    main = tiny_context.model
    with torch.no_grad():  # give every head distinct weights, as a fine-tune would
        for p in main.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    before = {k: v.clone() for k, v in main.state_dict().items()}
    static = demo.static_copy(tiny_context).eval()
    assert static.config.num_output_layers == 1 and static.config.pooling == "cls"
    batch = tiny_context.encode(list(tiny_context.data["test"]["sentence"]))
    with torch.no_grad():
        torch.testing.assert_close(static(**batch).logits, main(**batch).all_logits[:, -1])
        next(static.parameters()).add_(1.0)  # a copy: training the static model leaves the main one alone
    assert all(torch.equal(before[k], v) for k, v in main.state_dict().items())


def test_demo_section_runs_and_reports(tiny_context, capsys, monkeypatch):
    monkeypatch.setattr(demo, "SHALLOW_TYPES", 3)  # the tiny vocabulary has fewer than 50 types
    demo.run(tiny_context)
    (point,) = tiny_context.points
    assert point.method == "HashEE" and point.label == "freq B=L=3 floor 3 +3@1"
    assert 0 <= point.accuracy <= 100 and point.mean_flops > 0 and 1 < point.mean_exit_layer < 3
    assert point.extra["flops_speedup_vs_6L"] >= 1 and point.extra["flops_speedup_vs_bert_base"] > 1
    out = tiny_context.out_dir / "hashee"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["submission_mean_mflops"] == pytest.approx(point.mean_flops)
    share = summary["active_share_per_layer"]
    assert share[0] == 1.0 and 0 < share[1] == share[2] < 1  # shallow types leave after layer 1, the rest pass all 3
    table = HashTable.load(out / "hashee_table.safetensors")
    assert table.config.hash_function == "frequency" and table.config.num_buckets == 3
    assert table.config.min_exit_layer == 3 and table.config.special_exit == 3  # [CLS] pooling: specials pass all
    seen = [i for i in range(len(tiny_context.tokenizer)) if i not in tiny_context.tokenizer.all_special_ids]
    assert sorted(table.exits[seen].tolist()) == [1] * 3 + [3] * (len(seen) - 3)
    tsv = next((out / "submission").rglob("*.tsv")).read_text().splitlines()
    assert tsv[0] == "index\tpred\tmodules" and len(tsv) == 11
    manifest = json.loads((out / "submission" / "submission.json").read_text())
    assert manifest["files"][0]["settings"] == {"exit": "hashee"}  # what a re-run of the saved model needs
    assert "HashEE on the fine-tuned model above, made static at its exit 6" in capsys.readouterr().out


def test_demo_section_uses_the_context_pooling(tiny_context):
    tiny_context.pooling = "mean"
    tiny_context.model = convert_bert_to_elasticbert(tiny_context.base_model_path, num_labels=2, pooling="mean")
    demo.run(tiny_context)
    summary = json.loads((tiny_context.out_dir / "hashee" / "summary.json").read_text())
    assert summary["pooling"] == "mean" and 0 <= summary["accuracy"] <= 100
    table = HashTable.load(tiny_context.out_dir / "hashee" / "hashee_table.safetensors")
    special = tiny_context.tokenizer.all_special_ids
    assert table.config.special_exit == 1 and set(table.exits[special].tolist()) == {1}  # mean pooling: after layer 1
