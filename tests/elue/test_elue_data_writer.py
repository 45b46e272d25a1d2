"""write_elue_task: any DatasetDict in the ELUE layout, read back unchanged by the ELUE loaders."""

import pytest
from datasets import Dataset, DatasetDict

from elue_hf.elue.data import load_elue_task, load_test_labels, write_elue_split, write_elue_task
from elue_hf.elue.tasks import TASKS


def _split(n, pair=False, regression=False, offset=0):
    cols = {"sentence1": [f"first\ttext {i}\nwrapped" for i in range(n)],
            "sentence2": [f"second {i}" for i in range(n)]}
    if not pair:
        cols = {"sentence": cols["sentence1"]}
    cols["label"] = [(i + offset) * 0.5 for i in range(n)] if regression else [(i + offset) % 2 for i in range(n)]
    return Dataset.from_dict(cols)


@pytest.mark.parametrize("task, pair, regression", [("sst-2", False, False), ("mrpc", True, False),
                                                    ("sts-b", True, True)])
def test_round_trip_through_the_elue_loaders(tmp_path, task, pair, regression):
    splits = DatasetDict({"train": _split(5, pair, regression), "validation": _split(3, pair, regression, 1),
                          "test": _split(4, pair, regression, 2)})
    folder = write_elue_task(splits, tmp_path, task)
    assert sorted(p.name for p in folder.iterdir()) == ["dev.tsv", "test.tsv", "test_full.tsv", "train.tsv"]
    loaded = load_elue_task(tmp_path, task)
    first = "sentence1" if pair else "sentence"
    assert loaded["train"][first][0] == "first text 0 wrapped"  # tabs and line breaks became spaces
    for split in ("train", "validation", "test"):
        assert loaded[split]["label"] == pytest.approx(splits[split]["label"])
        assert loaded[split]["idx"] == list(range(splits[split].num_rows))
    assert load_test_labels(tmp_path, task).tolist() == pytest.approx(splits["test"]["label"])


def test_missing_columns_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"missing \['sentence2'\]"):
        write_elue_split({"sentence1": ["a"], "label": [0]}, tmp_path, TASKS["mrpc"], "train")
    with pytest.raises(ValueError, match="unknown split"):
        write_elue_split({"sentence": ["a"], "label": [0]}, tmp_path, TASKS["sst-2"], "dev")
