"""ELUE tasks, metrics, TSV loaders (synthetic fixtures written here), Hub mapping and tokenisation."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elue_hf.elue.data import (
    from_hub,
    load_elue_split,
    load_elue_task,
    load_test_labels,
    make_tokenize_fn,
    read_elue_tsv,
    token_lengths,
    tokenize_examples,
)
from elue_hf.elue.score.metrics import average_ranks, f1_positive, pearson, spearman, task_metric
from elue_hf.elue.tasks import TASK_KEYS, TASKS, get_task
from tests.helpers.elue_fixtures import synthetic_vocab, write_synthetic_elue, write_synthetic_task


def test_registry_facts():
    assert TASK_KEYS == ("sst-2", "imdb", "mrpc", "sts-b", "snli", "scitail")
    assert get_task("SST-2").metric == "acc" and get_task("mrpc").metric == "acc_and_f1"
    assert get_task("stsb").is_regression and get_task("sts").num_labels == 1
    assert get_task("SNLI").label_names == ("entailment", "neutral", "contradiction")
    assert get_task("SciTail").label_names == ("neutral", "entails")
    assert get_task("sst").test_size == 2210 and get_task("imdb").sizes["train"] == 20000
    assert all(t.hub is not None for t in TASKS.values())
    with pytest.raises(ValueError, match="unknown ELUE task 'cola'"):
        get_task("cola")


def test_metrics_by_hand():
    assert task_metric("sst-2", [1, 0, 1, 1], [1, 0, 0, 1]) == {"acc": 75.0, "score": 75.0}
    m = task_metric("mrpc", [1, 1, 0, 0], [1, 0, 1, 0])  # tp=1 fp=1 fn=1 -> F1 = 2/4
    assert m["acc"] == 50.0 and m["f1"] == 50.0 and m["acc_and_f1"] == 50.0 == m["score"]
    s = task_metric("sts-b", [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.5])
    assert s["spearmanr"] == pytest.approx(100.0) and s["corr"] == pytest.approx((s["pearson"] + 100) / 2)
    assert np.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert f1_positive([0, 0], [0, 0]) == 0.0
    np.testing.assert_array_equal(average_ranks([10, 20, 10, 30, 20]), [1.5, 3.5, 1.5, 5, 3.5])
    assert 100.0 * 841 / 1000 == task_metric("sst-2", [1] * 841 + [0] * 159, [1] * 1000)["acc"] == 84.1
    with pytest.raises(ValueError, match="equally long"):
        task_metric("sst-2", [1], [1, 0])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-5, 5), st.floats(-10, 10, allow_nan=False)), min_size=3, max_size=30))
def test_spearman_equals_pearson_of_ranks_and_is_rank_invariant(pairs):
    x = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs], dtype=float)
    rho = spearman(x, y)
    if np.isnan(rho):
        assert len(set(x)) == 1 or len(set(y)) == 1
    else:
        assert rho == pytest.approx(spearman(x * 3 - 1, y * 2), abs=1e-9)  # exact monotone maps keep ranks
        assert -100 - 1e-9 <= rho <= 100 + 1e-9


@pytest.fixture(scope="module")
def elue_dir(tmp_path_factory):
    return write_synthetic_elue(tmp_path_factory.mktemp("elue"), sizes={"train": 10, "validation": 4, "test": 6})


@pytest.mark.parametrize("task", TASK_KEYS)
def test_loaders_read_original_layout(elue_dir, task):
    t = get_task(task)
    dd = load_elue_task(elue_dir, task)
    assert set(dd) == {"train", "validation", "test"}
    assert (len(dd["train"]), len(dd["validation"]), len(dd["test"])) == (10, 4, 6)
    assert dd["test"]["idx"] == list(range(6))
    for name in t.text_fields:
        assert all(isinstance(x, str) and x for x in dd["train"][name])
    labels = np.asarray(dd["test"]["label"], dtype=float)
    np.testing.assert_array_equal(labels, load_test_labels(elue_dir, task))
    if not t.is_regression:
        assert dd["train"].features["label"].names == list(t.label_names)


def test_quirks_bom_crlf_and_quotes(elue_dir):
    raw = (elue_dir / "SNLI" / "dev.tsv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    dev = load_elue_split(elue_dir, "snli", "validation")
    assert not any("\r" in h for h in dev["hypothesis"]) and not dev["premise"][0].startswith("\ufeff")
    mrpc = load_elue_split(elue_dir, "mrpc", "train")
    assert len(mrpc) == 10
    folder = elue_dir / "MRPC"
    (folder / "quoted.tsv").write_text('Quality\t#1 ID\t#2 ID\t#1 String\t#2 String\n1\t1\t2\t"He said\tok\n')
    cols = read_elue_tsv(folder / "quoted.tsv", TASKS["mrpc"], "train")
    assert cols["sentence1"] == ['"He said'] and cols["label"] == [1]


def test_loader_errors_name_the_problem(tmp_path):
    folder = write_synthetic_task(tmp_path, "sst-2", {"train": 3, "validation": 2, "test": 3})
    (folder / "train.tsv").write_text("sentence\tlabel\ngood film\t7\n")
    with pytest.raises(ValueError, match=r"train.tsv line 2: label '7' is not in sst-2's label codes"):
        load_elue_split(tmp_path, "sst-2", "train")
    (folder / "dev.tsv").write_text("sentence\tlabel\nno label here\n")
    with pytest.raises(ValueError, match="expected 2 tab-separated columns, got 1"):
        load_elue_split(tmp_path, "sst-2", "validation")
    lines = (folder / "test_full.tsv").read_text().splitlines()
    (folder / "test_full.tsv").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(ValueError, match="test_full.tsv has 2 rows, test.tsv 3"):
        load_elue_split(tmp_path, "sst-2", "test")
    with pytest.raises(FileNotFoundError, match="no folder for IMDb"):
        load_elue_task(tmp_path, "imdb")
    with pytest.raises(ValueError, match="unknown split"):
        read_elue_tsv(folder / "dev.tsv", TASKS["sst-2"], "dev")


def test_test_split_without_test_full_has_unknown_labels(tmp_path):
    folder = write_synthetic_task(tmp_path, "sts-b", {"test": 3})
    (folder / "test_full.tsv").unlink()
    test = load_elue_split(tmp_path, "sts-b", "test")
    assert np.all(np.isnan(np.asarray(test["label"], dtype=float)))
    with pytest.raises(FileNotFoundError, match="needs the labelled test file"):
        load_test_labels(tmp_path, "sts-b")


def test_from_hub_mappings():
    snli = datasets.Dataset.from_dict({"premise": ["a", "b", "c"], "hypothesis": ["x", "y", "z"], "label": [0, -1, 2]})
    out = from_hub(snli, "snli")
    assert out["label"] == [0, 2] and out["idx"] == [0, 1] and out["premise"] == ["a", "c"]
    sst = datasets.Dataset.from_dict(
        {"sentence": ["s1", "s2"], "label": [0.8, 0.5], "tokens": ["", ""], "tree": ["", ""]}
    )
    assert from_hub(sst, "sst-2")["label"] == [1, 0]
    sci = datasets.Dataset.from_dict({"sentence1": ["p"], "sentence2": ["h"], "gold_label": ["entailment"]})
    assert from_hub(sci, "scitail")["label"] == [1]
    sts = datasets.Dataset.from_dict({"sentence1": ["a"], "sentence2": ["b"], "score": [3.8]})
    assert from_hub(sts, "stsb")["label"] == [pytest.approx(3.8)]
    mrpc = datasets.Dataset.from_dict({"text1": ["a"], "text2": ["b"], "label": [1]})
    assert from_hub(mrpc, "mrpc")["sentence2"] == ["b"]
    with pytest.raises(ValueError, match="lacks columns"):
        from_hub(datasets.Dataset.from_dict({"text": ["a"]}), "mrpc")
    imdb = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": [f"t{i}" for i in range(12)], "label": [0, 1] * 6}),
        "test": datasets.Dataset.from_dict({"text": ["u"], "label": [1]}),
    })
    from elue_hf.elue import data as data_mod

    dd = from_hub(imdb, "imdb")  # fewer than 2 x 2,500 rows: all of train becomes the balanced dev split
    assert set(dd) == {"train", "validation", "test"}
    assert (len(dd["train"]), len(dd["validation"]), len(dd["test"])) == (0, 12, 1)
    train, dev = data_mod._balanced_holdout(from_hub(imdb["train"], "imdb"), 2, seed=0)
    assert len(dev) == 4 and sorted(dev["label"]) == [0, 0, 1, 1] and len(train) == 8
    assert train["idx"] == list(range(8)) and set(train["sentence"]).isdisjoint(dev["sentence"])


def test_tokenisation_single_and_pairs():
    from transformers import BertTokenizer

    tok = BertTokenizer(vocab=synthetic_vocab())
    batch = {"premise": ["the dog runs"], "hypothesis": ["a cat sits in the park"]}
    enc = tokenize_examples(tok, TASKS["snli"], batch, max_length=64)
    ids = enc["input_ids"][0]
    assert ids[0] == tok.cls_token_id and ids.count(tok.sep_token_id) == 2 and len(ids) == 3 + 3 + 6
    assert enc["token_type_ids"][0][-7:] == [1] * 7
    assert token_lengths(tok, "snli", batch, max_length=8).tolist() == [8]
    ds = datasets.Dataset.from_dict({"sentence": ["good movie", "bad"], "label": [1, 0]})
    mapped = ds.map(make_tokenize_fn(tok, TASKS["sst-2"], 16), batched=True)
    assert mapped["input_ids"][1] == [tok.cls_token_id, tok.convert_tokens_to_ids("bad"), tok.sep_token_id]
