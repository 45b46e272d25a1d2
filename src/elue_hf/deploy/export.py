"""Export an ElasticBERT classifier to an ONNX bundle that keeps its exits (docs/deploy.md).

The graph is cut where an exit may stop: one piece for the embeddings, then one piece per layer which also computes
that layer's exit (pooler + classifier) when it has one. Each piece is exported with ``torch.onnx.export``
(the torch.export-based exporter, ``dynamo=True``: the legacy TorchScript exporter is deprecated and, tried on
torch 2.13, baked the attention-mask branch in and disagreed with PyTorch by 3e-2) with dynamic batch and sequence
axes; int8 is ``onnxruntime.quantization.quantize_dynamic`` on every piece. Only the exit loop, which no exporter can
express (rows leave the batch at data-dependent layers), is hand-written, in :mod:`.runtime`.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from pathlib import Path

import torch
from torch import nn

from ..elasticbert.modeling_elasticbert import ElasticBertForSequenceClassification
from .bundle import layer_file, write_bundle_config

__all__ = ["export_multi_exit", "export_elasticbert", "export_full_depth", "quantize_onnx_int8", "down_projections",
           "INT8_SETTINGS", "PLAIN_INT8", "DEFAULT_OPSET"]

logger = logging.getLogger(__name__)
DEFAULT_OPSET = 18
_SAMPLE_SHAPE = (2, 8)


def _additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, seq) 0/1 mask -> (batch, 1, 1, seq) additive mask (0 where attended, dtype's min where padding)."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


def _padding_form(model, ids, mask, types) -> bool:
    """Whether the family's layers take the boolean (batch, 1, 1, seq) padding mask (DeBERTa, ModernBERT: they
    build their own masks from it) rather than a BERT-style attention mask: read from what ``embed`` returns."""
    with torch.no_grad():
        layer_mask = model.elasticbert.embed(ids, mask, types if _uses_token_types(model) else None)[1]
    return (isinstance(layer_mask, torch.Tensor) and layer_mask.dtype == torch.bool
            and tuple(layer_mask.shape) == (ids.shape[0], 1, 1, ids.shape[1])
            and bool((layer_mask[:, 0, 0, :] == mask.bool()).all()))


def _uses_token_types(model) -> bool:
    """ElasticBERT and the families with token-type embeddings take ``token_type_ids``; DistilBERT, ModernBERT and
    DeBERTa without type embeddings refuse non-zero ones (a data-dependent check the exporter cannot trace)."""
    config = getattr(model.config, "backbone_config", model.config)
    return int(getattr(config, "type_vocab_size", 0) or 0) > 0


class EmbeddingsPiece(nn.Module):
    """What every instance runs before layer 1 (the family's ``embed``: lookups, positions, projections)."""

    def __init__(self, model: ElasticBertForSequenceClassification):
        super().__init__()
        self.model = model
        self.types = _uses_token_types(model)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        return self.model.elasticbert.embed(input_ids, attention_mask, token_type_ids if self.types else None)[0]


class LayerPiece(nn.Module):
    """Layer ``i`` and, when it has one (and ``with_exit``), its exit: returns the new states (and the exit's
    logits). Runs through the model's multi-exit interface (``run_layer``, ``exit_states``, ``pool``,
    ``exit_head``), so the layers, masks and heads are the family's own."""

    def __init__(self, model: ElasticBertForSequenceClassification, i: int, padding_form: bool = False,
                 with_exit: bool = True):
        super().__init__()
        self.model, self.i, self.padding_form = model, i, padding_form
        exits = list(model.elasticbert.encoder.exit_layer_indices)
        self.has_exit = with_exit and i in exits
        self.j = exits.index(i) if self.has_exit else None
        self.mean = model.config.pooling == "mean"

    def forward(self, hidden_states, attention_mask):
        encoder = self.model.elasticbert.encoder
        if self.padding_form:
            layer_mask = attention_mask.bool()[:, None, None, :]
        else:
            layer_mask = _additive_mask(attention_mask, hidden_states.dtype)
        hidden_states = encoder.run_layer(self.i, hidden_states, layer_mask)
        if not self.has_exit:
            return hidden_states
        states = encoder.exit_states(self.i, hidden_states)
        pooled = encoder.pool(self.i, states, attention_mask if self.mean else None)
        return hidden_states, self.model.exit_head(self.j, pooled)


class FullDepthPiece(nn.Module):
    """The whole model read at its top exit, as one graph: what a user exports without exits (the baseline)."""

    def __init__(self, model: ElasticBertForSequenceClassification, padding_form: bool = False):
        super().__init__()
        layers = model.config.num_hidden_layers
        self.embeddings = EmbeddingsPiece(model)
        # the lower exits are not read: the graph computes only the top one
        self.layers = nn.ModuleList([LayerPiece(model, i, padding_form, with_exit=i == layers - 1)
                                     for i in range(layers)])

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.embeddings(input_ids, attention_mask, token_type_ids)
        for piece in self.layers[:-1]:
            hidden = piece(hidden, attention_mask)
        return self.layers[-1](hidden, attention_mask)[1]


def _trace(module: nn.Module, args: tuple, names: list[str], outputs: list[str], opset: int):
    """``module`` traced by ``torch.onnx.export`` (dynamic batch and sequence axes): an ``onnx`` ModelProto."""
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    shapes = tuple({0: batch, 1: seq} for _ in args)
    registration = logging.getLogger(_REGISTRATION_LOGGER)
    level = registration.level
    registration.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's deprecation chatter from transformers' internals
            program = torch.onnx.export(module.eval(), args, dynamo=True, input_names=names, output_names=outputs,
                                        dynamic_shapes=shapes, opset_version=opset, verbose=False)
    finally:
        registration.setLevel(level)
    return program.model_proto


# torch's exporter warns here once per missing optional library ("torchvision is not installed. Skipping
# torchvision::nms", four lines): text models never need those operators, so the export keeps it quiet.
_REGISTRATION_LOGGER = "torch.onnx._internal.exporter._registration"


def _save(graph, path: Path) -> None:
    import onnx

    onnx.save(graph, str(path))


#: families whose layers differ only in their weights (ModernBERT alternates global and sliding-window attention,
#: which sample inputs shorter than the window cannot tell apart: each of its layers is traced)
_DERIVABLE = ("elasticbert", "bert", "roberta", "xlm-roberta", "camembert", "electra", "distilbert", "deberta-v2")


def _family(config) -> str:
    return getattr(config, "backbone_type", None) or config.model_type


def _layer_outputs(piece: LayerPiece) -> list[str]:
    return ["layer_output", "logits"] if piece.has_exit else ["layer_output"]


class FirstPieces(nn.Module):
    """The embeddings and the first layer in one module, traced once and cut into their two graphs: the exporter's
    fixed cost per trace (start-up, its ATen-to-ONNX registry, decompositions) is paid once for both."""

    def __init__(self, embeddings: EmbeddingsPiece, layer: LayerPiece):
        super().__init__()
        self.embeddings, self.layer = embeddings, layer

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        hidden = self.embeddings(input_ids, attention_mask, token_type_ids)
        out = self.layer(hidden, attention_mask)
        return (hidden, *out) if isinstance(out, tuple) else (hidden, out)


def _cut(graph, inputs: list[str], outputs: list[str]):
    """The part of ``graph`` from ``inputs`` to ``outputs``. In the layer's part, the exporter reads the (batch,
    seq) dimensions with ``Shape`` from whichever input has them (``input_ids`` or ``token_type_ids`` too): those
    read ``attention_mask``, an input of both parts with the same shape."""
    import onnx.utils

    part = onnx.utils.Extractor(graph).extract_model(inputs, outputs)
    if "attention_mask" in inputs:
        for node in part.graph.node:
            if node.op_type == "Shape" and node.input[0] in ("input_ids", "token_type_ids"):
                node.input[0] = "attention_mask"
    return part


def _pieces(model, sample: tuple, names: list[str], padding_form: bool, opset: int):
    """``(embeddings graph, [layer graphs])`` (``onnx`` ModelProtos), tracing as few graphs as it can
    (:mod:`.derive`). The embeddings and layer 0 are traced together on a copy with distinct weights, whose
    initializers then name their parameters; every other layer's graph is derived from a traced one by swapping in
    its weights when that gives the PyTorch layer's outputs on the sample inputs, else traced. Whatever cannot be
    mapped is traced from the model itself, one graph per piece (the exporter before graphs were derived)."""
    from .derive import counterpart, distinct_copy, graph_matches, initializer_sources, with_weights

    ids, mask, _ = sample
    embeddings = EmbeddingsPiece(model)
    with torch.no_grad():
        hidden = embeddings(*sample)
    layers, exits = model.config.num_hidden_layers, len(model.elasticbert.encoder.exit_layer_indices)
    real = dict(model.named_parameters())
    feeds = {"hidden_states": hidden.numpy(), "attention_mask": mask.numpy()}
    layer_names = ["hidden_states", "attention_mask"]
    emb_graph, templates = None, []  # templates: (piece of the stand-in, its graph, its initializers' parameters)
    fast = _family(model.config) in _DERIVABLE
    if fast:
        stand_in = distinct_copy(model)
        stand_in_params = dict(stand_in.named_parameters())
        first = LayerPiece(stand_in, 0, padding_form)
        traced = _trace(FirstPieces(EmbeddingsPiece(stand_in), first), sample[: len(names)], names,
                        ["hidden_states", *_layer_outputs(first)], opset)
        sources = initializer_sources(traced, stand_in_params)
        if sources is not None:
            emb_graph = _cut(with_weights(traced, sources, real, lambda name: name), names, ["hidden_states"])
            if not graph_matches(emb_graph, {n: t.numpy() for n, t in zip(names, sample)}, [hidden.numpy()]):
                emb_graph = None
            else:
                templates.append((first, _cut(traced, layer_names, _layer_outputs(first)), sources))
    if emb_graph is None:
        emb_graph = _trace(embeddings, sample[: len(names)], names, ["hidden_states"], opset)
    graphs = []
    for i in range(layers):
        piece = LayerPiece(model, i, padding_form)
        with torch.no_grad():
            out = piece(hidden, mask)
        expected = [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]
        graph = None
        for source, template, sources in templates:
            if source.has_exit != piece.has_exit:
                continue
            swaps = {layers: {source.i: i}}
            if piece.has_exit:
                swaps.setdefault(exits, {})[source.j] = piece.j
            derived = with_weights(template, sources, real, lambda name, s=swaps: counterpart(model, name, s))
            if graph_matches(derived, feeds, expected):
                graph = derived
                break
        if graph is None and fast:
            source = LayerPiece(stand_in, i, padding_form)
            template = _trace(source, (hidden, mask), layer_names, _layer_outputs(piece), opset)
            sources = initializer_sources(template, stand_in_params)
            if sources is not None:
                derived = with_weights(template, sources, real, lambda name: name)
                if graph_matches(derived, feeds, expected):
                    templates.append((source, template, sources))
                    graph = derived
        graphs.append(graph if graph is not None else _trace(piece, (hidden, mask), layer_names,
                                                              _layer_outputs(piece), opset))
    return emb_graph, graphs


def _backbone_config(config):
    """The config holding the encoder's own fields (the backbone's for a multi-exit family, else the model's)."""
    return getattr(config, "backbone_config", config)


def _sample_inputs(config):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(4, _backbone_config(config).vocab_size, _SAMPLE_SHAPE, generator=g)
    mask = torch.ones(_SAMPLE_SHAPE, dtype=torch.long)
    mask[1, -2:] = 0
    return ids, mask, torch.zeros_like(ids)


#: what ``quantize="int8"`` does to each graph of a bundle, chosen on the demo's validation split (docs/deploy.md,
#: "int8 accuracy"): one weight scale per output channel, 7-bit weights (``reduce_range``), and each layer's FFN
#: down-projection kept fp32 (its input, the GELU output, is the activation whose per-tensor int8 scale costs most)
INT8_SETTINGS = {"per_channel": True, "reduce_range": True, "op_types": ("MatMul", "Gemm"),
                 "fp32_down_projection": True}
#: ``quantize_dynamic``'s own defaults: the one-graph int8 baseline (:func:`export_full_depth`), what a user gets
PLAIN_INT8 = {"per_channel": False, "reduce_range": False, "op_types": ("MatMul", "Gemm"),
              "fp32_down_projection": False}


def int8_settings_for(overrides: dict | None) -> dict:
    """:data:`INT8_SETTINGS` with ``overrides``; an unknown name is a ``ValueError`` naming the known ones."""
    overrides = dict(overrides or {})
    unknown = set(overrides) - set(INT8_SETTINGS)
    if unknown:
        raise ValueError(f"unknown int8 settings {sorted(unknown)}; expected some of {sorted(INT8_SETTINGS)}")
    return {**INT8_SETTINGS, **overrides}


def down_projections(graph, hidden_size: int) -> list[str]:
    """Names of the ``MatMul`` nodes of ``graph`` whose constant weight maps a wider input to ``hidden_size``
    (weight (k, hidden_size), k > hidden_size): the FFN down-projections."""
    shapes = {init.name: tuple(init.dims) for init in graph.graph.initializer}
    return [node.name for node in graph.graph.node
            if node.op_type == "MatMul" and len(shapes.get(node.input[1], ())) == 2
            and shapes[node.input[1]][1] == hidden_size and shapes[node.input[1]][0] > hidden_size]


def quantize_onnx_int8(source, target: Path, hidden_size: int | None = None, exclude=(), **settings) -> None:
    """``onnxruntime.quantization.quantize_dynamic``: int8 weights (QInt8), activations quantized per call, on the
    ``op_types`` nodes with a constant weight; the embedding tables stay fp32. ``settings`` override
    :data:`INT8_SETTINGS` (``per_channel``, ``reduce_range``, ``op_types``, ``fp32_down_projection``: needs
    ``hidden_size``); ``exclude``: more node names kept fp32. ``source``: a graph file or an ``onnx`` ModelProto
    (modified: its recorded shapes are dropped)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = int8_settings_for(settings)
    graph = source if isinstance(source, onnx.ModelProto) else onnx.load(str(source))
    del graph.graph.value_info[:]  # the exporter's recorded shapes; the quantizer infers its own
    exclude = list(exclude)
    if settings["fp32_down_projection"] and hidden_size:
        exclude += down_projections(graph, hidden_size)
    hint = _DropPreprocessHint()
    logging.getLogger().addFilter(hint)  # the quantizer logs this hint on the root logger once per graph
    try:
        quantize_dynamic(graph, str(target), op_types_to_quantize=list(settings["op_types"]),
                         per_channel=settings["per_channel"], reduce_range=settings["reduce_range"],
                         weight_type=QuantType.QInt8, nodes_to_exclude=exclude)
    finally:
        logging.getLogger().removeFilter(hint)


class _DropPreprocessHint(logging.Filter):
    """Drops ONNX Runtime's "Please consider to run pre-processing before quantization" hint: the pieces are
    already exported graphs whose shapes the quantizer infers itself (above), and int8 agreement with fp32 is measured
    as they are (docs/deploy.md); the hint, printed once per graph, said nothing a user can act on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


_MULTI_EXIT_TYPES = ("elasticbert", "multiexit")


def _load(model_or_path) -> tuple[ElasticBertForSequenceClassification, object]:
    from ..tokenizer_io import load_tokenizer

    if isinstance(model_or_path, ElasticBertForSequenceClassification):  # MultiExitForSequenceClassification too
        return model_or_path, None
    if isinstance(model_or_path, nn.Module):
        raise ValueError(f"export exports a multi-exit classifier (ElasticBERT or elue_hf.multiexit), got "
                         f"{type(model_or_path).__name__}; convert it first (`elue-hf convert`)")
    path = Path(model_or_path)
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} is not a model folder (no config.json); pass a saved multi-exit classifier")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") not in _MULTI_EXIT_TYPES:
        raise ValueError(f"{path} holds a {config.get('model_type')!r} model; only multi-exit classifiers (ElasticBERT "
                         "or a converted RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT, DeBERTa-v2/v3, ModernBERT) "
                         "export with their exits: convert it first with `elue-hf convert`")
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(path)
    return model, load_tokenizer(None, path)


def _prepare_dir(output_dir, overwrite: bool) -> Path:
    out = Path(output_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise ValueError(f"output directory {out} exists and is not empty; choose a new one or pass "
                             "overwrite=True (--overwrite)")
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    out.mkdir(parents=True, exist_ok=True)
    return out


def _exportable(model) -> ElasticBertForSequenceClassification:
    """The model in eval mode with an attention implementation the exporter traces (eager or SDPA)."""
    model = model.eval()
    config = _backbone_config(model.config)
    if getattr(config, "_attn_implementation", None) not in (None, "eager", "sdpa"):
        raise ValueError(f"the ONNX export traces eager or SDPA attention, the model uses "
                         f"{config._attn_implementation!r}; load it with attn_implementation='sdpa'")
    return model


def export_multi_exit(model_or_path, output_dir, quantize: str | None = None, opset: int = DEFAULT_OPSET,
                      tokenizer=None, overwrite: bool = False, int8_settings: dict | None = None) -> Path:
    """Write an ONNX bundle of a multi-exit classifier that keeps every exit.

    Args:
        model_or_path: an ``ElasticBertForSequenceClassification`` or ``MultiExitForSequenceClassification``
            (RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT, DeBERTa-v2/v3, ModernBERT), or a folder saved by elue-hf.
        output_dir: a new (or empty) folder; an existing non-empty one needs ``overwrite=True``.
        quantize: ``None`` (fp32) or ``"int8"`` (ONNX Runtime dynamic quantization of every piece,
            :data:`INT8_SETTINGS`).
        opset: ONNX opset of the pieces (>= 18, what the torch.export-based exporter emits).
        tokenizer: tokenizer object / folder to ship (default: the model folder's own).
        int8_settings: overrides of :data:`INT8_SETTINGS` for ``quantize="int8"`` (e.g.
            ``{"fp32_down_projection": False}``: every projection int8, faster, less accurate).
    Returns the bundle folder; load it with ``OnnxElasticBertForSequenceClassification.from_pretrained``.
    """
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if not isinstance(opset, int) or opset < 18:
        raise ValueError(f"opset must be an integer >= 18 (the torch.export-based exporter's minimum), got {opset!r}")
    if int8_settings is not None and quantize != "int8":
        raise ValueError("int8_settings apply to quantize='int8' only; pass quantize='int8' or drop int8_settings")
    settings = int8_settings_for(int8_settings) if quantize else None  # checked before anything is written
    model, found_tokenizer = _load(model_or_path)
    from ..tokenizer_io import load_tokenizer, save_tokenizer

    tokenizer = load_tokenizer(tokenizer) if tokenizer is not None else found_tokenizer
    model = _exportable(model)
    out = _prepare_dir(output_dir, overwrite)
    config = model.config
    ids, mask, types = _sample_inputs(config)
    padding_form = _padding_form(model, ids, mask, types)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if _uses_token_types(model) else [])
    emb_graph, layer_graphs = _pieces(model, (ids, mask, types), names, padding_form, opset)
    layers = [layer_file(i) for i in range(len(layer_graphs))]
    for name, graph in zip(["embeddings.onnx", *layers], [emb_graph, *layer_graphs]):
        if quantize:
            quantize_onnx_int8(graph, out / name, hidden_size=_backbone_config(config).hidden_size, **settings)
        else:
            _save(graph, out / name)
    config.save_pretrained(out)
    if tokenizer is None or not save_tokenizer(tokenizer, out):
        logger.warning("bundle %s has no tokenizer: predict(texts) will not work, forward(input_ids) will", out)
    write_bundle_config(out, _bundle_fields(model, tokenizer, quantize, opset, layers))
    return out


#: the name of the first release (ElasticBERT only); it exports every multi-exit family now
export_elasticbert = export_multi_exit


def _bundle_fields(model, tokenizer, quantize, opset, layers) -> dict:
    config = model.config
    label_names = [config.id2label[i] for i in range(config.num_labels)] if config.num_labels > 1 else ["score"]
    fields = {
        "model_type": config.model_type,
        "num_layers": config.num_hidden_layers,
        "exit_layers": [i + 1 for i in config.exit_layer_indices],
        "pooling": config.pooling,
        "num_labels": config.num_labels,
        "head": "regression" if config.num_labels == 1 else "classification",
        "id2label": label_names,
        "max_length": _max_length(config, tokenizer),
        "pad_token": getattr(tokenizer, "pad_token", None) or "[PAD]",
        "quantize": quantize,
        "opset": opset,
        "embeddings": "embeddings.onnx",
        "layers": layers,
        "defaults": {"exit_criterion": config.exit_criterion, "entropy_threshold": config.entropy_threshold,
                     "patience": config.patience, "regression_threshold": config.regression_threshold},
    }
    if config.model_type == "elasticbert":
        fields["dims"] = {"hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size,
                          "num_attention_heads": config.num_attention_heads}
    else:  # the family's own ELUE rule, written out so that the torch-free runtime counts without transformers
        from dataclasses import asdict

        from ..elue.flops.architectures import encoder_shape

        fields["flops_shape"] = asdict(encoder_shape(config))
    return fields


def _max_length(config, tokenizer) -> int:
    """Truncation length for the runtime's tokenizer: the tokenizer's own limit, at most the position table."""
    limit = int(getattr(_backbone_config(config), "max_position_embeddings", 512))
    own = getattr(tokenizer, "model_max_length", None)
    return min(limit, int(own)) if isinstance(own, int) and own > 0 else limit


def export_full_depth(model: ElasticBertForSequenceClassification, path, opset: int = DEFAULT_OPSET,
                      quantize: str | None = None) -> Path:
    """One ONNX graph of the whole model read at its top exit: the no-exit baseline a user would deploy (int8:
    ``quantize_dynamic``'s own defaults, :data:`PLAIN_INT8`, what a user gets without elue-hf)."""
    path = Path(path)
    model = _exportable(model)
    ids, mask, types = _sample_inputs(model.config)
    graph = _trace(FullDepthPiece(model, _padding_form(model, ids, mask, types)), (ids, mask, types),
                   ["input_ids", "attention_mask", "token_type_ids"], ["logits"], opset)
    if quantize:
        quantize_onnx_int8(graph, path, **PLAIN_INT8)
    else:
        _save(graph, path)
    return path
