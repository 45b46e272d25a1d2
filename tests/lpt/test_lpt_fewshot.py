"""Few-shot splitter: the quota rule of the LPT protocol, disjointness, seeding, legacy NumPy order."""

from collections import Counter

import numpy as np
import pytest

from elue_hf.lpt.fewshot import PAPER_SEEDS, class_quotas, few_shot_indices, few_shot_split


def _labels():
    return ["pos"] * 60 + ["neg"] * 30 + ["neutral"] * 10


def test_quota_rule():
    assert class_quotas([60, 30, 10], 10) == [6, 3, 1]
    assert class_quotas([3, 3, 3], 4) == [1, 1, 2]  # round() then the last class takes the remainder
    assert class_quotas([5, 5], 5) == [2, 3]  # round half to even: round(2.5) == 2
    with pytest.raises(ValueError, match="do not fit"):
        class_quotas([1, 1, 1, 1], 2)  # round(0.5) == 0 three times: the last class would need 2 rows but has 1


@pytest.mark.parametrize("seed", PAPER_SEEDS)
def test_split_sizes_disjoint_and_stratified(seed):
    labels = _labels()
    train, dev = few_shot_indices(labels, k=10, seed=seed, dev_size=20)
    assert len(train) == 10 and len(dev) == 20 and not set(train) & set(dev)
    assert Counter(labels[i] for i in train) == {"pos": 6, "neg": 3, "neutral": 1}
    assert Counter(labels[i] for i in dev) == {"pos": 12, "neg": 6, "neutral": 2}  # from the remaining 54/27/9


def test_rows_follow_the_legacy_numpy_shuffle():
    labels = _labels()
    train, dev = few_shot_indices(labels, k=10, seed=42, dev_size=20)
    order = np.random.RandomState(42).permutation(len(labels)).tolist()  # same legacy Mersenne-Twister draws
    by_class = {}
    for i in order:
        by_class.setdefault(labels[i], []).append(i)
    first_seen = list(by_class)  # classes in order of first appearance
    quotas = dict(zip(first_seen, class_quotas([len(by_class[c]) for c in first_seen], 10)))
    assert train == [i for c in first_seen for i in by_class[c][: quotas[c]]]
    assert few_shot_indices(labels, 10, 42, 20) == (train, dev)  # reproducible
    assert few_shot_indices(labels, 10, 13, 20)[0] != train


def test_dev_is_capped_by_what_remains_and_bad_k():
    train, dev = few_shot_indices(["a", "b"] * 5, k=4, seed=1, dev_size=1000)
    assert len(train) == 4 and len(dev) == 6
    with pytest.raises(ValueError, match="total number"):
        few_shot_indices(["a", "b"], k=3, seed=1)
    with pytest.raises(ValueError, match="total number"):
        few_shot_indices(["a", "b"], k=0, seed=1)


def test_split_a_datasets_dataset():
    import datasets

    data = datasets.Dataset.from_dict({"sentence": [f"s{i}" for i in range(100)], "label": [i % 2 for i in range(100)]})
    split = few_shot_split(data, k=8, seed=13, dev_size=10)
    assert split["train"].num_rows == 8 and split["validation"].num_rows == 10
    assert Counter(split["train"]["label"]) == {0: 4, 1: 4}
    assert not set(split["train"]["sentence"]) & set(split["validation"]["sentence"])
    with pytest.raises(ValueError, match="Column 'labels'"):
        few_shot_split(data, k=8, seed=13, label_column="labels")
