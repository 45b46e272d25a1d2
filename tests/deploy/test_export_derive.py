"""The exporter traces one layer and derives the others by swapping in their weights (docs/deploy.md, "Fast
export"): the derived bundle equals PyTorch, a layer built differently is traced itself, the mapping is exact."""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import random_batch, tiny_model

pytestmark = pytest.mark.slow  # exports ONNX graphs (seconds each)


def _count_traces(monkeypatch):
    from elue_hf.deploy import export as export_module

    calls = []
    trace = export_module._trace

    def counted(module, *args, **kwargs):
        calls.append(type(module).__name__ + (f"[{module.i}]" if hasattr(module, "i") else ""))
        return trace(module, *args, **kwargs)

    monkeypatch.setattr(export_module, "_trace", counted)
    return calls


def _assert_every_exit_equals_pytorch(model, bundle):
    """Each exit's logits (a static exit at each exit layer) equal the PyTorch model's ``all_logits``."""
    import torch

    from elue_hf.deploy import OnnxElasticBertForSequenceClassification

    ids, mask, types = random_batch()
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, token_type_ids=types).all_logits.numpy()
    runtime = OnnxElasticBertForSequenceClassification.from_pretrained(bundle)
    for j, layer in enumerate(runtime.exit_layers):
        out = runtime.forward(ids.numpy(), mask.numpy(), types.numpy(), exit_layer=layer)
        np.testing.assert_allclose(out.logits, ref[:, j], atol=1e-4)


def _trained_like(model, seed=3):
    """Give every parameter its own values (a trained model's LayerNorm scales and biases are not all equal)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def test_one_layer_is_traced_and_every_layer_equals_pytorch(tmp_path, monkeypatch):
    from elue_hf.deploy import export_elasticbert

    model = _trained_like(tiny_model(pooling="mean"))
    calls = _count_traces(monkeypatch)
    bundle = export_elasticbert(model, tmp_path / "b")
    assert calls == ["FirstPieces"]  # the embeddings and layer 0 in one trace
    _assert_every_exit_equals_pytorch(model, bundle)


def test_a_layer_built_differently_is_traced_itself(tmp_path, monkeypatch):
    import torch

    from elue_hf.deploy import export_elasticbert

    model = _trained_like(tiny_model())
    model.elasticbert.encoder.layer[2].intermediate.intermediate_act_fn = torch.nn.ReLU()  # not GELU: other graph
    calls = _count_traces(monkeypatch)
    bundle = export_elasticbert(model, tmp_path / "b")
    assert calls == ["FirstPieces", "LayerPiece[2]"]  # layers 1 and 3 derived from layer 0
    _assert_every_exit_equals_pytorch(model, bundle)


def test_layers_without_an_exit_get_their_own_template(tmp_path, monkeypatch):
    from elue_hf.deploy import export_elasticbert

    model = _trained_like(tiny_model(num_output_layers=2))  # exits on layers 3 and 4 only
    calls = _count_traces(monkeypatch)
    bundle = export_elasticbert(model, tmp_path / "b")
    assert calls == ["FirstPieces", "LayerPiece[2]"]
    _assert_every_exit_equals_pytorch(model, bundle)


def test_counterpart_swaps_layer_and_exit_indices_only():
    from elue_hf.deploy.derive import counterpart

    model = tiny_model()
    swaps = {4: {0: 2}}
    assert counterpart(model, "elasticbert.encoder.layer.0.output.dense.weight", swaps) == \
        "elasticbert.encoder.layer.2.output.dense.weight"
    assert counterpart(model, "classifiers.0.weight", swaps) == "classifiers.2.weight"
    assert counterpart(model, "elasticbert.encoder.layer.1.output.dense.weight", swaps) == \
        "elasticbert.encoder.layer.1.output.dense.weight"
    assert counterpart(model, "elasticbert.embeddings.word_embeddings.weight", swaps) == \
        "elasticbert.embeddings.word_embeddings.weight"


def test_a_value_folded_from_weights_makes_the_template_unusable():
    import onnx
    import torch
    from onnx import helper, numpy_helper

    from elue_hf.deploy.derive import initializer_sources

    weight = torch.nn.Parameter(torch.rand(3, 2) + 0.5)
    params = {"w": weight}

    def graph(array):
        init = numpy_helper.from_array(array.astype(np.float32), "val_0")
        node = helper.make_node("MatMul", ["x", "val_0"], ["y"])
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 2])], [init])
        return helper.make_model(g)

    w = weight.detach().numpy()
    assert initializer_sources(graph(w), params) == {"val_0": ("w", False)}
    assert initializer_sources(graph(np.ascontiguousarray(w.T.T)), params) == {"val_0": ("w", False)}
    assert initializer_sources(graph(2 * w), params) is None  # folded: cannot be recomputed by swapping


def test_int8_keeps_each_ffn_down_projection_fp32_and_refuses_unknown_settings(tmp_path):
    import onnx

    from elue_hf.deploy import export_elasticbert
    from elue_hf.deploy.export import down_projections, quantize_onnx_int8

    model = _trained_like(tiny_model())
    fp32 = export_elasticbert(model, tmp_path / "fp32")
    graph = onnx.load(str(fp32 / "layer_1.onnx"))
    shapes = {i.name: tuple(i.dims) for i in graph.graph.initializer}
    down = down_projections(graph, 32)
    assert [shapes[n.input[1]] for n in graph.graph.node if n.name in down] == [(64, 32)]  # intermediate -> hidden
    int8 = export_elasticbert(model, tmp_path / "int8", quantize="int8")
    ops = [n.op_type for n in onnx.load(str(int8 / "layer_1.onnx")).graph.node]
    assert ops.count("MatMulInteger") == 7  # Q, K, V, attention output, FFN in, pooler, classifier
    every = export_elasticbert(model, tmp_path / "every", quantize="int8",
                               int8_settings={"fp32_down_projection": False})
    assert [n.op_type for n in onnx.load(str(every / "layer_1.onnx")).graph.node].count("MatMulInteger") == 8
    with pytest.raises(ValueError, match="unknown int8 settings"):
        quantize_onnx_int8(graph, tmp_path / "x.onnx", per_chanel=True)
    for bad, match in (({"per_chanel": True}, "unknown int8 settings"), (None, "int8_settings apply to")):
        with pytest.raises(ValueError, match=match):  # refused before the folder is made
            export_elasticbert(model, tmp_path / "refused", quantize="int8" if bad else None,
                               int8_settings=bad or {"per_channel": False})
        assert not (tmp_path / "refused").exists()
