"""HashEE exit tables: token id -> exit layer (docs/hashee.md, "The exit table").

Every builder returns a :class:`HashTable` (an int64 tensor of length V plus its :class:`HashEEConfig`). Rules shared by
all hashes: special ids exit at L (they pass every layer, so [CLS] feeds the head); ids without statistics exit at L;
bucket ``b`` exits at ``1 + b * (L // B)``; exactly B buckets. ``HashEEConfig`` can depart from the paper in three
ways, all off by default: an exit floor (``min_exit_layer``), the special ids' layer (``special_exit_layer``) and, for
the ranked hashes, the first ``num_shallow_types`` ranked types after layer 1 (docs/hashee.md, "Exit floor and special
tokens").

- ``random-cons``: a seeded uniform bucket per vocabulary id;
- ``random-incons`` (ablation): a fresh uniform bucket for every occurrence, at every forward (table value 0);
- ``frequency`` (default): token counts over train + dev, most frequent types in bucket 0;
- ``mi``: mutual information between a token and the class label over train, highest MI in bucket 0, any number of
  classes;
- ``cluster``: seeded k-means (k-means++ init) over the input word embeddings, clusters ordered by the sum (or mean)
  of their members' L2 norms, ascending.

``frequency`` and ``mi`` rank the V_seen ids that have statistics (ties broken by ascending id), give the first
``s = V_seen // B`` to bucket 0, the next ``s`` to bucket 1, ..., and the remainder to the last bucket.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .config import RANDOM_EXIT, HashEEConfig
from .kmeans import kmeans

__all__ = [
    "HashTable",
    "build_hash_table",
    "random_cons_table",
    "random_incons_table",
    "frequency_table",
    "mi_table",
    "cluster_table",
    "iter_token_sequences",
    "token_counts",
    "token_label_counts",
    "mutual_information",
    "rank_ids",
    "exits_from_ranking",
    "kmeans",
    "lookup_exits",
    "tokenize_texts",
]

TABLE_FILE = "hashee_table.safetensors"
_CONFIG_METADATA_KEY = "hashee_config"
_CHUNK = 1 << 20  # ids per bincount chunk


# --------------------------------------------------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class HashTable:
    """An exit table: ``exits[token_id]`` = number of layers that update the token (``0`` = drawn per occurrence)."""

    config: HashEEConfig
    exits: torch.Tensor

    def __post_init__(self):
        self.exits = torch.as_tensor(self.exits).to(torch.long).detach().cpu()
        validate_exits(self.exits, self.config)

    def lookup(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Exit layer of every token of ``input_ids`` (same shape)."""
        return lookup_exits(self.exits.to(input_ids.device), input_ids, self.config)

    def layer_type_counts(self) -> dict[int, int]:
        """How many vocabulary ids exit at each layer (0 = drawn at random per occurrence)."""
        values, counts = torch.unique(self.exits, return_counts=True)
        return {int(v): int(c) for v, c in zip(values, counts)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the table as safetensors (config JSON in the metadata); a directory gets ``hashee_table.safetensors``.
        """
        from safetensors.torch import save_file

        path = Path(path)
        if path.is_dir():
            path = path / TABLE_FILE
        save_file(
            {"exits": self.exits.contiguous()}, str(path), metadata={_CONFIG_METADATA_KEY: self.config.to_json_string()}
        )
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> HashTable:
        from safetensors import safe_open

        path = Path(path)
        if path.is_dir():
            path = path / TABLE_FILE
        if not path.exists():
            raise FileNotFoundError(f"No HashEE table at {path}")
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if _CONFIG_METADATA_KEY not in metadata:
                raise ValueError(f"{path} is not a HashEE table file (no {_CONFIG_METADATA_KEY!r} metadata)")
            exits = handle.get_tensor("exits")
        return cls(HashEEConfig.from_json_string(metadata[_CONFIG_METADATA_KEY]), exits)


def validate_exits(exits: torch.Tensor, config: HashEEConfig) -> None:
    """Raise ``ValueError`` if ``exits`` cannot be the table of ``config``."""
    if exits.dim() != 1 or exits.numel() != config.vocab_size:
        raise ValueError(
            f"The exit table must have shape ({config.vocab_size},) (vocab_size), got {tuple(exits.shape)}"
        )
    allowed = config.allowed_exits
    if config.hash_function == "random-incons":
        allowed.add(RANDOM_EXIT)
    present = set(torch.unique(exits).tolist())
    if not present <= allowed:
        raise ValueError(
            f"The exit table holds values {sorted(present - allowed)} that are not exit layers of this config "
            f"(allowed: {sorted(allowed)})"
        )
    if config.special_ids:
        special = exits[torch.tensor(config.special_ids)]
        if bool((special != config.special_exit).any()):
            raise ValueError(f"Special ids must exit at layer {config.special_exit} (the config's special exit)")


def lookup_exits(table: torch.Tensor, input_ids: torch.Tensor, config: HashEEConfig) -> torch.Tensor:
    """Per-token exit layers of ``input_ids``; ``random-incons`` entries get a fresh bucket for every occurrence."""
    if input_ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8, torch.int8):
        raise ValueError(f"input_ids must be an integer tensor, got dtype {input_ids.dtype}")
    if input_ids.numel():
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= table.numel():
            raise ValueError(
                f"input_ids hold id {low if low < 0 else high}, outside the HashEE table (vocab_size={table.numel()})"
            )
    exits = table[input_ids.long()]
    if config.hash_function == "random-incons":
        draw = config.bucket_exits(torch.randint(0, config.num_buckets, exits.shape, device=exits.device))
        exits = torch.where(exits == RANDOM_EXIT, draw, exits)
    return exits


# --------------------------------------------------------------------------------------------------------------------
# Reading token ids
# --------------------------------------------------------------------------------------------------------------------


def _is_dataset(source: Any) -> bool:
    return hasattr(source, "column_names") and hasattr(source, "iter")


def iter_token_sequences(source: Any, column: str = "input_ids") -> Iterable[Sequence[int]]:
    """Yield one sequence of token ids per example.

    ``source`` may be a ``datasets.Dataset`` (column ``column``), a mapping such as a ``BatchEncoding`` (its ``column``
    entry), a 1-D / 2-D tensor or array, or any iterable of sequences or of mappings holding ``column``.
    """
    if _is_dataset(source):
        if column not in source.column_names:
            raise ValueError(
                f"The dataset has no {column!r} column (columns: {source.column_names}); tokenize it first, "
                "e.g. dataset.map(lambda b: tokenizer(b['sentence'], truncation=True), batched=True)"
            )
        for batch in source.iter(batch_size=1024):
            yield from batch[column]
        return
    if isinstance(source, Mapping):
        if column not in source:
            raise ValueError(f"The mapping has no {column!r} entry (keys: {sorted(source)})")
        yield from iter_token_sequences(source[column], column)
        return
    if isinstance(source, (torch.Tensor, np.ndarray)):
        if source.ndim == 1:
            yield source
        elif source.ndim == 2:
            yield from source
        else:
            raise ValueError(f"A tensor of token ids must be 1-D or 2-D, got shape {tuple(source.shape)}")
        return
    if isinstance(source, (str, bytes)):
        raise ValueError("Token id sources must hold integer ids, not text: tokenize the texts first")
    for item in source:
        yield item[column] if isinstance(item, Mapping) else item


def _as_id_array(sequence: Any, vocab_size: int) -> np.ndarray:
    if isinstance(sequence, torch.Tensor):
        sequence = sequence.detach().cpu().numpy()
    ids = np.asarray(sequence)
    if ids.size == 0:
        return ids.astype(np.int64).reshape(-1)
    if ids.dtype.kind not in "iu":
        raise ValueError(f"Token ids must be integers, got {ids.dtype} values such as {ids.reshape(-1)[:3].tolist()}")
    ids = ids.astype(np.int64).reshape(-1)
    if ids.min() < 0 or ids.max() >= vocab_size:
        bad = ids[(ids < 0) | (ids >= vocab_size)][0]
        raise ValueError(f"Token id {bad} is outside the vocabulary (vocab_size={vocab_size})")
    return ids


def token_counts(*sources: Any, vocab_size: int, column: str = "input_ids") -> np.ndarray:
    """Occurrences of every id (int64 array of length ``vocab_size``) over all ``sources`` (e.g. train and dev)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    pending: list[np.ndarray] = []
    size = 0
    for source in sources:
        for sequence in iter_token_sequences(source, column):
            ids = _as_id_array(sequence, vocab_size)
            pending.append(ids)
            size += ids.size
            if size >= _CHUNK:
                counts += np.bincount(np.concatenate(pending), minlength=vocab_size)
                pending, size = [], 0
    if pending:
        counts += np.bincount(np.concatenate(pending), minlength=vocab_size)
    return counts


def _label_of(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        value = value.item()
    if isinstance(value, (bool, np.bool_)):
        return int(value)
    if isinstance(value, (int, np.integer)):
        label = int(value)
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        label = int(value)
    else:
        raise ValueError(
            f"The MI hash needs class labels, got {value!r}: regression targets (e.g. STS-B) have no mutual "
            "information hash; use frequency, random-cons or cluster"
        )
    if label < 0:
        raise ValueError(f"Class labels must be >= 0, got {label} (unlabelled test rows cannot build an MI table)")
    return label


def _labels_from(source: Any, labels: Any, label_column: str) -> Iterable[Any]:
    if labels is not None:
        return labels
    if _is_dataset(source):
        if label_column not in source.column_names:
            raise ValueError(f"The dataset has no {label_column!r} column (columns: {source.column_names})")
        feature = source.features.get(label_column)
        dtype = getattr(feature, "dtype", "")
        if type(feature).__name__ == "Value" and str(dtype).startswith("float"):
            raise ValueError(
                f"Column {label_column!r} holds {dtype} regression targets: the MI hash needs class labels "
                "(STS-B is not supported; use frequency, random-cons or cluster)"
            )
        return source[label_column]
    if isinstance(source, Mapping) and label_column in source:
        return source[label_column]
    raise ValueError(f"The MI hash needs labels: pass labels=... or a source with a {label_column!r} column")


def token_label_counts(
    source: Any,
    labels: Iterable[Any] | None = None,
    *,
    vocab_size: int,
    column: str = "input_ids",
    label_column: str = "label",
) -> tuple[np.ndarray, np.ndarray]:
    """``count(x, y)`` (V, C) over every token occurrence and the number of examples per class (C,)."""
    sequences = list(iter_token_sequences(source, column))
    label_list = [_label_of(v) for v in _labels_from(source, labels, label_column)]
    if len(label_list) != len(sequences):
        raise ValueError(f"Got {len(sequences)} token sequences but {len(label_list)} labels")
    if not sequences:
        raise ValueError("The MI hash needs at least one labelled training example")
    num_classes = max(label_list) + 1
    flat = [_as_id_array(ids, vocab_size) * num_classes + label for ids, label in zip(sequences, label_list)]
    joint = np.bincount(np.concatenate(flat), minlength=vocab_size * num_classes).reshape(vocab_size, num_classes)
    per_class = np.bincount(np.asarray(label_list, dtype=np.int64), minlength=num_classes)
    return joint, per_class


def tokenize_texts(tokenizer, texts: Sequence[str], pairs: Sequence[str] | None = None, max_length: int | None = None):
    """Token ids exactly as the model sees them (same tokenizer, truncation, both texts of a pair), no padding."""
    encoded = tokenizer(
        list(texts),
        list(pairs) if pairs is not None else None,
        truncation=max_length is not None,
        max_length=max_length,
    )
    return encoded["input_ids"]


# --------------------------------------------------------------------------------------------------------------------
# Pure maths: statistics -> ranking -> exits
# --------------------------------------------------------------------------------------------------------------------


def mutual_information(joint_counts: np.ndarray, class_examples: np.ndarray) -> np.ndarray:
    """MI(x) = sum_y p(x,y) ln(p(x,y) / (p(x) p(y)) + 1e-6) per id (0 where the id never occurs).

    ``p(x, y) = count(x, y) / N_tok``, ``p(x) = count(x) / N_tok`` over token occurrences, ``p(y)`` = share of training
    examples with label y. Terms with ``p(x, y) = 0`` contribute 0.
    """
    joint = joint_counts.astype(np.float64)
    total = joint.sum()
    if total <= 0:
        raise ValueError("The MI hash needs at least one non-special training token")
    p_xy = joint / total
    p_x = p_xy.sum(axis=1, keepdims=True)
    p_y = (class_examples / class_examples.sum()).astype(np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = p_xy * np.log(p_xy / (p_x * p_y) + 1e-6)
    return np.where(p_xy > 0, terms, 0.0).sum(axis=1)


def rank_ids(scores: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Ids with ``seen`` True sorted by ``scores`` descending, ties by ascending id."""
    ids = np.flatnonzero(seen)
    order = np.lexsort((ids, -scores[ids]))
    return ids[order]


def exits_from_ranking(ranked_ids: np.ndarray, config: HashEEConfig) -> torch.Tensor:
    """Exit table from a ranking (easiest first): equal numbers of types per bucket, remainder to the last bucket.

    The first ``config.num_shallow_types`` ranked ids exit at layer 1 (below any floor); ids not in the ranking exit at
    L; special ids at ``config.special_exit`` (L by default).
    """
    num_seen = len(ranked_ids)
    size = num_seen // config.num_buckets
    positions = np.arange(num_seen)
    last = config.num_buckets - 1
    buckets = np.minimum(positions // size, last) if size else np.full(num_seen, last)
    exits = np.full(config.vocab_size, config.num_layers, dtype=np.int64)
    exits[ranked_ids] = config.bucket_exits(buckets)
    exits[ranked_ids[: config.num_shallow_types]] = 1
    exits[config.special_ids] = config.special_exit
    return torch.from_numpy(exits)


def _seen_non_special(counts: np.ndarray, config: HashEEConfig) -> np.ndarray:
    seen = counts > 0
    seen[config.special_ids] = False
    return seen


def _fingerprint(*arrays: np.ndarray) -> str:
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(json.dumps([str(array.dtype), list(array.shape)]).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def _with(config: HashEEConfig, hash_function: str, fingerprint: str | None) -> HashEEConfig:
    return dataclasses.replace(config, hash_function=hash_function, fingerprint=fingerprint)


# --------------------------------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------------------------------


def _random_buckets(config: HashEEConfig) -> torch.Tensor:
    generator = torch.Generator().manual_seed(config.seed)
    return torch.randint(0, config.num_buckets, (config.vocab_size,), generator=generator)


def random_cons_table(config: HashEEConfig) -> HashTable:
    """A seeded uniform bucket for every vocabulary id (drawn once); special ids exit at L."""
    exits = config.bucket_exits(_random_buckets(config))
    exits[config.special_ids] = config.special_exit
    return HashTable(_with(config, "random-cons", None), exits)


def random_incons_table(config: HashEEConfig) -> HashTable:
    """Ablation: every occurrence draws a fresh bucket at every forward (table value 0); special ids exit at L."""
    exits = torch.full((config.vocab_size,), RANDOM_EXIT, dtype=torch.long)
    exits[config.special_ids] = config.special_exit
    return HashTable(_with(config, "random-incons", None), exits)


def frequency_table(config: HashEEConfig, *sources: Any, column: str = "input_ids") -> HashTable:
    """Frequency hash over all ``sources`` (train and dev): most frequent non-special types exit first."""
    if not sources:
        raise ValueError("The frequency hash needs token ids (train and dev) to count")
    counts = token_counts(*sources, vocab_size=config.vocab_size, column=column)
    ranking = rank_ids(counts.astype(np.float64), _seen_non_special(counts, config))
    return HashTable(_with(config, "frequency", _fingerprint(counts)), exits_from_ranking(ranking, config))


def mi_table(
    config: HashEEConfig,
    source: Any,
    labels: Iterable[Any] | None = None,
    *,
    column: str = "input_ids",
    label_column: str = "label",
) -> HashTable:
    """Mutual-information hash over the **training** tokens and labels (any number of classes)."""
    joint, per_class = token_label_counts(
        source, labels, vocab_size=config.vocab_size, column=column, label_column=label_column
    )
    joint[config.special_ids] = 0
    mi = mutual_information(joint, per_class)
    ranking = rank_ids(mi, _seen_non_special(joint.sum(1), config))
    return HashTable(_with(config, "mi", _fingerprint(joint, per_class)), exits_from_ranking(ranking, config))


def cluster_table(
    config: HashEEConfig,
    embeddings: torch.Tensor,
    *,
    n_init: int = 40,
    max_iter: int = 300,
    tol: float = 1e-4,
) -> HashTable:
    """Clustered hash: k-means (k = B) over all V rows of the input embedding matrix; clusters ordered by the sum
    (``cluster_order="sum"``) or mean of their members' L2 norms, ascending."""
    if isinstance(embeddings, torch.nn.Embedding):
        embeddings = embeddings.weight
    embeddings = embeddings.detach().to("cpu", torch.float32)
    if embeddings.dim() != 2 or embeddings.shape[0] != config.vocab_size:
        raise ValueError(
            f"The embedding matrix must have shape ({config.vocab_size}, d) (vocab_size rows), "
            f"got {tuple(embeddings.shape)}"
        )
    labels, _, _ = kmeans(
        embeddings, config.num_buckets, n_init=n_init, max_iter=max_iter, tol=tol, seed=config.seed
    )
    norms = embeddings.double().norm(dim=1)
    stat = torch.zeros(config.num_buckets, dtype=torch.float64).index_add_(0, labels, norms)
    if config.cluster_order == "mean":
        stat = stat / torch.bincount(labels, minlength=config.num_buckets).clamp_min(1)
    order = torch.argsort(stat, stable=True)
    bucket_of_cluster = torch.empty_like(order)
    bucket_of_cluster[order] = torch.arange(config.num_buckets)
    exits = config.bucket_exits(bucket_of_cluster[labels])
    exits[config.special_ids] = config.special_exit
    return HashTable(_with(config, "cluster", _fingerprint(embeddings.numpy())), exits)


def build_hash_table(
    config: HashEEConfig,
    *sources: Any,
    labels: Iterable[Any] | None = None,
    embeddings: torch.Tensor | None = None,
    column: str = "input_ids",
    label_column: str = "label",
    **kmeans_kwargs: Any,
) -> HashTable:
    """Build the table named by ``config.hash_function``.

    ``frequency``: ``sources`` = train and dev token ids; ``mi``: one training source (+ ``labels`` or a label column);
    ``cluster``: ``embeddings`` (the backbone's input embedding matrix); random hashes need nothing.
    """
    name = config.hash_function
    if name == "random-cons":
        return random_cons_table(config)
    if name == "random-incons":
        return random_incons_table(config)
    if name == "frequency":
        return frequency_table(config, *sources, column=column)
    if name == "mi":
        if len(sources) != 1:
            raise ValueError(f"The MI hash reads exactly one training source, got {len(sources)}")
        return mi_table(config, sources[0], labels, column=column, label_column=label_column)
    if embeddings is None:
        raise ValueError("The cluster hash needs the input embedding matrix: pass embeddings=...")
    return cluster_table(config, embeddings, **kmeans_kwargs)
