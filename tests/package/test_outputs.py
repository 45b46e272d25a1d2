"""Nothing is overwritten by accident: every command that writes a folder refuses an existing non-empty one unless
``--overwrite`` (exit code 2, one sentence, the folder untouched); the Python savers take ``overwrite=``."""

import pytest
from transformers import BertConfig, BertModel

from elue_hf.cli import main
from elue_hf.elasticbert import convert_bert_to_elasticbert
from elue_hf.finetune import FinetuneSettings, finetune
from elue_hf.outputs import refuse_existing


@pytest.fixture
def earlier(tmp_path):
    """A folder holding an earlier run's model."""
    folder = tmp_path / "earlier"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"22 minutes of training")
    return folder


def _refused(capsys, argv, folder):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert f"--output-dir {folder} already exists (folder, not empty): pass --overwrite" in err
    assert (folder / "model.safetensors").read_bytes() == b"22 minutes of training"


def test_convert_refuses_a_non_empty_folder(capsys, earlier):
    _refused(capsys, ["convert", "--output-dir", str(earlier)], earlier)


def test_train_refuses_before_loading_anything(capsys, earlier):
    _refused(capsys, ["train", "--model", "no/such-model", "--task", "sst-2", "--data-dir", "nowhere",
                      "--output-dir", str(earlier)], earlier)


def test_pretrain_refuses_a_non_empty_folder(capsys, earlier, tmp_path):
    text = tmp_path / "docs.txt"
    text.write_text("one document.\n")
    _refused(capsys, ["pretrain", "--text-file", str(text), "--output-dir", str(earlier)], earlier)


def _tiny_bert():
    return BertModel(BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=32))


def test_convert_function_takes_overwrite(earlier):
    with pytest.raises(ValueError, match="save_directory .* already exists .* pass overwrite=True"):
        convert_bert_to_elasticbert(_tiny_bert(), save_directory=earlier)
    assert (earlier / "model.safetensors").read_bytes() == b"22 minutes of training"
    convert_bert_to_elasticbert(_tiny_bert(), save_directory=earlier, overwrite=True)
    assert (earlier / "config.json").exists() and (earlier / "model.safetensors").stat().st_size > 1000


def test_finetune_function_takes_overwrite(earlier):
    with pytest.raises(ValueError, match="output_dir .* already exists .* set overwrite=True"):
        finetune(None, None, None, FinetuneSettings(output_dir=str(earlier)))


def test_empty_or_new_folders_and_files(tmp_path):
    (tmp_path / "empty").mkdir()
    assert refuse_existing(tmp_path / "empty", "--output-dir") == tmp_path / "empty"
    assert refuse_existing(tmp_path / "new", "--output-dir") == tmp_path / "new"
    (tmp_path / "card.md").write_text("x")
    with pytest.raises(ValueError, match=r"--output .*card.md already exists \(file\)"):
        refuse_existing(tmp_path / "card.md", "--output")
    assert refuse_existing(tmp_path / "card.md", "--output", overwrite=True).name == "card.md"


@pytest.mark.parametrize("argv", [["model-card", "elasticbert"], ["space-card", "leaderboard"]])
def test_card_commands_refuse_an_existing_card(capsys, tmp_path, argv):
    card = tmp_path / "README.md"
    card.write_text("my own card")
    assert main([*argv, "--output", str(card if argv[0] == "model-card" else tmp_path)]) == 2
    assert "README.md already exists (file): pass --overwrite" in capsys.readouterr().err
    assert card.read_text() == "my own card"
    assert main([*argv, "--output", str(card if argv[0] == "model-card" else tmp_path), "--overwrite"]) == 0
    assert card.read_text() != "my own card"
