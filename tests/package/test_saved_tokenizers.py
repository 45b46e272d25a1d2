"""Every folder elue-hf saves for reuse carries a working tokenizer, loadable without remote code or prompts."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from peft import get_peft_model
from transformers import AutoTokenizer, BertForSequenceClassification, BertTokenizer

import elue_hf  # noqa: F401
from elue_hf.cli import main
from elue_hf.elasticbert import convert_bert_to_elasticbert
from elue_hf.hashee import apply_hashee, hashee_config_for, load_hashee_model, random_cons_table, save_hashee_model
from elue_hf.lpt import LPTConfig, save_lpt_adapter
from elue_hf.tokenizer_io import has_tokenizer_files, load_tokenizer
from tests.helpers.tiny_models import save_tiny_bert, synthetic_tokenizer

TEXT = "the dog runs in the park"


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("bert"))


def _assert_real_vocabulary(folder):
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "BertTokenizer" and "auto_map" not in config
    for tokenizer in (AutoTokenizer.from_pretrained(folder), BertTokenizer.from_pretrained(folder)):
        assert tokenizer(TEXT)["input_ids"] == synthetic_tokenizer()(TEXT)["input_ids"]  # no [UNK] anywhere


def test_convert_saves_the_source_tokenizer(bert_dir, tmp_path, capsys):
    assert main(["convert", "--model", str(bert_dir), "--output-dir", str(tmp_path / "eb"),
                 "--num-output-layers", "2", "--num-labels", "3"]) == 0
    assert "exits on layers [2, 3] (cls pooling), 3 labels" in capsys.readouterr().out
    _assert_real_vocabulary(tmp_path / "eb")
    assert main(["convert", "--model", str(bert_dir), "--output-dir", str(tmp_path / "mean"), "--pooling", "mean"]) == 0
    assert json.loads((tmp_path / "mean" / "config.json").read_text())["pooling"] == "mean"


def test_convert_takes_a_tokenizer_and_warns_when_there_is_none(tmp_path, caplog):
    bare = save_tiny_bert(tmp_path / "bare", with_tokenizer=False)
    convert_bert_to_elasticbert(bare, save_directory=tmp_path / "given", tokenizer=synthetic_tokenizer())
    _assert_real_vocabulary(tmp_path / "given")
    with caplog.at_level(logging.WARNING, logger="elue_hf.tokenizer_io"):
        convert_bert_to_elasticbert(bare, save_directory=tmp_path / "none")
    assert not has_tokenizer_files(tmp_path / "none") and "has no tokenizer" in caplog.text
    with pytest.raises(ValueError, match="no tokenizer found"):
        load_tokenizer(None, tmp_path / "none", required=True)


@pytest.mark.slow
def test_pretrain_takes_a_tokenizer_and_saves_it(tmp_path):
    bare = save_tiny_bert(tmp_path / "bare", with_tokenizer=False)
    synthetic_tokenizer().save_pretrained(tmp_path / "tok")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the dog runs in the park. the cat sits on the big red house.\n" * 4)
    assert main(["pretrain", "--model", str(bare), "--tokenizer", str(tmp_path / "tok"), "--text-file", str(corpus),
                 "--max-steps", "1", "--batch-size", "2", "--max-length", "24",
                 "--output-dir", str(tmp_path / "out")]) == 0
    _assert_real_vocabulary(tmp_path / "out")


def test_hashee_and_lpt_folders_carry_the_tokenizer(bert_dir, tmp_path):
    model = BertForSequenceClassification.from_pretrained(bert_dir).eval()
    apply_hashee(model, random_cons_table(hashee_config_for(model, synthetic_tokenizer(), seed=0)))
    save_hashee_model(model, tmp_path / "hashee")  # tokenizer found through model.name_or_path
    _assert_real_vocabulary(tmp_path / "hashee")
    assert load_hashee_model(tmp_path / "hashee") is not None
    with pytest.raises(ValueError, match="needs a HashEE model"):
        save_hashee_model(BertForSequenceClassification.from_pretrained(bert_dir), tmp_path / "plain")

    peft_model = get_peft_model(BertForSequenceClassification.from_pretrained(bert_dir),
                                LPTConfig(task_type="SEQ_CLS", num_prompt_tokens=2, bottleneck_size=4))
    save_lpt_adapter(peft_model, tmp_path / "lpt")
    _assert_real_vocabulary(tmp_path / "lpt")
    assert json.loads((tmp_path / "lpt" / "adapter_config.json").read_text())["peft_type"] == "LPT"


@pytest.mark.slow
def test_loading_without_elue_hf_never_prompts_and_names_the_fix(bert_dir, tmp_path):
    """Run as a user without elue_hf: the remote-code route loads model + tokenizer with no "[y/N]" prompt, and an
    LPT adapter fails with a KeyError that names ``import elue_hf`` (then loads once elue_hf is imported)."""
    convert_bert_to_elasticbert(bert_dir, save_directory=tmp_path / "eb")
    torch.manual_seed(0)
    peft_model = get_peft_model(BertForSequenceClassification.from_pretrained(bert_dir),
                                LPTConfig(task_type="SEQ_CLS", num_prompt_tokens=2, bottleneck_size=4))
    save_lpt_adapter(peft_model, tmp_path / "lpt")
    script = textwrap.dedent(f"""
        import sys
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertTokenizer
        model = AutoModelForSequenceClassification.from_pretrained({str(tmp_path / 'eb')!r}, trust_remote_code=True)
        for tok in (AutoTokenizer.from_pretrained({str(tmp_path / 'eb')!r}, trust_remote_code=True),
                    BertTokenizer.from_pretrained({str(tmp_path / 'eb')!r})):
            print(type(model).__name__, type(tok).__name__, tok({TEXT!r})["input_ids"])
        from peft import AutoPeftModelForSequenceClassification
        try:
            AutoPeftModelForSequenceClassification.from_pretrained({str(tmp_path / 'lpt')!r})
        except KeyError as err:
            print("KeyError:", err)
        assert "elue_hf" not in sys.modules
        import elue_hf
        loaded = AutoPeftModelForSequenceClassification.from_pretrained({str(tmp_path / 'lpt')!r})
        print("loaded", type(loaded).__name__, loaded.peft_config["default"].peft_type.value)
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL, env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    ids = str(synthetic_tokenizer()(TEXT)["input_ids"])
    assert done.stdout.count(f"ElasticBertForSequenceClassification BertTokenizer {ids}") == 2
    assert "[y/N]" not in output
    assert "KeyError: 'LPT'" in done.stdout  # PEFT alone does not know LPT: `import elue_hf` first
    assert "loaded PeftModelForSequenceClassification LPT" in done.stdout
