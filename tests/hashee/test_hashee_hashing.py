"""HashEE exit tables: every hash function on tiny hand-made corpora (docs/hashee.md, "Hash functions")."""

import dataclasses
import math

import datasets
import numpy as np
import pytest
import torch

from elue_hf.hashee import (
    HashEEConfig,
    HashTable,
    build_hash_table,
    cluster_table,
    frequency_table,
    kmeans,
    mi_table,
    random_cons_table,
    random_incons_table,
)
from elue_hf.hashee.hashing import (
    exits_from_ranking,
    lookup_exits,
    mutual_information,
    rank_ids,
    token_counts,
)

SPECIAL = [0, 1, 2]  # pad, cls, sep


def cfg(**kw):
    base = dict(num_layers=4, num_buckets=2, vocab_size=12, special_ids=SPECIAL)
    base.update(kw)
    return HashEEConfig(**base)


# ------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "layers,buckets,expected",
    [(6, 6, [1, 2, 3, 4, 5, 6]), (12, 3, [1, 5, 9]), (12, 12, list(range(1, 13))), (6, 4, [1, 2, 3, 4])],
)
def test_bucket_to_layer(layers, buckets, expected):
    assert HashEEConfig(num_layers=layers, num_buckets=buckets, vocab_size=5).exit_layers == expected


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(num_buckets=5), "must not exceed"),
        (dict(hash_function="frenquency"), "Unknown hash_function"),
        (dict(num_layers=0), "positive integer"),
        (dict(special_ids=[12]), "outside the vocabulary"),
        (dict(cluster_order="median"), "cluster_order"),
        (dict(mode="fast"), "mode"),
        (dict(min_exit_layer=0), "positive integer"),
        (dict(min_exit_layer=5), "must not exceed num_layers"),
        (dict(special_exit_layer=5), "must lie in"),
        (dict(num_shallow_types=-1), "non-negative integer"),
        (dict(num_shallow_types=True), "non-negative integer"),
        (dict(num_shallow_types=3, hash_function="cluster"), "needs a hash that ranks types"),
    ],
)
def test_config_rejects_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        cfg(**kw)


def test_config_dict_round_trip():
    config = cfg(hash_function="cluster", seed=7, fingerprint="abc")
    assert HashEEConfig.from_dict(config.to_dict()) == config
    assert HashEEConfig.from_json_string(config.to_json_string()) == config
    with pytest.raises(ValueError, match="Unknown HashEEConfig fields"):
        HashEEConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_exit_floor_and_special_exit_are_saved_and_default_to_the_paper():
    assert (cfg().min_exit_layer, cfg().special_exit) == (1, 4)  # the paper: floor 1, special ids at L
    config = cfg(min_exit_layer=2, special_exit_layer=2)
    assert HashEEConfig.from_dict(config.to_dict()) == config
    assert HashEEConfig.from_dict({k: v for k, v in cfg().to_dict().items()
                                   if k not in ("min_exit_layer", "special_exit_layer")}) == cfg()  # older tables
    assert HashEEConfig(num_layers=6, num_buckets=6, vocab_size=5, min_exit_layer=2).exit_layers == [2, 2, 3, 4, 5, 6]


# ------------------------------------------------------------------------------------------------ frequency

TRAIN = [[1, 5, 5, 5, 6, 6, 7, 2], [1, 8, 8, 6, 2]]
DEV = [[1, 9, 9, 9, 9, 2, 0, 0]]


def test_frequency_rule_by_hand():
    # counts: 9:4, 5:3, 6:3, 8:2, 7:1 -> ranking 9, 5, 6 (tie with 5 broken by id), 8, 7; V_seen = 5, B = 2, s = 2
    table = frequency_table(cfg(), TRAIN, DEV)
    exits = table.exits.tolist()
    assert [exits[i] for i in (9, 5)] == [1, 1]  # bucket 0 -> layer 1
    assert [exits[i] for i in (6, 8, 7)] == [3, 3, 3]  # last bucket takes the remainder -> 1 + 1 * (4 // 2)
    assert [exits[i] for i in SPECIAL] == [4, 4, 4]  # special -> L
    assert [exits[i] for i in (3, 4, 10, 11)] == [4, 4, 4, 4]  # never seen -> L
    assert table.config.hash_function == "frequency" and table.config.fingerprint


def test_frequency_equal_types_per_bucket_and_remainder():
    config = HashEEConfig(num_layers=6, num_buckets=3, vocab_size=20, special_ids=[0])
    corpus = [[i] * (20 - i) for i in range(1, 12)]  # 11 seen ids, descending frequency 1 > 2 > ... > 11
    exits = frequency_table(config, corpus).exits
    # s = 11 // 3 = 3: ids 1-3 -> bucket 0 (layer 1), 4-6 -> bucket 1 (layer 3), 7-11 -> last bucket (layer 5)
    assert exits[1:12].tolist() == [1, 1, 1, 3, 3, 3, 5, 5, 5, 5, 5]
    assert exits[12:].tolist() == [6] * 8 and int(exits[0]) == 6


def test_frequency_with_exit_floor_and_early_special_ids():
    config = HashEEConfig(num_layers=6, num_buckets=3, vocab_size=20, special_ids=[0], min_exit_layer=2,
                          special_exit_layer=2)
    corpus = [[i] * (20 - i) for i in range(1, 12)]
    table = frequency_table(config, corpus)
    # the same buckets as without a floor (1, 3, 5), bucket 0 raised to layer 2; special id 0 at layer 2
    assert table.exits[1:12].tolist() == [2, 2, 2, 3, 3, 3, 5, 5, 5, 5, 5]
    assert int(table.exits[0]) == 2 and table.exits[12:].tolist() == [6] * 8
    incons = random_incons_table(dataclasses.replace(config, hash_function="random-incons"))
    torch.manual_seed(0)
    drawn = incons.lookup(torch.full((8, 32), 5))
    assert set(drawn.unique().tolist()) == {2, 3, 5}  # random draws respect the floor too
    with pytest.raises(ValueError, match="Special ids must exit at layer 2"):
        HashTable(config, torch.full((20,), 6))


def test_shallow_types_exit_after_layer_one_below_the_floor(tmp_path):
    config = HashEEConfig(num_layers=6, num_buckets=3, vocab_size=20, special_ids=[0], min_exit_layer=3,
                          special_exit_layer=1, num_shallow_types=2)
    corpus = [[i] * (20 - i) for i in range(1, 12)]
    table = frequency_table(config, corpus)
    # the two most frequent types (1, 2) at layer 1; the rest of bucket 0 (3) and bucket 1 (4-6) at the floor 3;
    # the last bucket (7-11) at 5; special id 0 at layer 1 (below the floor); unseen ids at L
    assert table.exits[1:12].tolist() == [1, 1, 3, 3, 3, 3, 5, 5, 5, 5, 5]
    assert int(table.exits[0]) == 1 and table.exits[12:].tolist() == [6] * 8
    assert HashEEConfig.from_dict(config.to_dict()) == config
    assert HashTable.load(table.save(tmp_path)).exits.equal(table.exits)
    paper_specials = table.exits.clone()
    paper_specials[0] = 6
    without = dataclasses.replace(config, num_shallow_types=0, special_exit_layer=None)
    with pytest.raises(ValueError, match=r"values \[1\] that are not exit layers"):
        HashTable(without, paper_specials)  # layer 1 is below the floor unless shallow types are configured


def test_frequency_ties_do_not_depend_on_data_order():
    a = frequency_table(cfg(), TRAIN, DEV).exits
    b = frequency_table(cfg(), DEV, TRAIN[::-1]).exits
    assert torch.equal(a, b)


def test_frequency_reads_datasets_tensors_and_mappings():
    reference = frequency_table(cfg(), TRAIN, DEV).exits
    dataset = datasets.Dataset.from_dict({"input_ids": TRAIN + DEV})
    assert torch.equal(frequency_table(cfg(), dataset).exits, reference)
    assert torch.equal(frequency_table(cfg(), {"input_ids": TRAIN}, iter(DEV)).exits, reference)
    padded = torch.tensor([row + [0] * (8 - len(row)) for row in TRAIN + DEV])  # pads are special: not counted
    assert torch.equal(frequency_table(cfg(), padded).exits, reference)


def test_token_reading_errors():
    with pytest.raises(ValueError, match="no 'input_ids' column"):
        frequency_table(cfg(), datasets.Dataset.from_dict({"sentence": ["a b"]}))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        token_counts([[1, 12]], vocab_size=12)
    with pytest.raises(ValueError, match="must be integers"):
        token_counts([[1.5, 2.0]], vocab_size=12)
    with pytest.raises(ValueError, match="not text"):
        token_counts("some text", vocab_size=12)


def test_fewer_seen_types_than_buckets_go_to_last_bucket():
    exits = frequency_table(cfg(num_buckets=4), [[5]]).exits
    assert int(exits[5]) == 4  # s = 0: every seen type lands in the last bucket


# ------------------------------------------------------------------------------------------------ mutual information


def _mi_by_hand(sequences, labels, token):
    tokens = [(t, y) for seq, y in zip(sequences, labels) for t in seq if t not in SPECIAL]
    n_tok = len(tokens)
    p_x = sum(t == token for t, _ in tokens) / n_tok
    total = 0.0
    for y in sorted(set(labels)):
        p_xy = sum(t == token and lab == y for t, lab in tokens) / n_tok
        p_y = labels.count(y) / len(labels)
        if p_xy > 0:
            total += p_xy * math.log(p_xy / (p_x * p_y) + 1e-6)
    return total


MI_SEQS = [[1, 5, 5, 6, 2], [1, 5, 7, 2], [1, 8, 6, 2], [1, 8, 8, 9, 2], [1, 9, 6, 2], [1, 10, 2]]
MI_LABELS = [0, 0, 1, 1, 2, 2]  # three classes


def test_mutual_information_formula_multiclass():
    config = cfg(vocab_size=12, num_layers=6, num_buckets=3)
    table = mi_table(config, MI_SEQS, MI_LABELS)
    expected = {t: _mi_by_hand(MI_SEQS, MI_LABELS, t) for t in (5, 6, 7, 8, 9, 10)}
    ranking = sorted(expected, key=lambda t: (-expected[t], t))
    # V_seen = 6, B = 3, s = 2: two types per bucket, layers 1, 3, 5
    got = {t: int(table.exits[t]) for t in ranking}
    assert [got[t] for t in ranking] == [1, 1, 3, 3, 5, 5]
    assert int(table.exits[11]) == 6 and all(int(table.exits[s]) == 6 for s in SPECIAL)
    shallow = mi_table(dataclasses.replace(config, min_exit_layer=3, num_shallow_types=1), MI_SEQS, MI_LABELS)
    assert [int(shallow.exits[t]) for t in ranking] == [1, 3, 3, 3, 5, 5]  # the highest-MI type after layer 1


def test_mutual_information_counts_first_occurrence():
    # token 7 occurs once (class 0): the original dropped first occurrences from p(x, y); we keep them
    joint = np.zeros((12, 2), dtype=np.int64)
    joint[7, 0] = 1
    joint[5, 1] = 3
    mi = mutual_information(joint, np.array([1, 1]))
    assert mi[7] == pytest.approx(0.25 * math.log(0.25 / (0.25 * 0.5) + 1e-6))
    assert mi[3] == 0.0


def test_mi_from_dataset_dev_only_ids_and_errors():
    config = cfg(vocab_size=12)
    data = datasets.Dataset.from_dict({"input_ids": MI_SEQS, "label": MI_LABELS})
    assert torch.equal(mi_table(config, data).exits, mi_table(config, MI_SEQS, MI_LABELS).exits)
    assert int(mi_table(config, MI_SEQS, MI_LABELS).exits[11]) == 4  # id only in dev/test -> L
    regression = datasets.Dataset.from_dict({"input_ids": MI_SEQS, "label": [0.1, 0.5, 0.2, 0.9, 0.3, 0.4]})
    with pytest.raises(ValueError, match="regression"):
        mi_table(config, regression)
    with pytest.raises(ValueError, match="class labels"):
        mi_table(config, MI_SEQS, [0.5] * 6)
    with pytest.raises(ValueError, match="6 token sequences but 2 labels"):
        mi_table(config, MI_SEQS, [0, 1])
    with pytest.raises(ValueError, match=">= 0"):
        mi_table(config, MI_SEQS, [-1] * 6)


# ------------------------------------------------------------------------------------------------ random


def test_random_cons_is_seeded_and_uniform():
    config = HashEEConfig(num_layers=6, num_buckets=3, vocab_size=3000, special_ids=SPECIAL, seed=5)
    a, b = random_cons_table(config).exits, random_cons_table(config).exits
    assert torch.equal(a, b)
    other = random_cons_table(HashEEConfig(**{**config.to_dict(), "seed": 6})).exits
    assert not torch.equal(a, other)
    assert a[SPECIAL].tolist() == [6, 6, 6]
    shares = torch.bincount(a[3:], minlength=7)[[1, 3, 5]].double() / (3000 - 3)
    assert torch.allclose(shares, torch.full((3,), 1 / 3, dtype=torch.float64), atol=0.04)


def test_random_incons_draws_per_occurrence():
    config = HashEEConfig(
        num_layers=6, num_buckets=3, vocab_size=50, special_ids=SPECIAL, hash_function="random-incons"
    )
    table = random_incons_table(config)
    assert table.exits[SPECIAL].tolist() == [6, 6, 6] and int(table.exits[10]) == 0
    ids = torch.full((4, 64), 10)
    ids[:, 0] = 1
    torch.manual_seed(0)
    first, second = table.lookup(ids), table.lookup(ids)
    assert not torch.equal(first, second)  # fresh draws at every forward
    assert set(first[:, 1:].unique().tolist()) == {1, 3, 5}
    assert (first[:, 0] == 6).all()  # special ids never randomised


# ------------------------------------------------------------------------------------------------ cluster


def _three_blobs():
    generator = torch.Generator().manual_seed(0)
    centers = torch.tensor([[10.0, 0.0], [0.0, 1.0], [-4.0, -4.0]])  # norms 10, 1, 5.7
    sizes = [4, 10, 6]
    rows = [c + 0.05 * torch.randn(s, 2, generator=generator) for c, s in zip(centers, sizes)]
    return torch.cat(rows), sizes


def test_kmeans_finds_blobs_deterministically():
    points, sizes = _three_blobs()
    labels, centers, inertia = kmeans(points, 3, n_init=3, seed=1)
    groups = [set(labels[a:b].tolist()) for a, b in ((0, 4), (4, 14), (14, 20))]
    assert all(len(g) == 1 for g in groups) and len(set.union(*groups)) == 3
    again = kmeans(points, 3, n_init=3, seed=1)
    assert torch.equal(labels, again[0]) and inertia == again[2]
    with pytest.raises(ValueError, match="k must be"):
        kmeans(points, 21)


def test_cluster_order_sum_and_mean():
    points, _ = _three_blobs()  # 20 rows = vocabulary of 20
    base = dict(num_layers=3, num_buckets=3, vocab_size=20, special_ids=[], seed=0)
    by_sum = cluster_table(HashEEConfig(**base), points, n_init=3).exits
    by_mean = cluster_table(HashEEConfig(**base, cluster_order="mean"), points, n_init=3).exits
    # sums of norms: blob0 4*10 = 40, blob1 10*1 = 10, blob2 6*5.66 = 34 -> ascending: blob1, blob2, blob0
    assert by_sum[:4].unique().tolist() == [3] and by_sum[4:14].unique().tolist() == [1]
    assert by_sum[14:].unique().tolist() == [2]
    # means: 10, 1, 5.66 -> ascending: blob1, blob2, blob0 (same here) ...
    assert by_mean[4:14].unique().tolist() == [1]
    # ... but with the big blob made of small-norm points, sum and mean disagree
    points2 = torch.cat([points[:4], points[4:14] * 3.5, points[14:]])  # blob1 norm 3.5, sum 35 > blob2 34
    s2 = cluster_table(HashEEConfig(**base), points2, n_init=3).exits
    m2 = cluster_table(HashEEConfig(**base, cluster_order="mean"), points2, n_init=3).exits
    assert int(s2[4]) == 2 and int(s2[14]) == 1  # sum: blob2 (34) < blob1 (35)
    assert int(m2[4]) == 1 and int(m2[14]) == 2  # mean: blob1 (3.5) < blob2 (5.7)


def test_cluster_covers_vocab_and_specials():
    embedding = torch.nn.Embedding(12, 4)
    table = cluster_table(cfg(), embedding, n_init=2, max_iter=20)
    assert table.exits[SPECIAL].tolist() == [4, 4, 4]
    assert set(table.exits.tolist()) <= {1, 3, 4}
    with pytest.raises(ValueError, match="embedding matrix must have shape"):
        cluster_table(cfg(), torch.zeros(11, 4))


# ------------------------------------------------------------------------------------------------ table object


def test_table_save_load_and_validation(tmp_path):
    table = frequency_table(cfg(), TRAIN, DEV)
    path = table.save(tmp_path)
    loaded = HashTable.load(path)
    assert loaded.config == table.config and torch.equal(loaded.exits, table.exits)
    with pytest.raises(ValueError, match="shape"):
        HashTable(cfg(), torch.ones(5, dtype=torch.long))
    with pytest.raises(ValueError, match="not exit layers"):
        HashTable(cfg(), torch.full((12,), 2))
    bad = torch.full((12,), 4)
    bad[1] = 1
    with pytest.raises(ValueError, match="Special ids"):
        HashTable(cfg(), bad)


def test_build_dispatch_and_lookup_errors():
    config = cfg()
    assert torch.equal(build_hash_table(config, TRAIN, DEV).exits, frequency_table(config, TRAIN, DEV).exits)
    mi_config = HashEEConfig(**{**config.to_dict(), "hash_function": "mi"})
    with pytest.raises(ValueError, match="exactly one training source"):
        build_hash_table(mi_config, MI_SEQS, MI_SEQS)
    cluster_config = HashEEConfig(**{**config.to_dict(), "hash_function": "cluster"})
    with pytest.raises(ValueError, match="embeddings"):
        build_hash_table(cluster_config)
    table = frequency_table(config, TRAIN)
    with pytest.raises(ValueError, match="outside the HashEE table"):
        lookup_exits(table.exits, torch.tensor([[1, 12]]), config)
    ranking = rank_ids(np.array([0, 0, 0, 1.0, 1.0, 2.0] + [0] * 6), np.arange(12) >= 3)
    assert ranking[:3].tolist() == [5, 3, 4]
    assert exits_from_ranking(ranking, config)[5] == 1
