"""``HashEEConfig``: what a HashEE exit table is and how it was built (docs/hashee.md, "The exit table").

The config travels inside the model's ``config.json`` as a ``hashee`` block; the table itself is a persistent buffer
saved with the weights (see :mod:`elue_hf.hashee.model`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HASH_FUNCTIONS", "RANKED_HASHES", "CLUSTER_ORDERS", "MODES", "RANDOM_EXIT", "HashEEConfig"]

HASH_FUNCTIONS = ("random-cons", "random-incons", "frequency", "mi", "cluster")
RANKED_HASHES = ("frequency", "mi")  # the hashes that rank token types (num_shallow_types applies to them)
CLUSTER_ORDERS = ("sum", "mean")
MODES = ("skip", "reference")

#: Table value meaning "draw a fresh bucket for every occurrence" (``random-incons`` only).
RANDOM_EXIT = 0


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"HashEEConfig.{name} must be a positive integer, got {value!r}")
    return value


@dataclass
class HashEEConfig:
    """Settings of a HashEE model (Sun et al., 2022).

    Args:
        num_layers: L, the number of backbone layers a token can pass (every token exits at a layer in 1..L).
        num_buckets: B <= L; bucket ``b`` (0 = "easiest" ids) exits at layer ``1 + b * (L // B)`` (raised to
            ``min_exit_layer``).
        vocab_size: V, the length of the exit table (one entry per token id).
        hash_function: one of ``random-cons``, ``random-incons`` (ablation), ``frequency`` (default), ``mi``,
            ``cluster``.
        special_ids: ids that exit at ``special_exit_layer`` whatever the hash (``tokenizer.all_special_ids``).
        seed: seed of the random hashes and of k-means.
        cluster_order: ``"sum"`` (original code) or ``"mean"`` (paper text) of the member norms, for ``cluster``.
        fingerprint: short digest of the statistics the table was built from (token counts, MI counts or the
            embedding matrix), so a result can be traced back to its table.
        mode: ``"skip"`` (compute only active tokens; fast) or ``"reference"`` (compute every token, keep active ones).
        min_exit_layer: every token passes at least this many layers (default 1: the paper's rule). A departure from
            the paper for small models, where a single layer leaves the most frequent tokens barely contextualised
            (docs/hashee.md, "Exit floor and special tokens").
        special_exit_layer: where special ids exit; ``None`` (default, the paper's rule) = L, which [CLS] pooling
            needs. With mean pooling no token is special to the head: any layer in 1..L.
        num_shallow_types: the first N types of the ranking (``frequency``: the N most frequent, i.e. punctuation and
            function words; ``mi``: the N highest-MI) exit after layer 1 whatever ``min_exit_layer``; 0 (default,
            the paper's rule) = none. With a floor, this buys back FLOPs on the cheapest tokens to spend on the rest
            (docs/hashee.md, "Exit floor and special tokens").
    """

    num_layers: int
    num_buckets: int
    vocab_size: int
    hash_function: str = "frequency"
    special_ids: list[int] = field(default_factory=list)
    seed: int = 0
    cluster_order: str = "sum"
    fingerprint: str | None = None
    mode: str = "skip"
    min_exit_layer: int = 1
    special_exit_layer: int | None = None
    num_shallow_types: int = 0

    def __post_init__(self):
        _positive_int("num_layers", self.num_layers)
        _positive_int("num_buckets", self.num_buckets)
        _positive_int("vocab_size", self.vocab_size)
        if self.num_buckets > self.num_layers:
            raise ValueError(
                f"HashEEConfig.num_buckets ({self.num_buckets}) must not exceed num_layers ({self.num_layers}): "
                "bucket b exits at layer 1 + b * (L // B)"
            )
        _positive_int("min_exit_layer", self.min_exit_layer)
        if self.min_exit_layer > self.num_layers:
            raise ValueError(f"HashEEConfig.min_exit_layer ({self.min_exit_layer}) must not exceed num_layers "
                             f"({self.num_layers})")
        if self.special_exit_layer is not None:
            _positive_int("special_exit_layer", self.special_exit_layer)
            if self.special_exit_layer > self.num_layers:
                raise ValueError(f"HashEEConfig.special_exit_layer ({self.special_exit_layer}) must lie in "
                                 f"1..num_layers (1..{self.num_layers})")
        if isinstance(self.num_shallow_types, bool) or not isinstance(self.num_shallow_types, int) \
                or self.num_shallow_types < 0:
            raise ValueError(f"HashEEConfig.num_shallow_types must be a non-negative integer, got "
                             f"{self.num_shallow_types!r}")
        if self.hash_function not in HASH_FUNCTIONS:
            raise ValueError(f"Unknown hash_function {self.hash_function!r}; expected one of {HASH_FUNCTIONS}")
        if self.num_shallow_types and self.hash_function not in RANKED_HASHES:
            raise ValueError(f"HashEEConfig.num_shallow_types needs a hash that ranks types {RANKED_HASHES}, "
                             f"not {self.hash_function!r}")
        if self.cluster_order not in CLUSTER_ORDERS:
            raise ValueError(f"Unknown cluster_order {self.cluster_order!r}; expected one of {CLUSTER_ORDERS}")
        if self.mode not in MODES:
            raise ValueError(f"Unknown HashEE mode {self.mode!r}; expected one of {MODES}")
        self.special_ids = sorted({int(i) for i in self.special_ids})
        bad = [i for i in self.special_ids if not 0 <= i < self.vocab_size]
        if bad:
            raise ValueError(f"special_ids {bad} are outside the vocabulary (vocab_size={self.vocab_size})")

    @property
    def layer_step(self) -> int:
        """``L // B``: how many layers separate two consecutive buckets."""
        return self.num_layers // self.num_buckets

    def bucket_exit_layer(self, bucket: int) -> int:
        """Exit layer (1-based) of bucket ``bucket`` in 0..B-1."""
        if not 0 <= bucket < self.num_buckets:
            raise ValueError(f"bucket {bucket} is out of range 0..{self.num_buckets - 1}")
        return max(self.min_exit_layer, 1 + bucket * self.layer_step)

    def bucket_exits(self, buckets):
        """Exit layers of an array or tensor of bucket indices (vectorised :meth:`bucket_exit_layer`)."""
        return (1 + buckets * self.layer_step).clip(min=self.min_exit_layer)

    @property
    def special_exit(self) -> int:
        """The layer special ids exit at: ``special_exit_layer``, or L by default."""
        return self.num_layers if self.special_exit_layer is None else self.special_exit_layer

    @property
    def exit_layers(self) -> list[int]:
        """Exit layer of every bucket, bucket 0 first."""
        return [self.bucket_exit_layer(b) for b in range(self.num_buckets)]

    @property
    def allowed_exits(self) -> set[int]:
        """Every value a table of this config may hold (bucket layers, L, the special exit, layer 1 for shallow
        types)."""
        return set(self.exit_layers) | {self.num_layers, self.special_exit} | ({1} if self.num_shallow_types else set())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HashEEConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown HashEEConfig fields {unknown}; known fields are {sorted(known)}")
        return cls(**data)

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json_string(cls, text: str) -> HashEEConfig:
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_model_config(cls, config) -> HashEEConfig:
        """Read the ``hashee`` block of a transformers config (raises if the model is not a HashEE model)."""
        block = getattr(config, "hashee", None)
        if not block:
            raise ValueError(
                "This config has no `hashee` block: the checkpoint was not saved from a HashEE model "
                "(build one with elue_hf.hashee.apply_hashee(model, table))"
            )
        return cls.from_dict(dict(block))
