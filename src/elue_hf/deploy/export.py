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

__all__ = ["export_elasticbert", "export_full_depth", "quantize_onnx_int8", "DEFAULT_OPSET"]

logger = logging.getLogger(__name__)
DEFAULT_OPSET = 18
_SAMPLE_SHAPE = (2, 8)


def _additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(batch, seq) 0/1 mask -> (batch, 1, 1, seq) additive mask (0 where attended, dtype's min where padding)."""
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class EmbeddingsPiece(nn.Module):
    def __init__(self, model: ElasticBertForSequenceClassification):
        super().__init__()
        self.embeddings = model.elasticbert.embeddings

    def forward(self, input_ids, token_type_ids):
        return self.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)


class LayerPiece(nn.Module):
    """Layer ``i`` and, when it has one, its exit: returns the new states (and the exit's logits)."""

    def __init__(self, model: ElasticBertForSequenceClassification, i: int):
        super().__init__()
        encoder = model.elasticbert.encoder
        self.layer = encoder.layer[i]
        exits = list(encoder.exit_layer_indices)
        self.has_exit = i in exits
        if self.has_exit:
            j = exits.index(i)
            self.pooler = encoder.pooler[i]
            self.head = model.classifier if model.is_static else model.classifiers[j]
            self.mean = model.config.pooling == "mean"

    def forward(self, hidden_states, attention_mask):
        hidden_states = self.layer(hidden_states, _additive_mask(attention_mask, hidden_states.dtype))
        if not self.has_exit:
            return hidden_states
        pooled = self.pooler(hidden_states, attention_mask if self.mean else None)
        return hidden_states, self.head(pooled)


class FullDepthPiece(nn.Module):
    """The whole model read at its top exit, as one graph: what a user exports without exits (the baseline)."""

    def __init__(self, model: ElasticBertForSequenceClassification):
        super().__init__()
        self.embeddings = EmbeddingsPiece(model)
        self.layers = nn.ModuleList([LayerPiece(model, i) for i in range(model.config.num_hidden_layers)])
        for piece in self.layers[:-1]:
            piece.has_exit = False  # the lower exits are not read: the graph computes only the top one

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.embeddings(input_ids, token_type_ids)
        for piece in self.layers[:-1]:
            hidden = piece(hidden, attention_mask)
        return self.layers[-1](hidden, attention_mask)[1]


def _export(module: nn.Module, args: tuple, names: list[str], outputs: list[str], path: Path, opset: int) -> None:
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    shapes = tuple({0: batch, 1: seq} for _ in args)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter from transformers' internals
        program = torch.onnx.export(module.eval(), args, dynamo=True, input_names=names, output_names=outputs,
                                    dynamic_shapes=shapes, opset_version=opset, verbose=False)
    program.save(str(path), external_data=False)


def _sample_inputs(config):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, _SAMPLE_SHAPE, generator=g)
    mask = torch.ones(_SAMPLE_SHAPE, dtype=torch.long)
    mask[1, -2:] = 0
    return ids, mask, torch.zeros_like(ids)


def quantize_onnx_int8(source: Path, target: Path) -> None:
    """``onnxruntime.quantization.quantize_dynamic``: int8 weights, activations quantized per call (MatMul/Gemm;
    the embedding tables stay fp32)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source))
    del graph.graph.value_info[:]  # the exporter's recorded shapes; the quantizer infers its own
    onnx.save(graph, str(source))
    quantize_dynamic(str(source), str(target), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8)


def _load(model_or_path) -> tuple[ElasticBertForSequenceClassification, object]:
    from ..tokenizer_io import load_tokenizer

    if isinstance(model_or_path, ElasticBertForSequenceClassification):
        return model_or_path, None
    if isinstance(model_or_path, nn.Module):
        raise ValueError(f"export_elasticbert exports an ElasticBertForSequenceClassification, got "
                         f"{type(model_or_path).__name__}; convert it first (`elue-hf convert`)")
    path = Path(model_or_path)
    if not (path / "config.json").is_file():
        raise ValueError(f"{path} is not a model folder (no config.json); pass a saved ElasticBERT classifier")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "elasticbert":
        raise ValueError(f"{path} holds a {config.get('model_type')!r} model; only ElasticBERT classifiers export "
                         "with their exits (convert a BERT with `elue-hf convert`)")
    model = ElasticBertForSequenceClassification.from_pretrained(path)
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


def export_elasticbert(model_or_path, output_dir, quantize: str | None = None, opset: int = DEFAULT_OPSET,
                       tokenizer=None, overwrite: bool = False) -> Path:
    """Write an ONNX bundle of an ElasticBERT classifier that keeps every exit.

    Args:
        model_or_path: an ``ElasticBertForSequenceClassification`` or a folder saved by elue-hf.
        output_dir: a new (or empty) folder; an existing non-empty one needs ``overwrite=True``.
        quantize: ``None`` (fp32) or ``"int8"`` (ONNX Runtime dynamic quantization of every piece).
        opset: ONNX opset of the pieces (>= 18, what the torch.export-based exporter emits).
        tokenizer: tokenizer object / folder to ship (default: the model folder's own).
    Returns the bundle folder; load it with ``OnnxElasticBertForSequenceClassification.from_pretrained``.
    """
    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}")
    if not isinstance(opset, int) or opset < 18:
        raise ValueError(f"opset must be an integer >= 18 (the torch.export-based exporter's minimum), got {opset!r}")
    model, found_tokenizer = _load(model_or_path)
    from ..tokenizer_io import load_tokenizer, save_tokenizer

    tokenizer = load_tokenizer(tokenizer) if tokenizer is not None else found_tokenizer
    out = _prepare_dir(output_dir, overwrite)
    model = model.eval()
    config = model.config
    fp32_dir = out / "fp32" if quantize else out
    fp32_dir.mkdir(exist_ok=True)
    ids, mask, types = _sample_inputs(config)
    _export(EmbeddingsPiece(model), (ids, types), ["input_ids", "token_type_ids"], ["hidden_states"],
            fp32_dir / "embeddings.onnx", opset)
    with torch.no_grad():
        hidden = model.elasticbert.embeddings(input_ids=ids, token_type_ids=types)
    layers = []
    for i in range(config.num_hidden_layers):
        piece = LayerPiece(model, i)
        outputs = ["layer_output", "logits"] if piece.has_exit else ["layer_output"]
        _export(piece, (hidden, mask), ["hidden_states", "attention_mask"], outputs, fp32_dir / layer_file(i), opset)
        layers.append(layer_file(i))
    if quantize:
        for name in ["embeddings.onnx", *layers]:
            quantize_onnx_int8(fp32_dir / name, out / name)
        shutil.rmtree(fp32_dir)
    config.save_pretrained(out)
    if tokenizer is None or not save_tokenizer(tokenizer, out):
        logger.warning("bundle %s has no tokenizer: predict(texts) will not work, forward(input_ids) will", out)
    label_names = [config.id2label[i] for i in range(config.num_labels)] if config.num_labels > 1 else ["score"]
    write_bundle_config(out, {
        "num_layers": config.num_hidden_layers,
        "exit_layers": [i + 1 for i in config.exit_layer_indices],
        "pooling": config.pooling,
        "num_labels": config.num_labels,
        "head": "regression" if config.num_labels == 1 else "classification",
        "id2label": label_names,
        "dims": {"hidden_size": config.hidden_size, "intermediate_size": config.intermediate_size,
                 "num_attention_heads": config.num_attention_heads},
        "max_length": _max_length(config, tokenizer),
        "quantize": quantize,
        "opset": opset,
        "embeddings": "embeddings.onnx",
        "layers": layers,
        "defaults": {"exit_criterion": config.exit_criterion, "entropy_threshold": config.entropy_threshold,
                     "patience": config.patience, "regression_threshold": config.regression_threshold},
    })
    return out


def _max_length(config, tokenizer) -> int:
    """Truncation length for the runtime's tokenizer: the tokenizer's own limit, at most the position table."""
    limit = int(config.max_position_embeddings)
    own = getattr(tokenizer, "model_max_length", None)
    return min(limit, int(own)) if isinstance(own, int) and own > 0 else limit


def export_full_depth(model: ElasticBertForSequenceClassification, path, opset: int = DEFAULT_OPSET,
                      quantize: str | None = None) -> Path:
    """One ONNX graph of the whole model read at its top exit: the no-exit baseline a user would deploy."""
    path = Path(path)
    ids, mask, types = _sample_inputs(model.config)
    target = path.with_suffix(".fp32.onnx") if quantize else path
    _export(FullDepthPiece(model), (ids, mask, types), ["input_ids", "attention_mask", "token_type_ids"], ["logits"],
            target, opset)
    if quantize:
        quantize_onnx_int8(target, path)
        target.unlink()
    return path
