"""Few-shot splits as in LPT's ``generate_low_resource_data.py`` (docs/lpt.md, "Few-shot splits").

``k`` is the **total** number of training examples. With the legacy NumPy global seed the rows are shuffled, grouped
by label in order of first appearance, and each class gets ``round(k * n_c / N)`` rows except the last class, which
gets ``k`` minus the others. The dev set takes the next rows of each class (``dev_size`` in total, quotas proportional
to the remaining counts by the same rule), disjoint from train. Paper seeds: 13, 21, 42, 87, 100.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["PAPER_SEEDS", "class_quotas", "few_shot_indices", "few_shot_split"]

PAPER_SEEDS = (13, 21, 42, 87, 100)


def class_quotas(counts: Sequence[int], total: int) -> list[int]:
    """Per-class quotas: ``round(total * n_c / N)`` for all classes but the last, which takes the remainder.

    Python's ``round`` (half to even) is used, as in the original script. Raises ``ValueError`` when a quota is
    negative or larger than its class.
    """
    n = sum(counts)
    if n <= 0:
        raise ValueError("No rows to split.")
    quotas = [round(total * c / n) for c in counts[:-1]]
    quotas.append(total - sum(quotas))
    for quota, count in zip(quotas, counts):
        if not 0 <= quota <= count:
            raise ValueError(
                f"Cannot draw {total} rows stratified over class sizes {list(counts)}: quotas {quotas} do not fit."
            )
    return quotas


def few_shot_indices(labels: Sequence, k: int, seed: int, dev_size: int = 1000) -> tuple[list[int], list[int]]:
    """Row indices (train, dev) of a seeded, stratified few-shot split with ``k`` training rows in total."""
    labels = list(labels)
    if isinstance(k, bool) or not isinstance(k, int) or not 0 < k <= len(labels):
        raise ValueError(f"k must be an int in [1, {len(labels)}] (k is the total number of examples), got {k!r}.")
    if dev_size < 0:
        raise ValueError(f"dev_size must be >= 0, got {dev_size}.")
    order = list(range(len(labels)))
    np.random.seed(seed)  # legacy global RNG, as the original script (reproduces its splits)
    np.random.shuffle(order)
    groups: dict = {}
    for index in order:
        groups.setdefault(labels[index], []).append(index)
    rows = list(groups.values())
    train_quotas = class_quotas([len(r) for r in rows], k)
    remaining = [len(r) - q for r, q in zip(rows, train_quotas)]
    dev_total = min(dev_size, sum(remaining))
    dev_quotas = class_quotas(remaining, dev_total) if dev_total > 0 else [0] * len(rows)
    train = [i for r, q in zip(rows, train_quotas) for i in r[:q]]
    dev = [i for r, q, d in zip(rows, train_quotas, dev_quotas) for i in r[q : q + d]]
    return train, dev


def few_shot_split(dataset, k: int, seed: int, dev_size: int = 1000, label_column: str = "label"):
    """``datasets.DatasetDict`` of ``dataset`` rows: ``train`` (k rows) and ``validation`` (up to ``dev_size``)."""
    import datasets

    if label_column not in dataset.column_names:
        raise ValueError(f"Column {label_column!r} not in the dataset (columns: {dataset.column_names}).")
    train, dev = few_shot_indices(dataset[label_column], k, seed, dev_size)
    return datasets.DatasetDict({"train": dataset.select(train), "validation": dataset.select(dev)})
