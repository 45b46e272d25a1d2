"""An ElasticBERT bundle run by ONNX Runtime, exiting early, batched (needs onnxruntime, tokenizers, numpy only).

>>> model = OnnxElasticBertForSequenceClassification.from_pretrained("bundle/")
>>> model.predict(["a gripping film"], exit_criterion="entropy", entropy_threshold=0.3)
[{'label': 'positive', 'score': 0.93, 'exit_layer': 4, 'mflops': 1234.5}]

The exit loop is the PyTorch model's (``ElasticBertForSequenceClassification`` with an ``exit_criterion``): after
each exit the rows that are done leave the batch, the later layers run on fewer rows, and trailing positions that
are padding for every remaining row are trimmed. It is hand-written because an ONNX graph has a fixed path: no
exporter can express "continue only with the rows that did not exit" (docs/deploy.md).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .bundle import load_bundle_config
from .policy import NumpyExitPolicy, resolve_exit_options, trim_padding

__all__ = ["OnnxElasticBertForSequenceClassification", "OnnxMultiExitForSequenceClassification", "OnnxExitOutput",
           "session_options"]


@dataclass
class OnnxExitOutput:
    """``logits`` (batch, num_labels) of the exit each row used; ``exit_layer`` (batch,) 1-based."""

    logits: np.ndarray
    exit_layer: np.ndarray


def session_options(threads: int | None = None, spinning: bool = False, shared_arena: bool = False):
    """The ONNX Runtime ``SessionOptions`` of every graph of a bundle (and of the benchmark's one-graph baseline).

    ``spinning=False`` sets ``session.intra_op.allow_spinning=0`` (and inter-op): ONNX Runtime's worker threads
    otherwise busy-wait after each run, and a bundle has one session (one thread pool) per graph, so the pool of the
    graph that just ran spins on the cores the next graph needs. Measured on a 2-core machine at batch 1, seq 32, a
    6-layer/384 bundle: one layer 26 ms with spinning, 1.6 ms without (docs/deploy.md, "Speed").

    ``shared_arena=True`` sets ``session.use_env_allocators=1`` after registering one CPU arena allocator with ONNX
    Runtime's environment (once per process, :func:`shared_cpu_arena`): the sessions of a bundle then take their
    buffers from one arena instead of one arena each, so the layers reuse the same (cache-warm) memory as they do
    inside a one-graph model (docs/deploy.md, "Batch 1")."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if shared_arena and shared_cpu_arena():
        options.add_session_config_entry("session.use_env_allocators", "1")
    return options


_SHARED_ARENA: list[bool] = []  # [registered?] once per process


def shared_cpu_arena() -> bool:
    """Register one CPU arena allocator with ONNX Runtime's (process-wide) environment, once; True when one is
    registered (by this call, an earlier one, or the application). Only sessions that opt in with
    ``session.use_env_allocators=1`` use it; every other session keeps its own arena."""
    import onnxruntime as ort

    if not _SHARED_ARENA:
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        try:
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, -1, -1, -1))
            _SHARED_ARENA.append(True)
        except Exception:  # noqa: BLE001 - ONNX Runtime raises its own error types; then each session keeps its own
            _SHARED_ARENA.append(False)
    return _SHARED_ARENA[0]


class OnnxElasticBertForSequenceClassification:
    """Multi-exit ElasticBERT classifier on ONNX Runtime; :meth:`forward` on ids, :meth:`predict` / ``__call__`` on
    texts. Exit options per call: ``exit_criterion`` (None/"none", "entropy", "patience", "static"),
    ``entropy_threshold``, ``patience``, ``regression_threshold``, ``exit_layer`` (static exit at that layer)."""

    def __init__(self, directory, config: dict, sessions, tokenizer=None):
        self.directory = Path(directory)
        self.config = config
        self.embeddings, self.layers = sessions
        self.tokenizer = tokenizer
        self.exit_layers = list(config["exit_layers"])
        self.num_layers = int(config["num_layers"])
        self._embedding_inputs = [i.name for i in self.embeddings.get_inputs()]
        self._num_labels = int(config["num_labels"])
        self._layer_outputs = [[o.name for o in layer.get_outputs()] for layer in self.layers]
        self._buffers = threading.local()  # per thread: two flat float32 buffers the layers write into in turn

    @classmethod
    def from_pretrained(cls, directory, threads: int | None = None, providers=None, spinning: bool = False,
                        shared_arena: bool = True):
        """Load a bundle written by ``elue-hf export`` (``threads``: ONNX Runtime intra-op threads; ``providers``:
        ONNX Runtime execution providers, default CPU; ``spinning``: let idle worker threads busy-wait;
        ``shared_arena``: the bundle's sessions share one CPU memory arena; see :func:`session_options`)."""
        import onnxruntime as ort

        directory = Path(directory)
        config = load_bundle_config(directory)
        options = session_options(threads, spinning, shared_arena)
        providers = providers or ["CPUExecutionProvider"]

        def session(name):
            return ort.InferenceSession(str(directory / name), options, providers=providers)

        sessions = (session(config["embeddings"]), [session(name) for name in config["layers"]])
        return cls(directory, config, sessions, _load_tokenizer(directory, config))

    # ------------------------------------------------------------------------------------------------ ids in
    def forward(self, input_ids, attention_mask=None, token_type_ids=None, **exit_options) -> OnnxExitOutput:
        input_ids = np.asarray(input_ids, dtype=np.int64)
        if input_ids.ndim != 2:
            raise ValueError(f"input_ids must be (batch, seq), got shape {input_ids.shape}")
        mask = np.ones_like(input_ids) if attention_mask is None else np.asarray(attention_mask, dtype=np.int64)
        types = np.zeros_like(input_ids) if token_type_ids is None else np.asarray(token_type_ids, dtype=np.int64)
        if mask.shape != input_ids.shape or types.shape != input_ids.shape:
            raise ValueError(f"attention_mask {mask.shape} and token_type_ids {types.shape} must match input_ids "
                             f"{input_ids.shape}")
        criterion, entropy_threshold, patience, regression_threshold, static_layer = resolve_exit_options(
            self.config, **exit_options)
        num_labels = self._num_labels
        policy = NumpyExitPolicy(criterion, entropy_threshold, patience, regression_threshold, num_labels == 1)
        last = static_layer if criterion == "static" else self.num_layers
        inputs = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": types}
        hidden = self.embeddings.run(None, {name: inputs[name] for name in self._embedding_inputs})[0]
        batch = input_ids.shape[0]
        rows = np.arange(batch)
        logits_out = np.zeros((batch, num_labels), dtype=np.float32)
        exit_layer = np.full(batch, last, dtype=np.int64)
        dynamic = criterion in ("entropy", "patience")
        trimmed = False  # trim_padding is a no-op again until rows leave (the mask only changes then)
        for i in range(last):
            outputs = self._run_layer(i, hidden, mask, hidden.size)
            hidden = outputs[0]
            if len(outputs) == 1 or (not dynamic and i + 1 != last):  # no exit after this layer, or none asked
                continue
            logits = outputs[1]
            done = policy.step(logits, last=i + 1 == last)
            if done.all():  # every remaining row exits here (batch 1: the row exits)
                logits_out[rows] = logits
                exit_layer[rows] = i + 1
                break
            if not done.any():  # no row exits here: nothing to gather; padding trimmed at most once
                if not trimmed:
                    hidden, mask = trim_padding(hidden, mask)
                    trimmed = True
                continue
            logits_out[rows[done]] = logits[done]
            exit_layer[rows[done]] = i + 1
            keep = ~done
            hidden, mask, rows = hidden[keep], mask[keep], rows[keep]
            policy.select(keep)
            hidden, mask = trim_padding(hidden, mask)
            trimmed = True
        return OnnxExitOutput(logits=logits_out, exit_layer=exit_layer)

    def _run_layer(self, i: int, hidden: np.ndarray, mask: np.ndarray, size: int) -> list[np.ndarray]:
        """Layer ``i`` with its hidden-state output written into a reused buffer (I/O binding): a fresh ``run`` output
        is a new array per layer, and its allocation and first touch cost more than a small layer at batch 1."""
        buffers = getattr(self._buffers, "arrays", None)
        if buffers is None or buffers[0].size < size:
            buffers = self._buffers.arrays = (np.empty(size, np.float32), np.empty(size, np.float32))
        hidden = np.ascontiguousarray(hidden)
        out = buffers[i % 2][:size].reshape(hidden.shape)  # layer i-1 wrote the other one: never its own input
        binding = self.layers[i].io_binding()
        binding.bind_cpu_input("hidden_states", hidden)
        binding.bind_cpu_input("attention_mask", np.ascontiguousarray(mask))
        names = self._layer_outputs[i]
        binding.bind_output(names[0], "cpu", 0, np.float32, list(out.shape), out.ctypes.data)
        outputs = [out]
        if len(names) > 1:
            logits = np.empty((hidden.shape[0], self._num_labels), np.float32)
            binding.bind_output(names[1], "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data)
            outputs.append(logits)
        self.layers[i].run_with_iobinding(binding)
        return outputs

    # ------------------------------------------------------------------------------------------------ texts in
    def predict(self, texts, text_pairs=None, batch_size: int = 32, **exit_options) -> list[dict]:
        """Label, score, exit layer and ELUE MFLOPs for each text (or pair), like the PyTorch pipeline's results."""
        if isinstance(texts, str):
            texts = [texts]
        if self.tokenizer is None:
            raise ValueError(f"bundle {self.directory} has no tokenizer.json; call forward(input_ids=...) instead or "
                             "re-export with a fast tokenizer")
        if text_pairs is not None and len(text_pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(text_pairs)} text_pairs")
        results = []
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            pairs = None if text_pairs is None else list(text_pairs[start : start + batch_size])
            ids, mask, types = self.encode(chunk, pairs)
            out = self.forward(ids, mask, types, **exit_options)
            results.extend(self._results(out, mask.sum(-1), exit_options))
        return results

    __call__ = predict

    def encode(self, texts, text_pairs=None):
        """Tokenize to padded (input_ids, attention_mask, token_type_ids) int64 arrays."""
        inputs = texts if text_pairs is None else list(zip(texts, text_pairs))
        encodings = self.tokenizer.encode_batch(inputs)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        types = np.array([e.type_ids for e in encodings], dtype=np.int64)
        return ids, mask, types

    def _results(self, out: OnnxExitOutput, lengths, exit_options) -> list[dict]:
        from ..elue.flops.analytic import model_flops

        criterion = resolve_exit_options(self.config, **exit_options)[0]
        mode = "dynamic" if criterion in ("entropy", "patience") else "static"
        mflops = model_flops(self.flops_config(), lengths, out.exit_layer, mode)
        labels = self.config["id2label"]
        results = []
        for logits, layer, flops in zip(out.logits, out.exit_layer, np.atleast_1d(mflops)):
            if len(labels) == 1:
                label, score = labels[0], float(logits[0])
            else:
                p = np.exp(logits - logits.max())
                p /= p.sum()
                label, score = labels[int(p.argmax())], float(p.max())
            results.append({"label": label, "score": score, "exit_layer": int(layer), "mflops": float(flops)})
        return results

    def flops_config(self):
        """What ELUE's FLOPs rule reads (an exported model counts as the same exits: ELUE counts ops): the
        ElasticBERT dimensions, or the family's ``EncoderShape`` written by the exporter."""
        from types import SimpleNamespace

        if "flops_shape" in self.config:
            return _encoder_shape(self.config["flops_shape"])
        dims = self.config["dims"]
        return SimpleNamespace(model_type="elasticbert", num_hidden_layers=self.num_layers,
                               num_output_layers=len(self.exit_layers), num_labels=int(self.config["num_labels"]),
                               max_output_layers=self.num_layers, **dims)


#: the same runtime under a family-neutral name: a bundle of any multi-exit family (ElasticBERT, RoBERTa, ...)
OnnxMultiExitForSequenceClassification = OnnxElasticBertForSequenceClassification


def _load_tokenizer(directory: Path, config: dict):
    path = directory / "tokenizer.json"
    if not path.is_file():
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.enable_truncation(int(config.get("max_length", 512)))
    pad = config.get("pad_token") or "[PAD]"
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad) or 0, pad_token=pad)
    return tokenizer


def _encoder_shape(fields: dict):
    """The ``EncoderShape`` a bundle's ``flops_shape`` describes (JSON lists back to the dataclasses' tuples)."""
    from ..elue.flops.architectures.shape import EncoderShape, ExitShape, LayerShape

    tuples = {key: tuple(fields[key]) if fields.get(key) is not None else None
              for key in ("exit_layers", "embedding_proj", "conv")}
    return EncoderShape(**{**fields, **tuples, "layers": tuple(LayerShape(**layer) for layer in fields["layers"]),
                           "exit": ExitShape(**fields["exit"])})
