"""The ``modules`` column and the declarative module spec that replaces ELUE's Python model file.

See docs/elue.md, "Submission format".

``modules`` lists what one instance activated: entries ``(shape),name`` separated by ``;``, shapes without the batch
axis, e.g. ``(15),emb; (15,768),layer_1; (768),exit_1``. A layer entry ``(m,n,d)`` means m active query tokens over n
key tokens (token-level exit, docs/hashee.md, "FLOPs"). The spec maps each module name to a kind with its dimensions:

=============  ====================  ===================================================
kind           dimensions            MACs for one entry of shape ...
=============  ====================  ===================================================
embedding      d                     (n) or (n,d): 2 n d (its LayerNorm)
layer          d, d_ff, heads        (n,d): layer_macs(n); (m,n,d): layer_macs(n, m)
exit           d, labels, pooler     (d): d^2 (if pooler) + d x labels
linear         in, out               (..., in): prod(...) x in x out
layer_norm     d                     (..., d): 2 x numel
=============  ====================  ===================================================

Per-instance FLOPs = 2 x sum of MACs (MFLOPs). Nothing submitted is ever executed.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Iterable, Mapping, Sequence

import numpy as np

from .analytic import ModelDims, dims_from_config, exit_macs, layer_macs

__all__ = [
    "MODULE_KINDS",
    "ModulesError",
    "validate_module_spec",
    "module_spec_from_config",
    "parse_modules",
    "format_modules",
    "entry_macs",
    "modules_macs",
    "modules_macs_column",
    "encoder_modules",
]

MODULE_KINDS: dict[str, tuple[str, ...]] = {
    "embedding": ("d",),
    "layer": ("d", "d_ff", "heads"),
    "exit": ("d", "labels", "pooler"),
    "linear": ("in", "out"),
    "layer_norm": ("d",),
}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")
_ENTRY = re.compile(r"\(\s*([0-9][0-9\s,]*)\)\s*,\s*(" + _NAME.pattern + r")")
_MAX_DIM = 10**7  # any dimension beyond this is not a real model
_MAX_ENTRIES = 4096
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
        if kind not in MODULE_KINDS:
            raise ModulesError(f"module {name!r}: unknown kind {kind!r}; kinds are {', '.join(MODULE_KINDS)}")
        dims = MODULE_KINDS[kind]
        extra = set(entry) - set(dims) - {"kind"}
        if extra:
            raise ModulesError(f"module {name!r} ({kind}): unknown fields {sorted(extra)}; expected {list(dims)}")
        clean: dict = {"kind": kind}
        for dim in dims:
            value = entry.get(dim, True if dim == "pooler" else None)
            if dim == "pooler":
                if not isinstance(value, bool):
                    raise ModulesError(f"module {name!r}: 'pooler' must be true or false, got {value!r}")
            elif isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= _MAX_DIM:
                raise ModulesError(f"module {name!r} ({kind}): '{dim}' must be a positive integer, got {value!r}")
            clean[dim] = value
        if kind == "layer" and clean["d"] % clean["heads"]:
            raise ModulesError(f"module {name!r}: d={clean['d']} is not divisible by heads={clean['heads']}")
        out[name] = clean
    return out


def module_spec_from_config(config, num_labels: int | None = None, emb: str = "emb") -> dict[str, dict]:
    """Spec for a BERT / RoBERTa / ElasticBERT classifier: ``emb``, ``layer_1..L``, ``exit_<layer>`` per exit."""
    dims = config if isinstance(config, ModelDims) else dims_from_config(config, num_labels)
    spec: dict[str, dict] = {emb: {"kind": "embedding", "d": dims.hidden}}
    for i in range(1, dims.num_layers + 1):
        spec[f"layer_{i}"] = {"kind": "layer", "d": dims.hidden, "d_ff": dims.intermediate, "heads": dims.heads}
    for i in dims.exit_layers:
        spec[f"exit_{i}"] = {"kind": "exit", "d": dims.hidden, "labels": dims.num_labels, "pooler": dims.pooler}
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
    if any(v <= 0 or v > _MAX_DIM for v in shape):
        raise ModulesError(f"entry {position} {entry!r}: every dimension must lie in [1, {_MAX_DIM}]")
    return match.group(2), shape


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
    """Inverse of :func:`parse_modules`: ``[("emb", (15,)), ("layer_1", (15, 768))]`` -> ``"(15),emb; (15,768),layer_1"``."""
    parts = []
    for name, shape in entries:
        shape = tuple(int(v) for v in np.atleast_1d(shape))
        if not _NAME.fullmatch(str(name)):
            raise ModulesError(f"module name {name!r} must match {_NAME.pattern}")
        if not shape or any(v <= 0 for v in shape):
            raise ModulesError(f"module {name!r}: shape {shape} must be non-empty positive integers")
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
        return int(layer_macs(n, d, module["d_ff"], module["heads"], m))
    if kind == "exit":
        if shape != (module["d"],):
            raise bad(f"({module['d']})")
        return exit_macs(module["d"], module["labels"], module["pooler"])
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
