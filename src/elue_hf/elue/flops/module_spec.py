"""The ``modules`` column and the declarative module spec that replaces ELUE's Python model file.

See docs/elue.md, "Submission format".

``modules`` lists what one instance activated: entries ``(shape),name`` separated by ``;``, shapes without the batch
axis, e.g. ``(15),emb; (15,768),layer_1; (768),exit_1``. A layer entry ``(m,n,d)`` means m active query tokens over n
key tokens (token-level exit, docs/hashee.md, "FLOPs"); m may be 0 (every token exited earlier: the layer still
projects the n keys and values). The spec maps each module name to a kind with its dimensions:

=============  ============================  ===================================================
kind           dimensions                    MACs for one entry of shape ...
=============  ============================  ===================================================
embedding      d                             (n) or (n,d): 2 n d (its LayerNorm)
layer          d, d_ff, heads [+ variants]   (n,d): layer_macs(n); (m,n,d): layer_macs(n, m)
exit           d, labels, pooler [, norm]    (d): d^2 (if pooler) + 2 d (if norm) + d x labels
linear         in, out                       (..., in): prod(...) x in x out
layer_norm     d                             (..., d): 2 x numel
conv1d         in, out, kernel [, groups]    (n,in): n x out x in / groups x kernel
=============  ============================  ===================================================

Optional layer variants (absent = BERT's layer; see :class:`.architectures.LayerShape`): ``glu`` (GLU feed-forward),
``window`` (local attention, |i - j| <= window), ``rel_positions`` / ``c2p`` / ``p2c`` / ``share_att_key``
(DeBERTa-v2 relative attention), ``norms`` (LayerNorms per layer, default 2). A variant layer takes (n,d) entries
only. Shared layers (ALBERT) are listed once per use. Per-instance FLOPs = 2 x sum of MACs (MFLOPs). Nothing
submitted is ever executed.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Iterable, Mapping, Sequence

import numpy as np

from .analytic import ModelDims, dims_from_config, exit_macs, layer_macs, needs_encoder_shape
from .architectures.shape import EncoderShape, LayerShape, layer_shape_macs

__all__ = [
    "MODULE_KINDS",
    "MAX_INSTANCE_MACS",
    "ModulesError",
    "validate_module_spec",
    "module_spec_from_config",
    "with_embedding_sizes",
    "parse_modules",
    "format_modules",
    "entry_macs",
    "modules_macs",
    "modules_macs_column",
    "encoder_modules",
    "spec_from_shape",
]

MODULE_KINDS: dict[str, tuple[str, ...]] = {
    "embedding": ("d",),
    "layer": ("d", "d_ff", "heads"),
    "exit": ("d", "labels", "pooler"),
    "linear": ("in", "out"),
    "layer_norm": ("d",),
    "conv1d": ("in", "out", "kernel"),
}
# optional fields per kind and their defaults (bool fields take true/false; int fields non-negative integers)
OPTIONAL_FIELDS: dict[str, dict[str, object]] = {
    "layer": {"glu": False, "window": None, "rel_positions": 0, "c2p": False, "p2c": False, "share_att_key": False,
              "norms": 2},
    "exit": {"pooler": True, "norm": False},
    "conv1d": {"groups": 1},
    # the embedding's table sizes: not needed for FLOPs, needed to count parameters (submission cross-checks)
    "embedding": {"vocab": None, "positions": None, "token_types": None},
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_ENTRY = re.compile(r"\(\s*([0-9][0-9\s,]*)\)\s*,\s*(" + _NAME.pattern + r")")
_MAX_DIM = 10**7  # any dimension beyond this is not a real model
_MAX_ENTRIES = 4096
MAX_INSTANCE_MACS = 10**15  # one instance: 2 PFLOPs; sums of a test set's worth stay far inside int64
_ENTRIES = object()  # key of the per-entry memo inside a modules_macs_column cache


class ModulesError(ValueError):
    """A malformed ``modules`` string or module spec (``row``: 0-based row of a column, when known)."""

    row: int | None = None


def validate_module_spec(spec: Mapping) -> dict[str, dict]:
    """Check a declarative spec (``{name: {"kind": ..., dims...}}``) and return a normalised copy."""
    if not isinstance(spec, Mapping) or not spec:
        raise ModulesError("module_spec must be a non-empty JSON object mapping module names to {kind, dims}")
    if len(spec) > _MAX_ENTRIES:
        raise ModulesError(f"module_spec has {len(spec)} modules; at most {_MAX_ENTRIES} are allowed")
    out: dict[str, dict] = {}
    for name, entry in spec.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ModulesError(f"module name {name!r} must match {_NAME.pattern}")
        if not isinstance(entry, Mapping):
            raise ModulesError(f"module {name!r}: expected an object like {{'kind': 'layer', 'd': 768, ...}}")
        kind = entry.get("kind")
        if not isinstance(kind, str) or kind not in MODULE_KINDS:
            raise ModulesError(f"module {name!r}: unknown kind {kind!r}; kinds are {', '.join(MODULE_KINDS)}")
        optional = OPTIONAL_FIELDS.get(kind, {})
        required = [dim for dim in MODULE_KINDS[kind] if dim not in optional]
        extra = set(entry) - set(required) - set(optional) - {"kind"}
        if extra:
            raise ModulesError(
                f"module {name!r} ({kind}): unknown fields {sorted(extra)}; expected {required + list(optional)}"
            )
        clean: dict = {"kind": kind}
        for dim in required:
            value = entry.get(dim)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_DIM:
                raise ModulesError(f"module {name!r} ({kind}): '{dim}' must be a positive integer, got {value!r}")
            clean[dim] = value
        for dim, default in optional.items():
            if dim not in entry and dim != "pooler":
                continue
            value = entry.get(dim, default)
            if isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ModulesError(f"module {name!r}: '{dim}' must be true or false, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_DIM:
                raise ModulesError(f"module {name!r} ({kind}): '{dim}' must be a non-negative integer, got {value!r}")
            clean[dim] = value
        if kind == "layer" and clean["d"] % clean["heads"]:
            raise ModulesError(f"module {name!r}: d={clean['d']} is not divisible by heads={clean['heads']}")
        if kind == "layer":
            try:
                _layer_shape(clean)
            except ValueError as err:
                raise ModulesError(f"module {name!r}: {err}") from None
        if kind == "conv1d" and clean["in"] % clean.get("groups", 1):
            raise ModulesError(f"module {name!r}: in={clean['in']} is not divisible by groups={clean['groups']}")
        out[name] = clean
    return out


_LAYER_VARIANTS = tuple(OPTIONAL_FIELDS["layer"])


def _layer_shape(module: Mapping) -> LayerShape:
    return LayerShape(module["d"], module["d_ff"], module["heads"],
                      **{k: module[k] for k in _LAYER_VARIANTS if k in module})


def _is_plain_layer(module: Mapping) -> bool:
    return all(module.get(k, default) == default for k, default in OPTIONAL_FIELDS["layer"].items())


def spec_from_shape(shape: EncoderShape, emb: str = "emb") -> dict[str, dict]:
    """Spec of any :class:`EncoderShape`: ``emb``, ``emb_proj``, ``rel_norm``, ``layer_1..L``, ``conv`` +
    ``conv_norm``, ``final_norm``, ``exit_<layer>``; only the fields that differ from BERT's are written."""
    spec: dict[str, dict] = {}
    if shape.embedding_norm:
        spec[emb] = {"kind": "embedding", "d": shape.embedding_norm}
    if shape.embedding_proj is not None:
        spec["emb_proj"] = {"kind": "linear", "in": shape.embedding_proj[0], "out": shape.embedding_proj[1]}
    if shape.shared_norm_rows:
        spec["rel_norm"] = {"kind": "layer_norm", "d": shape.layers[0].d}
    for i, layer in enumerate(shape.layers, start=1):
        entry = {"kind": "layer", "d": layer.d, "d_ff": layer.d_ff, "heads": layer.heads}
        entry.update({k: getattr(layer, k) for k, default in OPTIONAL_FIELDS["layer"].items()
                      if getattr(layer, k) != default})
        spec[f"layer_{i}"] = entry
    if shape.conv is not None:
        d = shape.layers[0].d
        spec["conv"] = {"kind": "conv1d", "in": d, "out": d, "kernel": shape.conv[0], "groups": shape.conv[1]}
        spec["conv_norm"] = {"kind": "layer_norm", "d": d}
    if shape.final_norm:
        spec["final_norm"] = {"kind": "layer_norm", "d": shape.hidden}
    head = shape.exit
    for i in shape.exit_layers:
        spec[f"exit_{i}"] = {"kind": "exit", "d": head.d, "labels": head.labels, "pooler": head.pooler}
        if head.norm:
            spec[f"exit_{i}"]["norm"] = True
    return spec


def module_spec_from_config(config, num_labels: int | None = None, emb: str = "emb") -> dict[str, dict]:
    """Spec for a supported classifier: BERT / RoBERTa / ElasticBERT (``emb``, ``layer_1..L``, ``exit_<layer>`` per
    exit) or any family of :mod:`.architectures` (:func:`spec_from_shape`)."""
    if isinstance(config, EncoderShape):
        return spec_from_shape(config, emb)
    if not isinstance(config, ModelDims) and needs_encoder_shape(config):
        from .architectures import encoder_shape

        return spec_from_shape(encoder_shape(config, num_labels), emb)
    dims = config if isinstance(config, ModelDims) else dims_from_config(config, num_labels)
    spec: dict[str, dict] = {emb: {"kind": "embedding", "d": dims.hidden}}
    for i in range(1, dims.num_layers + 1):
        spec[f"layer_{i}"] = {"kind": "layer", "d": dims.hidden, "d_ff": dims.intermediate, "heads": dims.heads}
    for i in dims.exit_layers:
        spec[f"exit_{i}"] = {"kind": "exit", "d": dims.hidden, "labels": dims.num_labels, "pooler": dims.pooler}
    return spec


def with_embedding_sizes(spec: dict, config, emb: str = "emb") -> dict:
    """``spec`` with the embedding's table sizes (vocab, positions, token types) from a transformers ``config`` when
    it has them, so the parameter count can be checked against the spec; unchanged otherwise."""
    sizes = {"vocab": "vocab_size", "positions": "max_position_embeddings", "token_types": "type_vocab_size"}
    if emb in spec and all(isinstance(getattr(config, attr, None), int) for attr in sizes.values()):
        spec[emb] = {**spec[emb], **{dim: getattr(config, attr) for dim, attr in sizes.items()}}
    return spec


def _parse_entry(part: str, position: int) -> tuple[str, tuple[int, ...]]:
    entry = part.strip()
    match = _ENTRY.fullmatch(entry)
    if match is None:
        shown = entry if len(entry) <= 60 else entry[:57] + "..."
        raise ModulesError(
            f"entry {position} {shown!r} is not '(comma-separated positive ints),name' "
            "(e.g. '(15,768),layer_1'; entries are separated by ';')"
        )
    raw = [s.strip() for s in match.group(1).split(",")]
    if any(not s.isdigit() for s in raw):
        raise ModulesError(f"entry {position} {entry!r}: the shape must be comma-separated positive integers")
    shape = tuple(int(s) for s in raw)
    if not _valid_shape(shape):
        raise ModulesError(f"entry {position} {entry!r}: every dimension must lie in [1, {_MAX_DIM}] (only a "
                           "layer's m in (m,n,d) may be 0)")
    return match.group(2), shape


def _valid_shape(shape: tuple[int, ...]) -> bool:
    """Every dimension in [1, _MAX_DIM], except the m of an (m,n,d) entry, which may be 0: a token-level layer none of
    whose tokens is still active (it projects the keys and values of its n tokens all the same)."""
    lowest = 0 if len(shape) == 3 else 1
    return bool(shape) and lowest <= shape[0] <= _MAX_DIM and all(1 <= v <= _MAX_DIM for v in shape[1:])


def _split_entries(text) -> list[str]:
    if not isinstance(text, str):
        raise ModulesError(f"modules must be a string, got {type(text).__name__}")
    parts = text.split(";")
    if len(parts) > _MAX_ENTRIES:
        raise ModulesError(f"{len(parts)} module entries; at most {_MAX_ENTRIES} are allowed")
    return parts


def parse_modules(text: str) -> list[tuple[str, tuple[int, ...]]]:
    """Parse one ``modules`` value into ``[(name, shape), ...]`` (raises :class:`ModulesError`)."""
    return [_parse_entry(part, i) for i, part in enumerate(_split_entries(text), start=1)]


def format_modules(entries: Iterable[tuple[str, Sequence[int]]]) -> str:
    """Inverse of :func:`parse_modules`:
    ``[("emb", (15,)), ("layer_1", (15, 768))]`` -> ``"(15),emb; (15,768),layer_1"``."""
    parts = []
    for name, shape in entries:
        shape = tuple(int(v) for v in np.atleast_1d(shape))
        if not _NAME.fullmatch(str(name)):
            raise ModulesError(f"module name {name!r} must match {_NAME.pattern}")
        if not _valid_shape(shape):
            raise ModulesError(f"module {name!r}: shape {shape} must be non-empty positive integers (an (m,n,d) "
                               "layer may have m = 0)")
        parts.append(f"({','.join(map(str, shape))}),{name}")
    return "; ".join(parts)


def entry_macs(name: str, shape: tuple[int, ...], spec: Mapping[str, dict]) -> int:
    """MACs of one ``(shape),name`` entry under a validated spec."""
    module = spec.get(name)
    if module is None:
        raise ModulesError(f"module {name!r} is not in the module spec (known: {', '.join(list(spec)[:12])}...)")
    kind = module["kind"]

    def bad(expected: str):
        return ModulesError(f"module {name!r} ({kind}) got shape {shape}; expected {expected}")

    if kind != "layer" and 0 in shape:
        raise bad("positive dimensions (only a layer's m in (m,n,d) may be 0)")

    if kind == "embedding":
        d = module["d"]
        if len(shape) == 1 or (len(shape) == 2 and shape[1] == d):
            return 2 * shape[0] * d
        raise bad(f"(n) or (n,{d})")
    if kind == "layer":
        d = module["d"]
        if shape[-1] != d or len(shape) not in (2, 3):
            raise bad(f"(n,{d}) or (m,n,{d})")
        n, m = (shape[0], shape[0]) if len(shape) == 2 else (shape[1], shape[0])
        if m > n:
            raise bad(f"(m,n,{d}) with m <= n (m active queries among n tokens)")
        if _is_plain_layer(module):
            return int(layer_macs(n, d, module["d_ff"], module["heads"], m))
        if m != n:
            raise bad(f"(n,{d}): a layer with variants has no token-level (m,n,d) rule")
        return int(layer_shape_macs(n, _layer_shape(module)))
    if kind == "exit":
        if shape != (module["d"],):
            raise bad(f"({module['d']})")
        head_norm = 2 * module["d"] if module.get("norm") else 0
        return exit_macs(module["d"], module["labels"], module["pooler"]) + head_norm
    if kind == "conv1d":
        if len(shape) != 2 or shape[1] != module["in"]:
            raise bad(f"(n,{module['in']})")
        return shape[0] * module["out"] * (module["in"] // module.get("groups", 1)) * module["kernel"]
    if kind == "linear":
        if shape[-1] != module["in"]:
            raise bad(f"(..., {module['in']})")
        return math.prod(shape[:-1]) * module["in"] * module["out"]
    # layer_norm
    if shape[-1] != module["d"]:
        raise bad(f"(..., {module['d']})")
    return 2 * math.prod(shape)


def modules_macs(text: str, spec: Mapping[str, dict], entry_cache: dict | None = None) -> int:
    """Total MACs of one instance's ``modules`` string (``entry_cache`` memoises entries across calls)."""
    total = 0
    for position, part in enumerate(_split_entries(text), start=1):
        value = None if entry_cache is None else entry_cache.get(part)
        if value is None:
            value = entry_macs(*_parse_entry(part, position), spec)
            if entry_cache is not None:
                entry_cache[part] = value
        total += value
        if total > MAX_INSTANCE_MACS:
            raise ModulesError(f"the instance's MACs pass {MAX_INSTANCE_MACS:.0e} (not a real model)")
    return total


def modules_macs_column(
    values: Sequence[str | bytes], spec: Mapping[str, dict], cache: dict | None = None
) -> np.ndarray:
    """MACs of many ``modules`` values (str or UTF-8 bytes); identical strings and entries are parsed once.

    ``cache`` (a dict, reusable across columns that share ``spec``) keeps parsed strings and entries.
    A :class:`ModulesError` carries the 0-based ``row`` of the first bad value.
    """
    cache = {} if cache is None else cache
    entries = cache.setdefault(_ENTRIES, {})
    for raw in dict.fromkeys(values):  # each distinct value once, in order of first appearance
        if raw in cache:
            continue
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            cache[raw] = modules_macs(text, spec, entries)
        except (ModulesError, UnicodeDecodeError) as err:
            error = err if isinstance(err, ModulesError) else ModulesError("modules is not UTF-8")
            error.row = list(values).index(raw)
            raise error from None
    return np.fromiter(map(cache.__getitem__, values), dtype=np.int64, count=len(values))


def encoder_modules(
    dims: ModelDims,
    length: int,
    exit_layer: int | None = None,
    mode: str = "static",
    active_tokens: Sequence[int] | None = None,
    emb: str = "emb",
) -> str:
    """The ``modules`` string of one instance of a BERT-family classifier (names as in :func:`module_spec_from_config`).

    static: ``emb``, ``layer_1..k``, ``exit_k``; dynamic: every exit met on the way is listed after its layer;
    ``active_tokens[l]`` < length writes the layer as ``(m,n,d)``.
    """
    k = dims.num_layers if exit_layer is None else int(exit_layer)
    if isinstance(dims, EncoderShape):
        if active_tokens is not None:
            raise ValueError(f"token-level exit (active_tokens) is not supported for {dims.family}")
        return _shape_modules_cached(dims, int(length), k, mode, emb)
    if active_tokens is None:
        return _encoder_modules_cached(dims, int(length), k, mode, emb)
    return _encoder_modules(dims, int(length), k, mode, tuple(int(m) for m in active_tokens), emb)


def _encoder_modules(dims: ModelDims, n: int, k: int, mode: str, active_tokens: tuple | None, emb: str) -> str:
    if not 1 <= k <= dims.num_layers:
        raise ValueError(f"exit_layer must lie in [1, {dims.num_layers}], got {k}")
    if mode not in ("static", "dynamic"):
        raise ValueError(f"mode must be 'static' or 'dynamic', got {mode!r}")
    if active_tokens is not None and len(active_tokens) < k:
        raise ValueError(f"active_tokens lists {len(active_tokens)} layers but the instance runs {k}")
    d = dims.hidden
    exits = set(dims.exit_layers)
    entries: list[tuple[str, tuple[int, ...]]] = [(emb, (n,))]
    for layer in range(1, k + 1):
        m = n if active_tokens is None else int(active_tokens[layer - 1])
        entries.append((f"layer_{layer}", (n, d) if m == n else (m, n, d)))
        if mode == "dynamic" and layer in exits:
            entries.append((f"exit_{layer}", (d,)))
    if mode == "static":
        entries.append((f"exit_{k}" if k in exits else f"exit_{dims.exit_layers[-1]}", (d,)))
    return format_modules(entries)


@functools.lru_cache(maxsize=65536)
def _encoder_modules_cached(dims: ModelDims, n: int, k: int, mode: str, emb: str) -> str:
    return _encoder_modules(dims, n, k, mode, None, emb)


def _shape_modules(shape: EncoderShape, n: int, k: int, mode: str, emb: str) -> str:
    if not 1 <= k <= shape.num_layers:
        raise ValueError(f"exit_layer must lie in [1, {shape.num_layers}], got {k}")
    if mode not in ("static", "dynamic"):
        raise ValueError(f"mode must be 'static' or 'dynamic', got {mode!r}")
    entries: list[tuple[str, tuple[int, ...]]] = []
    if shape.embedding_norm:
        entries.append((emb, (n,)))
    if shape.embedding_proj is not None:
        entries.append(("emb_proj", (n, shape.embedding_proj[0])))
    if shape.shared_norm_rows:
        entries.append(("rel_norm", (shape.shared_norm_rows, shape.layers[0].d)))
    exits = set(shape.exit_layers)
    for layer in range(1, k + 1):
        entries.append((f"layer_{layer}", (n, shape.layers[layer - 1].d)))
        if layer == 1 and shape.conv is not None:
            entries += [("conv", (n, shape.layers[0].d)), ("conv_norm", (n, shape.layers[0].d))]
        if mode == "dynamic" and layer in exits:
            entries += _shape_exit(shape, n, layer)
    if mode == "static":
        entries += _shape_exit(shape, n, k if k in exits else shape.exit_layers[-1])
    return format_modules(entries)


def _shape_exit(shape: EncoderShape, n: int, layer: int) -> list[tuple[str, tuple[int, ...]]]:
    """One exit evaluated: the final LayerNorm over the n tokens first where the family has one (ModernBERT)."""
    norm = [("final_norm", (n, shape.hidden))] if shape.final_norm else []
    return [*norm, (f"exit_{layer}", (shape.exit.d,))]


@functools.lru_cache(maxsize=65536)
def _shape_modules_cached(shape: EncoderShape, n: int, k: int, mode: str, emb: str) -> str:
    return _shape_modules(shape, n, k, mode, emb)
