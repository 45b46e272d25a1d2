"""Push helpers with HfApi mocked (HF_HUB_OFFLINE=1): ElasticBERT with auto_map, LPT adapters, Space folders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard, SpaceCard
from huggingface_hub.errors import OfflineModeIsEnabled

from elue_hf.elue.score import score_submission
from elue_hf.hub.push import (
    PushError,
    check_remote_code,
    push_elasticbert,
    push_lpt_adapter,
    push_space,
    space_wheels,
)
from tests.helpers.hub_fake import FakeHub
from tests.helpers.leaderboard import gold_labels, make_submission

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub(tmp_path):
    with FakeHub(tmp_path / "downloads").patched() as fake:
        yield fake


def tiny_elasticbert():
    from elue_hf import ElasticBertConfig, ElasticBertForSequenceClassification

    torch.manual_seed(0)
    config = ElasticBertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=64, max_output_layers=2,
                               num_output_layers=2, num_labels=2, layer_norm_eps=1e-8)
    return ElasticBertForSequenceClassification(config).eval()


def test_push_elasticbert_uploads_code_auto_map_and_a_card_in_one_commit(hub, tmp_path):
    from transformers import AutoModelForSequenceClassification, BertTokenizer

    model = tiny_elasticbert()
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"]))
    tokenizer = BertTokenizer(vocab=str(tmp_path / "vocab.txt"))
    gold = gold_labels(("sst-2",))
    score = score_submission(make_submission(tmp_path, gold), gold)
    result = push_elasticbert(model, "me/tiny-elasticbert", tokenizer=tokenizer, score=score)
    assert hub.repos == [{"repo_id": "me/tiny-elasticbert", "repo_type": "model", "private": False, "exist_ok": True}]
    (commit,) = hub.commits
    assert (result, result.oid) == (f"https://huggingface.co/me/tiny-elasticbert/commit/{commit['sha']}", commit["sha"])
    assert commit["repo_type"] == "model"
    files = commit["files"]
    assert {"config.json", "model.safetensors", "modeling_elasticbert.py", "configuration_elasticbert.py",
            "README.md", "tokenizer_config.json"} <= set(files)
    tokenizer_config = json.loads(files["tokenizer_config.json"])
    assert tokenizer_config["tokenizer_class"] == "BertTokenizer" and "auto_map" not in tokenizer_config
    config = json.loads(files["config.json"])
    assert config["auto_map"]["AutoModelForSequenceClassification"] == \
        "modeling_elasticbert.ElasticBertForSequenceClassification"
    folder = hub.materialize(tmp_path / "pushed")
    assert check_remote_code(folder) == ["configuration_elasticbert.py", "modeling_elasticbert.py"]
    card = ModelCard.load(folder / "README.md")
    metrics = {(r.dataset_config, r.metric_type) for r in card.data.eval_results}
    assert ("sst-2", "flops") in metrics and ("sst-2", "elue_score") in metrics and ("sst-2", "accuracy") in metrics
    assert "trust_remote_code=True)` works" in card.text and "| 2 |" in card.text
    reloaded = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    ids = torch.tensor([[2, 5, 6, 3]])
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6)


def test_push_elasticbert_refuses_other_models_and_package_imports(hub, tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    bert = BertForSequenceClassification(BertConfig(vocab_size=50, hidden_size=32, num_hidden_layers=1,
                                                    num_attention_heads=4, intermediate_size=64))
    with pytest.raises(ValueError, match="needs an ElasticBERT model, got BertForSequenceClassification"):
        push_elasticbert(bert, "me/bert")
    tiny_elasticbert().save_pretrained(tmp_path)
    assert check_remote_code(tmp_path) == ["configuration_elasticbert.py", "modeling_elasticbert.py"]
    code = tmp_path / "modeling_elasticbert.py"
    code.write_text("from elue_hf.elue import flops\n" + code.read_text())
    with pytest.raises(PushError, match="imports elue_hf"):
        check_remote_code(tmp_path)
    assert hub.commits == []


def test_push_lpt_adapter(hub, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from elue_hf.lpt import LPTConfig

    def base():
        torch.manual_seed(0)
        return BertForSequenceClassification(BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=4,
                                                        num_attention_heads=4, intermediate_size=64,
                                                        num_labels=2)).eval()

    model = get_peft_model(base(), LPTConfig(task_type="SEQ_CLS", num_prompt_tokens=3, bottleneck_size=8,
                                             prompt_layer=2)).eval()
    (tmp_path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad"]))
    push_lpt_adapter(model, "me/lpt-tiny", tokenizer=BertTokenizer(vocab=str(tmp_path / "vocab.txt")),
                     eval_results=[])
    (commit,) = hub.commits
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "tokenizer_config.json",
            "tokenizer.json"} <= set(commit["files"])
    assert "model.safetensors" not in commit["files"]  # the backbone stays where it is
    assert json.loads(commit["files"]["adapter_config.json"])["peft_type"] == "LPT"
    folder = hub.materialize(tmp_path / "adapter")
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "peft" and "after layer 2 (the paper's prompt layer 3)" in card.text
    trainable = model.get_nb_trainable_parameters()[0]
    assert f"| trainable parameters | {trainable:,} |" in card.text
    again = PeftModel.from_pretrained(base(), folder).eval()
    ids = torch.tensor([[2, 7, 9, 3]])
    with torch.no_grad():
        assert torch.allclose(again(input_ids=ids).logits, model(input_ids=ids).logits, atol=1e-6)
    lora = get_peft_model(base(), LoraConfig(task_type="SEQ_CLS", target_modules=["query", "value"]))
    with pytest.raises(ValueError, match="active LPT adapter"):
        push_lpt_adapter(lora, "me/lora")
    assert len(hub.commits) == 1


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory):
    """The elue-hf wheel, built from this checkout exactly as `make space-wheel` does."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(REPO)], check=True, capture_output=True)
    return out


def test_space_requirements_name_the_wheel_of_this_version(wheel_dir):
    import elue_hf

    wheel = f"wheels/elue_hf-{elue_hf.__version__}-py3-none-any.whl"
    for folder in ("leaderboard", "elue-metric"):
        assert space_wheels(REPO / "spaces" / folder) == [wheel]
    assert (wheel_dir / Path(wheel).name).is_file()
    # the requirement line resolves to an installable wheel (no index, no dependencies)
    line = f"{wheel_dir / Path(wheel).name}[space]"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--no-index", line],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "Would install elue-hf" in done.stdout, done.stderr


def test_push_space_folders(hub, wheel_dir):
    for folder in ("leaderboard", "elue-metric"):
        push_space(REPO / "spaces" / folder, f"me/{folder}", wheel_dir=wheel_dir)
    assert [r["repo_type"] for r in hub.repos] == ["space", "space"]
    assert all(r["space_sdk"] == "gradio" for r in hub.repos)
    leaderboard, metric = hub.commits
    wheel = space_wheels(REPO / "spaces" / "leaderboard")[0]
    assert set(leaderboard["files"]) == {"app.py", "requirements.txt", "README.md", wheel}
    assert set(metric["files"]) == {"app.py", "elue.py", "requirements.txt", "README.md", wheel}
    assert leaderboard["files"][wheel] == (wheel_dir / Path(wheel).name).read_bytes()
    assert SpaceCard(leaderboard["files"]["README.md"].decode()).data.sdk == "gradio"


def test_push_space_without_the_wheel_is_a_clear_error(hub, tmp_path):
    with pytest.raises(PushError, match="make space-wheel"):
        push_space(REPO / "spaces" / "leaderboard", "me/leaderboard", wheel_dir=tmp_path)
    assert hub.commits == []


def test_push_space_refuses_a_folder_without_a_space_card(hub, tmp_path):
    (tmp_path / "app.py").write_text("print('hi')\n")
    with pytest.raises(PushError, match="not a Space folder"):
        push_space(tmp_path, "me/x")
    (tmp_path / "README.md").write_text("---\ntitle: x\n---\n# x\n")
    with pytest.raises(PushError, match="sdk: gradio"):
        push_space(tmp_path, "me/x")
    assert hub.commits == []


def test_offline_pushes_fail_at_once(monkeypatch, wheel_dir):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(OfflineModeIsEnabled):
        push_space(REPO / "spaces" / "leaderboard", "me/leaderboard", wheel_dir=wheel_dir)
