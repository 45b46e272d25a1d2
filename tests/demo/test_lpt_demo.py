"""The ``make demo`` LPT section on a tiny context, and LPT on the real embedded MiniLM."""

import random

import pytest
import torch
from peft import get_peft_model
from transformers import BertForSequenceClassification, BertModel

from elue_hf.demo.context import DemoContext
from elue_hf.demo.lpt import run
from elue_hf.lpt import LPTConfig, generator_parameter_count
from tests.helpers.lpt import WORDS, bert_config, tiny_tokenizer

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module


def _tiny_context(tmp_path):
    import datasets

    tokenizer = tiny_tokenizer(tmp_path)
    torch.manual_seed(0)
    BertModel(bert_config(vocab_size=len(tokenizer))).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    rng = random.Random(0)
    words = [w for w in WORDS if not w.startswith(("[", "##"))]

    def rows(n):
        return {"sentence": [" ".join(rng.choices(words, k=rng.randint(3, 9))) for _ in range(n)],
                "label": [i % 2 for i in range(n)]}

    data = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows(40)),
                                 "test": datasets.Dataset.from_dict(rows(12))})
    return DemoContext(out_dir=tmp_path / "out", tokenizer=tokenizer, data=data, model=None,
                       base_model_path=tmp_path / "base", max_length=16, quick=True)


def test_demo_section_reports_every_method(tmp_path, capsys):
    ctx = _tiny_context(tmp_path)
    rows = run(ctx)
    table = capsys.readouterr().out
    assert [r["method"] for r in rows] == ["Full fine-tuning", "PEFT prompt tuning", "LPT"]
    assert [p.method for p in ctx.points] == ["Full fine-tuning", "PEFT prompt tuning", "LPT"]
    by = {r["method"]: r for r in rows}
    assert by["LPT"]["trainable"] == generator_parameter_count("npg", 32, 128, 5) + 32 * 2 + 2
    assert by["PEFT prompt tuning"]["trainable"] == 20 * 32 + 32 * 2 + 2
    assert by["Full fine-tuning"]["trainable"] == by["Full fine-tuning"]["total"]
    assert all(0.0 <= r["acc"] <= 100.0 for r in rows)
    assert "LPT" in table and "trainable" in table and "NLI" in table
    assert all(p.extra["eval_examples"] == 12 and p.params > 0 for p in ctx.points)


@pytest.mark.slow
def test_lpt_on_the_real_minilm(minilm_dir):
    model = BertForSequenceClassification.from_pretrained(minilm_dir, num_labels=2)
    pm = get_peft_model(model, LPTConfig(task_type="SEQ_CLS", prompt_layer=3, num_prompt_tokens=5))
    trainable, _ = pm.get_nb_trainable_parameters()
    assert trainable == 296_960 + 384 * 2 + 2  # docs/lpt.md, MiniLM NPG (l = 5, m = 128) + classifier
    ids = torch.tensor([[101, 2023, 3185, 2001, 2307, 102, 0, 0], [101, 2023, 2143, 2001, 6659, 1012, 2428, 102]])
    mask = (ids != 0).long()
    pm.eval()
    with torch.no_grad():
        batched = pm(input_ids=ids, attention_mask=mask).logits
        alone = pm(input_ids=ids[:1, :6]).logits
    torch.testing.assert_close(batched[:1], alone, atol=1e-5, rtol=1e-5)
