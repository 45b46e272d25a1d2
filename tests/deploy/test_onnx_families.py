"""The export keeps the exits of every multi-exit family: fp32 ONNX exit = PyTorch exit on tiny random configs of
RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT, DeBERTa-v2/v3 and ModernBERT (exit layers, predictions, logits)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers.tiny_families import FAMILIES, padded_batch, tiny_classifier

pytestmark = pytest.mark.slow  # one ONNX export per graph (seconds each), per family

ATOL = 1e-4


@pytest.fixture(scope="module", params=FAMILIES)
def exported(request, tmp_path_factory):
    """(PyTorch multi-exit model, its runtime bundle) of one family, 3 layers with an exit on each."""
    from elue_hf.deploy import OnnxMultiExitForSequenceClassification, export_multi_exit
    from elue_hf.multiexit import convert_to_multi_exit

    # ModernBERT with mean pooling: with [CLS] pooling its tiny random model exited every row at layer 1 under the
    # median-entropy threshold (tied exit-1 entropies); mean pooling separates rows and runs the token-mask path
    pooling = "mean" if request.param == "modernbert" else None
    model = convert_to_multi_exit(tiny_classifier(request.param, num_labels=3), pooling=pooling).eval()
    with torch.no_grad():  # spread the exits' confidences so that a threshold separates rows
        for head in model.classifiers:
            head.weight.normal_(0, 2.0)
    folder = export_multi_exit(model, tmp_path_factory.mktemp(request.param.replace("-", "_")))
    return model, OnnxMultiExitForSequenceClassification.from_pretrained(folder, threads=1)


def _median_entropy_of_first_exit(model, ids, mask) -> float:
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).all_logits[:, 0]
    p = logits.softmax(-1)
    return float((-(p * p.log()).sum(-1)).median()) + 1e-6


def test_every_family_exits_as_in_pytorch(exported):
    model, runtime = exported
    ids, mask = padded_batch((9, 5, 7, 3, 9, 2, 6, 8))
    cases = [{}, {"exit_criterion": "entropy", "entropy_threshold": _median_entropy_of_first_exit(model, ids, mask)},
             {"exit_criterion": "patience", "patience": 1}, {"exit_layer": 2}]
    for options in cases:
        torch_options = {"exit_criterion": "none"} if "exit_layer" in options else options
        with torch.no_grad():
            want = model(input_ids=ids, attention_mask=mask, **torch_options)
        got = runtime.forward(ids.numpy(), mask.numpy(), **options)
        if "exit_layer" in options:  # static exit 2 = the second exit's logits of the full pass
            want_logits, want_layers = want.all_logits[:, 1].numpy(), np.full(len(ids), 2)
        else:
            want_logits, want_layers = want.logits.numpy(), want.exit_layer.numpy()
        np.testing.assert_array_equal(got.exit_layer, want_layers, err_msg=str(options))
        np.testing.assert_array_equal(got.logits.argmax(-1), want_logits.argmax(-1), err_msg=str(options))
        np.testing.assert_allclose(got.logits, want_logits, atol=ATOL, rtol=0, err_msg=str(options))
    entropy_layers = runtime.forward(ids.numpy(), mask.numpy(), **cases[1]).exit_layer
    assert 1 in entropy_layers and (entropy_layers > 1).any()  # the threshold does make rows leave early


def test_bundle_counts_the_family_flops(exported):
    from elue_hf.elue.flops import model_flops
    from elue_hf.elue.flops.architectures import encoder_shape

    model, runtime = exported
    assert runtime.config["model_type"] == "multiexit"
    assert runtime.flops_config() == encoder_shape(model.config)
    lengths = np.array([4, 9])
    np.testing.assert_allclose(model_flops(runtime.flops_config(), lengths, np.array([1, 3]), "dynamic"),
                               model_flops(model.config, lengths, np.array([1, 3]), "dynamic"))


def test_export_refuses_a_plain_classifier_in_one_sentence(tmp_path):
    from elue_hf.deploy import export_multi_exit

    model = tiny_classifier("roberta", num_labels=2)
    model.save_pretrained(tmp_path / "roberta")
    with pytest.raises(ValueError, match="convert it first"):
        export_multi_exit(model, tmp_path / "a")
    with pytest.raises(ValueError, match="'roberta' model.*convert it first"):
        export_multi_exit(tmp_path / "roberta", tmp_path / "b")


def test_cli_exports_a_converted_family_folder(tmp_path, capsys):
    from elue_hf.cli import main
    from elue_hf.deploy import OnnxMultiExitForSequenceClassification
    from elue_hf.multiexit import convert_to_multi_exit

    convert_to_multi_exit(tiny_classifier("distilbert", num_labels=2), save_directory=tmp_path / "multi")
    assert main(["export", str(tmp_path / "multi"), str(tmp_path / "bundle")]) == 0
    assert "3 layers, exits on [1, 2, 3]" in capsys.readouterr().out
    runtime = OnnxMultiExitForSequenceClassification.from_pretrained(tmp_path / "bundle", threads=1)
    ids, mask = padded_batch((5, 3))
    assert runtime.forward(ids.numpy(), mask.numpy()).logits.shape == (2, 2)
