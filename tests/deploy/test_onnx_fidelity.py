"""fp32 ONNX bundle = PyTorch model: same exit layers and predictions, logits within 1e-4 (tiny random models)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.deploy.conftest import random_batch

pytestmark = pytest.mark.slow  # exports ONNX graphs (seconds each)

ATOL = 1e-4


def _torch_exit(model, ids, mask, types, **options):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, token_type_ids=types, **options)
    return out.logits.numpy(), out.exit_layer.numpy()


def _onnx(folder):
    from elue_hf.deploy import OnnxElasticBertForSequenceClassification

    return OnnxElasticBertForSequenceClassification.from_pretrained(folder, threads=1)


CASES = [
    (("cls", 2), {}),
    (("cls", 2), {"exit_criterion": "entropy", "entropy_threshold": 0.3}),
    (("mean", 3), {"exit_criterion": "patience", "patience": 1}),
    (("mean", 3), {"exit_criterion": "entropy", "entropy_threshold": 0.6}),
    (("mean", 3), {"exit_criterion": "patience", "patience": 2}),
    (("cls", 1), {"exit_criterion": "patience", "patience": 1, "regression_threshold": 0.5}),
    (("cls", 1), {}),
]


@pytest.mark.parametrize("key,options", CASES)
def test_onnx_exit_equals_torch_exit(bundles, key, options):
    model, folder = bundles[key]
    ids, mask, types = random_batch()
    want_logits, want_layers = _torch_exit(model, ids, mask, types, **options)
    out = _onnx(folder).forward(ids.numpy(), mask.numpy(), types.numpy(), **options)
    np.testing.assert_array_equal(out.exit_layer, want_layers)
    np.testing.assert_allclose(out.logits, want_logits, atol=ATOL, rtol=0)
    if options:  # the thresholds do separate rows: this is a real early-exit test
        assert len(set(want_layers.tolist())) > 1


def test_static_exit_layer_equals_exit_logits_of_full_pass(bundles):
    model, folder = bundles[("cls", 2)]
    ids, mask, types = random_batch()
    with torch.no_grad():
        all_logits = model(input_ids=ids, attention_mask=mask, token_type_ids=types).all_logits.numpy()
    out = _onnx(folder).forward(ids.numpy(), mask.numpy(), types.numpy(), exit_layer=2)
    assert (out.exit_layer == 2).all()
    np.testing.assert_allclose(out.logits, all_logits[:, 1], atol=ATOL, rtol=0)


def test_batched_exit_equals_one_row_at_a_time(bundles):
    _, folder = bundles[("mean", 3)]
    runtime = _onnx(folder)
    ids, mask, types = (t.numpy() for t in random_batch())
    options = {"exit_criterion": "entropy", "entropy_threshold": 0.6}
    batched = runtime.forward(ids, mask, types, **options)
    for r in range(ids.shape[0]):
        n = int(mask[r].sum())
        single = runtime.forward(ids[r : r + 1, :n], mask[r : r + 1, :n], types[r : r + 1, :n], **options)
        assert single.exit_layer[0] == batched.exit_layer[r]
        np.testing.assert_allclose(single.logits[0], batched.logits[r], atol=ATOL, rtol=0)


def test_bad_options_raise_one_sentence(bundles):
    _, folder = bundles[("cls", 1)]
    runtime = _onnx(folder)
    ids = np.ones((1, 4), dtype=np.int64)
    with pytest.raises(ValueError, match="undefined for regression"):
        runtime.forward(ids, exit_criterion="entropy", entropy_threshold=0.1)
    with pytest.raises(ValueError, match="patience must be"):
        runtime.forward(ids, exit_criterion="patience", patience=9)
    with pytest.raises(ValueError, match="exit_layer must be one of"):
        runtime.forward(ids, exit_layer=7)
    with pytest.raises(ValueError, match="Unknown exit_criterion"):
        runtime.forward(ids, exit_criterion="confidence")


def test_export_refuses_non_empty_dir_and_bad_arguments(tmp_path):
    from elue_hf.deploy import export_elasticbert
    from tests.deploy.conftest import tiny_model

    (tmp_path / "x.txt").write_text("keep me")
    with pytest.raises(ValueError, match="exists and is not empty"):
        export_elasticbert(tiny_model(), tmp_path)
    assert (tmp_path / "x.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="quantize must be"):
        export_elasticbert(tiny_model(), tmp_path / "new", quantize="int4")
    with pytest.raises(ValueError, match="opset must be"):
        export_elasticbert(tiny_model(), tmp_path / "new", opset=11)
    with pytest.raises(ValueError, match="not an elue-hf ONNX bundle"):
        _onnx(tmp_path)


def test_int8_bundle_and_full_depth_graphs(tmp_path):
    """int8 bundles hold quantized graphs and stay close to fp32; the one-graph baseline equals the top exit."""
    import onnx

    from elue_hf.deploy import export_elasticbert, export_full_depth
    from tests.deploy.conftest import tiny_model

    model = tiny_model()
    ids, mask, types = random_batch()
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask, token_type_ids=types).logits.numpy()
    bundle = export_elasticbert(model, tmp_path / "int8", quantize="int8")
    ops = {node.op_type for node in onnx.load(str(bundle / "layer_0.onnx")).graph.node}
    assert "DynamicQuantizeLinear" in ops and ({"MatMulInteger", "DynamicQuantizeMatMul"} & ops)
    assert not (bundle / "fp32").exists()
    got = _onnx(bundle).forward(ids.numpy(), mask.numpy(), types.numpy()).logits
    assert (got.argmax(-1) == want.argmax(-1)).mean() >= 0.75
    assert np.abs(got - want).max() < 0.5
    full = export_full_depth(model, tmp_path / "full.onnx")
    import onnxruntime as ort

    session = ort.InferenceSession(str(full))
    logits = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy(),
                                "token_type_ids": types.numpy()})[0]
    np.testing.assert_allclose(logits, want, atol=ATOL, rtol=0)
