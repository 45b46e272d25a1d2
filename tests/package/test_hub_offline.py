"""A Hub id that cannot be loaded (offline and not cached, or the Hub unreachable) ends in one sentence naming the fix,
exit code 2, for every command that takes one; with the Hub unreachable nothing waits for retries."""

import pytest
from huggingface_hub import constants

from elue_hf.cli import main
from elue_hf.commands import sources

OFFLINE = "no such model is in the local Hugging Face cache while Hub access is off (HF_HUB_OFFLINE=1)"


def _one_sentence(capsys, argv, expected):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert expected in err and ("hf download" in err or "--data-files" in err)
    return err


@pytest.mark.parametrize("argv", [
    ["convert", "--model", "bert-base-uncased", "--output-dir", "{tmp}/out"],
    ["train", "--model", "bert-base-uncased", "--task", "sst-2", "--data-dir", "{tmp}", "--output-dir", "{tmp}/out"],
    ["pretrain", "--model", "bert-base-uncased", "--output-dir", "{tmp}/out"],
    ["push-model", "nobody/no-such-model", "--repo-id", "me/x"],
])
def test_hub_model_offline_and_not_cached(capsys, tmp_path, argv):
    assert constants.HF_HUB_OFFLINE  # tests/conftest.py
    err = _one_sentence(capsys, [a.format(tmp=tmp_path) for a in argv], OFFLINE)
    assert "give a local folder" in err


def test_hub_tokenizer_offline(capsys, tmp_path):
    err = _one_sentence(capsys, ["convert", "--tokenizer", "bert-base-uncased", "--output-dir", str(tmp_path / "o")],
                        "no such tokenizer is in the local Hugging Face cache")
    assert err.startswith("elue-hf convert: error: --tokenizer bert-base-uncased")


def test_unreachable_hub_is_one_sentence_without_retries(monkeypatch, tmp_path):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(sources, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(sources, "_cached", lambda repo, needs: False)
    with pytest.raises(ValueError, match=r"--model bert-base-uncased: not a local folder, the Hub \(https://"):
        sources.check_source("bert-base-uncased", "--model")


def test_unreachable_hub_with_a_cached_copy_goes_offline(monkeypatch, capsys):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(sources, "hub_reachable", lambda timeout=3.0: False)
    monkeypatch.setattr(sources, "_cached", lambda repo, needs: True)
    assert sources.check_source("bert-base-uncased", "--model") == "bert-base-uncased"
    assert constants.HF_HUB_OFFLINE is True and "using the cached copy" in capsys.readouterr().err


def test_hub_dataset_offline_names_local_files(capsys, tmp_path, minilm_dir):
    err = _one_sentence(capsys, ["train", "--model", str(minilm_dir), "--dataset", "stanfordnlp/imdb",
                                 "--output-dir", str(tmp_path / "out")], "--dataset stanfordnlp/imdb: not a local")
    assert "--dataset csv --data-files" in err
