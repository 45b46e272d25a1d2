"""The verifier's edges, without a re-run: revisions it accepts, checkpoints that leave weights uninitialised,
refusals as one sentence of the package's error without server paths."""

from __future__ import annotations

import json

import pytest

from elue_hf.verify import VerifyError
from elue_hf.verify.request import model_reference, valid_revision
from elue_hf.verify.rerun import load_model, main, public_error, resolve_named


@pytest.mark.parametrize("revision", ["main", "v1.0", "release-2", "a" * 40,
                                      "0123456789abcdef0123456789abcdef01234567"])
def test_a_commit_sha_or_a_plain_ref_name_is_a_revision(revision):
    assert valid_revision(revision) and model_reference("owner/name", revision, "'model'") == ("owner/name", revision)


@pytest.mark.parametrize("revision", ["..", "../../etc", "refs/pr/1", "a..b", ".hidden", "main.", "feature/x",
                                      "main\n", "", "x" * 101, "ma in", "refs%2Fpr"])
def test_anything_else_is_refused_naming_the_rule(revision):
    assert not valid_revision(revision)
    with pytest.raises(VerifyError, match="40-hex commit sha or a plain branch or tag name"):
        model_reference("owner/name", revision, "'model'")


def tiny_bert(folder):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=16, max_position_embeddings=16, num_labels=2)
    model = BertForSequenceClassification(config)
    model.save_pretrained(folder)
    return model


def test_a_checkpoint_that_leaves_weights_uninitialised_is_refused(tmp_path):
    from safetensors.torch import save_file

    whole = tmp_path / "whole"
    tiny_bert(whole)
    assert load_model(whole).config.model_type == "bert"  # every weight from the file
    empty = tmp_path / "empty"
    tiny_bert(empty)
    save_file({}, str(empty / "model.safetensors"))  # a weights file with no tensors
    with pytest.raises(VerifyError, match=r"leaves \d+ weight\(s\) of the architecture uninitialised"):
        load_model(empty)
    partial = tmp_path / "partial"
    model = tiny_bert(partial)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if "layer.0.output" not in k}
    save_file(state, str(partial / "model.safetensors"))
    with pytest.raises(VerifyError, match="layer.0.output"):
        load_model(partial)
    assert load_model(whole, num_labels=3).config.num_labels == 3  # an adapter's base: only the head is replaced


def test_a_model_on_no_server_folder_names_the_option(tmp_path):
    with pytest.raises(VerifyError, match=r"give --model-dir \(or \$ELUE_MODEL_DIR\)") as caught:
        resolve_named("owner/name", None, (), allow_hub=False)
    assert str(tmp_path) not in str(caught.value)
    with pytest.raises(VerifyError, match="server's model folders") as caught:
        resolve_named("owner/name", None, [str(tmp_path)], allow_hub=False)
    assert str(tmp_path) not in str(caught.value)


def test_refusals_are_one_sentence_without_server_paths(tmp_path):
    args = {"submission": str(tmp_path / "up" / "s.zip"), "data_dir": str(tmp_path / "data"),
            "model_roots": [str(tmp_path / "models")], "tokenizer_roots": [str(tmp_path / "tok")]}
    text = public_error(VerifyError(f"{tmp_path / 'models' / 'x'} holds no config.json"), args)
    assert text == "<models>/x holds no config.json"
    text = public_error(KeyError(f"{tmp_path / 'data' / 'SST-2'}"), args)
    assert text == "the model could not be re-run (KeyError; the server log has the details)"
    report = tmp_path / "report.json"
    (tmp_path / "up").mkdir()
    (tmp_path / "up" / "s.zip").write_bytes(b"not a zip")
    assert main([json.dumps({**args, "report": str(report)})]) == 0  # the child writes a refusal, not a crash
    written = json.loads(report.read_text())
    assert written["verified"] is False and str(tmp_path) not in written["error"]
