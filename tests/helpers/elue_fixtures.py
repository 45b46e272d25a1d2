"""Small **synthetic** data in the original ELUE TSV layout, for tests and smoke runs (never real ELUE data).

The files reproduce the byte-level quirks of the originals (docs/elue.md, "Data files and Hub copies"):
a UTF-8 BOM on MRPC train/dev and SNLI
dev/test, CRLF line ends on SNLI and SciTail dev/test, unbalanced double quotes in MRPC text. Texts are random
strings over a tiny word list, so anything computed on them is synthetic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elue_hf.elue.data import SPLIT_FILES
from elue_hf.elue.tasks import TASK_KEYS, get_task

__all__ = ["SYNTHETIC_WORDS", "synthetic_vocab", "write_synthetic_task", "write_synthetic_elue"]

SYNTHETIC_WORDS = (
    "good bad great awful movie plot actor film story fun dull a the is was not very really man woman dog cat "
    "runs sits on in park house red blue big small science cell energy water \"quoted"
).split()


def synthetic_vocab() -> dict[str, int]:
    """A WordPiece vocabulary (token -> id) covering :data:`SYNTHETIC_WORDS`, for ``BertTokenizer(vocab=...)``."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words = sorted({w.strip('"').lower() for w in SYNTHETIC_WORDS} | {'"'})
    return {token: i for i, token in enumerate(specials + words)}


def _sentence(rng: np.random.Generator, low: int = 3, high: int = 12) -> str:
    return " ".join(rng.choice(SYNTHETIC_WORDS, size=int(rng.integers(low, high))))


def _label_text(task, rng) -> str:
    if task.is_regression:
        return f"{rng.uniform(0, 5):.3f}"
    return str(int(rng.integers(0, task.num_labels)))


def _rows(task, split: str, n: int, rng) -> list[list[str]]:
    rows = []
    for i in range(n):
        texts = [_sentence(rng) for _ in task.text_fields]
        label = _label_text(task, rng)
        if task.key == "mrpc":
            body = ["-", "-", *texts] if split == "test_full" else [str(1000 + i), str(2000 + i), *texts]
            lead = str(i) if split == "test" else label
            rows.append([lead, *body])
        elif split == "test":
            rows.append([str(i), *texts])
        else:
            rows.append([*texts, label])
    return rows


def write_synthetic_task(data_dir, task, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Write ``<data_dir>/<Task>/{train,dev,test,test_full}.tsv`` with synthetic rows; returns the folder."""
    task = get_task(task)
    sizes = {"train": 24, "validation": 8, "test": 12, **(sizes or {})}
    rng = np.random.default_rng(seed)
    folder = Path(data_dir) / task.dir_name
    folder.mkdir(parents=True, exist_ok=True)
    test_rows = _rows(task, "test_full", sizes["test"], rng)
    contents = {
        "train": _rows(task, "train", sizes["train"], rng),
        "validation": _rows(task, "validation", sizes["validation"], rng),
        "test_full": test_rows,
    }
    if task.key == "mrpc":
        contents["test"] = [[str(i), str(1000 + i), str(2000 + i), r[3], r[4]] for i, r in enumerate(test_rows)]
    else:
        k = len(task.text_fields)
        contents["test"] = [[str(i), *r[:k]] for i, r in enumerate(test_rows)]
    for split, rows in contents.items():
        header = task.tsv_columns["dev" if split == "validation" else split]
        bom = task.key == "mrpc" and split in ("train", "validation") or task.key == "snli" and split != "train"
        crlf = task.key in ("snli", "scitail") and split != "train"
        newline = "\r\n" if crlf else "\n"
        text = newline.join("\t".join(r) for r in [list(header), *rows]) + newline
        (folder / SPLIT_FILES[split]).write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return folder


def write_synthetic_elue(data_dir, tasks=TASK_KEYS, sizes: dict[str, int] | None = None, seed: int = 0) -> Path:
    """Synthetic fixtures for several tasks (default: all six); returns ``data_dir``."""
    for offset, task in enumerate(tasks):
        write_synthetic_task(data_dir, task, sizes, seed + offset)
    return Path(data_dir)
