"""ELUE data: the original TSV layout, the public Hub copies, and tokenisation.

See docs/elue.md, "Tasks" and "Data files and Hub copies".

Local layout: ``<data_dir>/<Task>/{train,dev,test,test_full}.tsv`` (folder names ``SST-2, IMDb, MRPC, STS-B, SNLI,
SciTail``; the lower-case key works too). Files have one header row, are tab-separated without quoting, may start
with a UTF-8 BOM and use CRLF line ends. Loaded splits are ``datasets.Dataset`` objects with our column names:
``sentence`` (SST-2, IMDb), ``sentence1/sentence2`` (MRPC, STS-B), ``premise/hypothesis`` (SNLI, SciTail), ``label``
(int code, float for STS-B, -1 when unknown) and ``idx`` (row index = submission index).

The functions exported by :mod:`elue_hf.elue` take a task name or an :class:`ElueTask` and resolve it once; the
others (``task_dir``, ``read_elue_tsv``, ``write_elue_split``, ``tokenize_examples``, ``make_tokenize_fn``) take the
:class:`ElueTask` their caller resolved.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .tasks import ElueTask, get_task

__all__ = [
    "SPLIT_FILES",
    "task_dir",
    "read_elue_tsv",
    "load_elue_split",
    "load_elue_task",
    "load_test_labels",
    "write_elue_split",
    "write_elue_task",
    "from_hub",
    "load_hub_task",
    "tokenize_examples",
    "make_tokenize_fn",
    "token_lengths",
]

#: our split name -> file name of the original layout
SPLIT_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv", "test_full": "test_full.tsv"}


def task_dir(data_dir, task: ElueTask) -> Path:
    """``<data_dir>/<Task>`` (official folder name, or the lower-case key)."""
    root = Path(data_dir)
    for name in (task.dir_name, task.key, task.name, task.key.replace("-", "")):
        if (root / name).is_dir():
            return root / name
    raise FileNotFoundError(f"no folder for {task.name} in {root} (expected {root / task.dir_name})")


def _read_lines(path: Path) -> list[list[str]]:
    text = path.read_bytes().decode("utf-8-sig")  # BOM in MRPC train/dev, SNLI dev/test
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise ValueError(f"{path} is empty (expected a header row)")
    return [line.split("\t") for line in lines[1:]]  # no quote handling (csv.QUOTE_NONE); header skipped


def _layout(task: ElueTask, split: str) -> tuple[tuple[int, ...], int | None, int | None]:
    """(text column positions, label position, index position) of a split file."""
    if task.key == "mrpc":
        return (3, 4), (None if split == "test" else 0), (0 if split == "test" else None)
    k = len(task.text_fields)
    if split == "test":
        return tuple(range(1, k + 1)), None, 0
    return tuple(range(k)), k, None


def _parse_label(task: ElueTask, raw: str, where: str):
    raw = raw.strip()
    if task.is_regression:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{where}: label {raw!r} is not a number") from None
        if not np.isfinite(value):
            raise ValueError(f"{where}: label {raw!r} is not finite")
        return value
    if not raw.lstrip("-").isdigit() or not 0 <= int(raw) < task.num_labels:
        raise ValueError(f"{where}: label {raw!r} is not in {task.key}'s label codes 0..{task.num_labels - 1}")
    return int(raw)


def read_elue_tsv(path, task: ElueTask, split: str) -> dict[str, list]:
    """Columns of one ELUE TSV as plain lists (``split`` in train / validation / test / test_full)."""
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLIT_FILES)}")
    path = Path(path)
    texts_at, label_at, index_at = _layout(task, split)
    width = len(task.tsv_columns["dev" if split == "validation" else split])
    columns: dict[str, list] = {name: [] for name in task.text_fields}
    columns["label"], columns["idx"] = [], []
    for row_no, fields in enumerate(_read_lines(path)):
        where = f"{path} line {row_no + 2}"
        if len(fields) != width:
            raise ValueError(f"{where}: expected {width} tab-separated columns, got {len(fields)}")
        for name, pos in zip(task.text_fields, texts_at):
            columns[name].append(fields[pos])
        columns["label"].append(_parse_label(task, fields[label_at], where) if label_at is not None else
                                (float("nan") if task.is_regression else -1))
        if index_at is not None:
            raw = fields[index_at].strip()
            if not raw.isdigit():
                raise ValueError(f"{where}: index {raw!r} is not a non-negative integer")
            columns["idx"].append(int(raw))
        else:
            columns["idx"].append(row_no)
    return columns


def _features(task: ElueTask):
    import datasets

    feats = {name: datasets.Value("string") for name in task.text_fields}
    feats["label"] = (
        datasets.Value("float64") if task.is_regression else datasets.ClassLabel(names=list(task.label_names))
    )
    feats["idx"] = datasets.Value("int32")
    return datasets.Features(feats)


def load_elue_split(data_dir, task: str | ElueTask, split: str):
    """One split of the local ELUE layout as a ``datasets.Dataset``.

    ``split="test"`` returns the test rows with their labels from ``test_full.tsv`` when that file exists (checked
    row by row against ``test.tsv``), else label -1 (NaN for STS-B).
    """
    import datasets

    task = get_task(task)
    folder = task_dir(data_dir, task)
    path = folder / SPLIT_FILES[split]
    if not path.exists():
        raise FileNotFoundError(f"{path} not found")
    cols = read_elue_tsv(path, task, split)
    if split == "test" and (folder / SPLIT_FILES["test_full"]).exists():
        full = read_elue_tsv(folder / SPLIT_FILES["test_full"], task, "test_full")
        if len(full["label"]) != len(cols["idx"]):
            raise ValueError(f"{folder}: test_full.tsv has {len(full['label'])} rows, test.tsv {len(cols['idx'])}")
        if cols["idx"] != list(range(len(cols["idx"]))):
            raise ValueError(f"{path}: the index column must run 0..N-1 in file order")
        for name in task.text_fields:
            bad = next((i for i, (a, b) in enumerate(zip(cols[name], full[name])) if a != b), None)
            if bad is not None:
                raise ValueError(f"{folder}: test.tsv and test_full.tsv differ at row {bad} ({name})")
        cols["label"] = full["label"]
    return datasets.Dataset.from_dict(cols, features=_features(task))


def load_elue_task(data_dir, task: str | ElueTask):
    """All splits present in ``<data_dir>/<Task>`` as a ``datasets.DatasetDict`` (train / validation / test)."""
    import datasets

    task = get_task(task)
    folder = task_dir(data_dir, task)
    out = {}
    for split in ("train", "validation", "test"):
        if (folder / SPLIT_FILES[split]).exists():
            out[split] = load_elue_split(data_dir, task, split)
    if "test" not in out and (folder / SPLIT_FILES["test_full"]).exists():
        cols = read_elue_tsv(folder / SPLIT_FILES["test_full"], task, "test_full")
        out["test"] = datasets.Dataset.from_dict(cols, features=_features(task))
    if not out:
        raise FileNotFoundError(f"{folder} holds none of {', '.join(SPLIT_FILES.values())}")
    return datasets.DatasetDict(out)


def load_test_labels(data_dir, task: str | ElueTask) -> np.ndarray:
    """Gold test labels in index order, from ``test_full.tsv`` (what the scorer compares against)."""
    task = get_task(task)
    path = task_dir(data_dir, task) / SPLIT_FILES["test_full"]
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: scoring {task.name} needs the labelled test file")
    labels = read_elue_tsv(path, task, "test_full")["label"]
    return np.asarray(labels, dtype=np.float64 if task.is_regression else np.int64)


def _tsv_field(value) -> str:
    return " ".join(str(value).split())  # the format has no quoting: tabs and line breaks become spaces


def _label_field(task: ElueTask, value) -> str:
    if task.is_regression:
        return repr(float(value))
    return str(int(value))


def write_elue_split(dataset, data_dir, task: ElueTask, split: str) -> Path:
    """Write a split (a ``Dataset`` or dict of columns with our column names) as ``<data_dir>/<Task>/<split file>``.

    ``split`` is train / validation / test / test_full; ``test`` writes the unlabelled ``index + texts`` file. The
    layout (column order, header, MRPC's five columns) is the one :func:`read_elue_tsv` reads.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown split {split!r}; use one of {', '.join(SPLIT_FILES)}")
    columns = dataset if isinstance(dataset, dict) else dataset.to_dict()
    needed = [*task.text_fields, *([] if split == "test" else ["label"])]
    missing = [name for name in needed if name not in columns]
    if missing:
        raise ValueError(f"{task.name} {split} needs columns {needed}; missing {missing}")
    texts_at, label_at, index_at = _layout(task, split)
    header = task.tsv_columns["dev" if split == "validation" else split]
    rows = ["\t".join(header)]
    for i in range(len(columns[task.text_fields[0]])):
        fields = ["-"] * len(header)
        for name, pos in zip(task.text_fields, texts_at):
            fields[pos] = _tsv_field(columns[name][i])
        if label_at is not None:
            fields[label_at] = _label_field(task, columns["label"][i])
        if index_at is not None:
            fields[index_at] = str(i)
        rows.append("\t".join(fields))
    folder = Path(data_dir) / task.dir_name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SPLIT_FILES[split]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def write_elue_task(splits, data_dir, task: str | ElueTask) -> Path:
    """Write a ``DatasetDict`` (train / validation / test, our column names) in the ELUE layout; returns the folder.

    A labelled ``test`` split gives both ``test.tsv`` (what a model sees) and ``test_full.tsv`` (the gold labels the
    scorer reads), so your own data goes through ``elue-hf train / evaluate / score`` like an ELUE task.
    """
    task = get_task(task)
    for split in ("train", "validation"):
        if split in splits:
            write_elue_split(splits[split], data_dir, task, split)
    if "test" in splits:
        write_elue_split(splits["test"], data_dir, task, "test")
        if "label" in splits["test"].column_names:
            write_elue_split(splits["test"], data_dir, task, "test_full")
    return Path(data_dir) / task.dir_name


# ------------------------------------------------------------------------------------------------- Hub copies


def _convert_label(task: ElueTask, rule: str, value):
    if rule == "sst_threshold":
        return int(float(value) > 0.5)
    if rule == "scitail_names":
        names = {"entailment": 1, "entails": 1, "neutral": 0}
        if value not in names:
            raise ValueError(f"SciTail label {value!r} is not 'entailment' or 'neutral'")
        return names[value]
    return float(value) if task.is_regression else int(value)


def from_hub(dataset, task: str | ElueTask, split_seed: int = 0):
    """Map a Hub ``Dataset`` / ``DatasetDict`` of ``task`` onto our columns (see ``ElueTask.hub``; README table).

    SNLI drops label -1 rows; SST's float sentiment becomes ``label > 0.5``; SciTail's names become codes; an IMDb
    ``DatasetDict`` without validation gets a seeded, balanced 5,000-row dev split carved out of train (2,500 per class,
    as ELUE did; the exact ELUE rows are unpublished).
    """
    import datasets

    task = get_task(task)
    source = task.hub
    if isinstance(dataset, datasets.DatasetDict):
        out = {}
        for ours, theirs in source.splits.items():
            if theirs in dataset:
                out[ours] = from_hub(dataset[theirs], task)
        if task.key == "imdb" and "validation" not in out and "train" in out:
            out["train"], out["validation"] = _balanced_holdout(out["train"], 2500, split_seed)
        return datasets.DatasetDict(out)
    missing = [col for col in source.columns.values() if col not in dataset.column_names]
    if missing:
        raise ValueError(f"{task.name} Hub data lacks columns {missing}; expected {source.repo} with "
                         f"{sorted(source.columns.values())}, got {dataset.column_names}")
    rows = dataset.to_dict()
    raw_labels = rows[source.columns["label"]]
    keep = [i for i, v in enumerate(raw_labels) if not (source.label == "drop_negative" and int(v) < 0)]
    cols: dict[str, list] = {ours: [rows[theirs][i] for i in keep] for ours, theirs in source.columns.items()
                             if ours != "label"}
    cols["label"] = [_convert_label(task, source.label, raw_labels[i]) for i in keep]
    cols["idx"] = list(range(len(keep)))
    return datasets.Dataset.from_dict(cols, features=_features(task))


def _balanced_holdout(ds, per_class: int, seed: int):
    labels = np.asarray(ds["label"])
    rng = np.random.default_rng(seed)
    held = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)])
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    train, dev = ds.select(np.flatnonzero(~mask)), ds.select(np.sort(held))
    return train.map(lambda _, i: {"idx": i}, with_indices=True), dev.map(lambda _, i: {"idx": i}, with_indices=True)


def load_hub_task(task: str | ElueTask, **load_kwargs):
    """``datasets.load_dataset`` of the task's public Hub copy, mapped by :func:`from_hub` (needs network/cache)."""
    import datasets

    task = get_task(task)
    ds = datasets.load_dataset(task.hub.repo, task.hub.config, **load_kwargs)
    return from_hub(ds, task)


# --------------------------------------------------------------------------------------------------- tokenising


def _texts(task: ElueTask, batch: dict) -> tuple[list[str], list[str] | None]:
    first = list(batch[task.text_fields[0]])
    second = list(batch[task.text_fields[1]]) if task.is_pair else None
    return first, second


def tokenize_examples(tokenizer, task: ElueTask, batch: dict, max_length: int = 128, padding: bool | str = False,
                      return_tensors: str | None = None) -> dict[str, Any]:
    """Tokenise a batch (dict of columns) of ``task``: single sentences, or pairs as ``[CLS] A [SEP] B [SEP]``."""
    first, second = _texts(task, batch)
    return tokenizer(first, second, truncation=True, max_length=max_length, padding=padding,
                     return_tensors=return_tensors)


def make_tokenize_fn(tokenizer, task: ElueTask, max_length: int = 128):
    """A function for ``Dataset.map(..., batched=True)`` that adds ``input_ids`` etc. (labels stay in ``label``)."""

    def fn(batch):
        return tokenize_examples(tokenizer, task, batch, max_length)

    return fn


def token_lengths(tokenizer, task: str | ElueTask, dataset_or_batch, max_length: int = 128) -> np.ndarray:
    """Tokenize ELUE examples and count their tokens (with [CLS]/[SEP], after truncation at ``max_length``): the
    lengths ELUE FLOPs are counted at. (For the rows of an already padded batch, see
    :func:`elue_hf.methods.hashee_flops.unpadded_lengths`.)"""
    task = get_task(task)
    batch = dataset_or_batch if isinstance(dataset_or_batch, dict) else dataset_or_batch.to_dict()
    enc = tokenize_examples(tokenizer, task, batch, max_length)
    return np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64)

