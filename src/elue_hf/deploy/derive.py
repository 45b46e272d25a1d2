"""Layer graphs derived from one traced layer by swapping in each layer's weights (docs/deploy.md, "Fast export").

Every layer of a BERT-like encoder is the same computation with its own weights, and tracing it
(``torch.onnx.export``, the torch.export-based exporter) costs seconds per graph, whereas writing weights into a
graph costs milliseconds. So the exporter traces one layer (and one more only where a layer's graph differs) and
derives the others:

1. the template layer is traced on a copy of the model whose every float parameter holds distinct random values
   (:func:`distinct_copy`), so that each initializer of the traced graph identifies the parameter it came from,
   as itself or transposed (the exporter's optimizer folds ``Linear``'s transposes into new initializers and merges
   initializers of equal value: with the real weights, LayerNorm scales of ones would be merged);
2. :func:`initializer_sources` maps every initializer to its parameter; a float initializer of more than one
   element that matches none (a value folded from weights in another way) makes the template unusable;
3. :func:`with_weights` writes layer ``i``'s own parameters (the template's names with the layer / exit index
   swapped, :func:`counterpart`) into a copy of the graph;
4. the exporter checks the derived graph against the PyTorch layer on sample inputs and traces that layer itself
   when they disagree (a layer built differently: DeBERTa's first layer, for instance).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

__all__ = ["distinct_copy", "initializer_sources", "counterpart", "with_weights", "graph_matches"]

_KEY = 4  # leading values that index a parameter (distinct random values: no two parameters share them)


def distinct_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy of ``model`` whose float parameters hold distinct random values (the template's tracing copy)."""
    clone = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in clone.parameters():
            if p.is_floating_point():
                p.copy_(torch.rand(p.shape, generator=g, dtype=torch.float64).to(p.dtype) + 0.5)
    return clone


def _key(array: np.ndarray) -> tuple:
    return (array.shape, tuple(array.ravel()[:_KEY].tolist()))


def initializer_sources(graph, params: dict[str, torch.Tensor]) -> dict[str, tuple[str, bool]] | None:
    """``{initializer name: (parameter name, transposed)}`` for the initializers of ``graph`` (an ``onnx``
    ModelProto traced from a :func:`distinct_copy`) that hold a parameter of ``params``; None when a float
    initializer or constant of more than one element is none of them (the graph holds a value derived from weights
    that swapping cannot recompute)."""
    from onnx import numpy_helper

    index: dict[tuple, tuple[str, bool]] = {}
    for name, p in params.items():
        if p.is_floating_point():
            array = p.detach().numpy()
            index[_key(array)] = (name, False)
            if array.ndim == 2:
                index[_key(array.T)] = (name, True)
    sources = {}
    for init in graph.graph.initializer:
        array = numpy_helper.to_array(init)
        found = index.get(_key(array)) if array.size else None
        if found is not None:
            expected = params[found[0]].detach().numpy()
            if np.array_equal(expected.T if found[1] else expected, array):
                sources[init.name] = found
                continue
        if np.issubdtype(array.dtype, np.floating) and array.size > 1:
            return None
    if any(_float_constant(node) for node in graph.graph.node):
        return None
    return sources


def _float_constant(node) -> bool:
    """A Constant node holding a float tensor of more than one element (possibly folded from weights)."""
    if node.op_type != "Constant":
        return False
    from onnx import numpy_helper

    for attribute in node.attribute:
        if attribute.name == "value":
            array = numpy_helper.to_array(attribute.t)
            return bool(np.issubdtype(array.dtype, np.floating) and array.size > 1)
    return False


def counterpart(model: nn.Module, name: str, swaps: dict[int, dict[int, int]]) -> str:
    """Parameter ``name`` of the template with its list indices swapped: ``swaps`` maps a list length to
    ``{template index: target index}`` (the layer lists: ``{num_layers: {i0: i}}``, the exit-head lists:
    ``{num_exits: {j0: j}}``). Indices into other lists, or other indices, stay."""
    parts = name.split(".")
    module = model
    for k, part in enumerate(parts[:-1]):
        if isinstance(module, nn.ModuleList) and part.isdigit():
            index = swaps.get(len(module), {}).get(int(part), int(part))
            parts[k], module = str(index), module[index]
        else:
            module = getattr(module, part)
    return ".".join(parts)


def with_weights(template, sources: dict[str, tuple[str, bool]], params: dict[str, torch.Tensor], rename):
    """A copy of ``template`` whose mapped initializers hold ``params[rename(parameter)]`` (transposed where the
    template's was)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.ModelProto()
    graph.CopyFrom(template)
    for init in graph.graph.initializer:
        if init.name in sources:
            name, transposed = sources[init.name]
            array = params[rename(name)].detach().numpy()
            init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(array.T if transposed else array), init.name))
    return graph


def graph_matches(graph, feeds: dict[str, np.ndarray], expected: list[np.ndarray], tolerance: float = 1e-4) -> bool:
    """Whether ONNX Runtime running ``graph`` on ``feeds`` gives ``expected`` (max abs difference at most
    ``tolerance`` times the outputs' scale)."""
    import onnxruntime as ort

    from .runtime import session_options

    try:
        session = ort.InferenceSession(graph.SerializeToString(), session_options(1),
                                       providers=["CPUExecutionProvider"])
        outputs = session.run(None, feeds)
    except Exception:  # noqa: BLE001 (a graph that does not load or run is no match: the exporter traces instead)
        return False
    return len(outputs) == len(expected) and all(
        got.shape == want.shape and float(np.abs(got - want).max()) <= tolerance * max(1.0, float(np.abs(want).max()))
        for got, want in zip(outputs, expected))
