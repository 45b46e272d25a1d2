"""Shared helpers for the leaderboard / hub tests: gold labels, real submissions built with the ELUE core, bad zips."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from elue_hf.elue.flops import ModelDims
from elue_hf.elue.flops.module_spec import encoder_modules, module_spec_from_config
from elue_hf.elue.submission import PredictionFile, write_submission, zip_submission
from elue_hf.elue.tasks import TASK_KEYS, get_task
from elue_hf.leaderboard.records import EntryRecord, PointRecord

# BERT-base shape, so the FLOPs land on the ELUE reference curve's axis; 12 exits (dynamic ElasticBERT-like).
DIMS = ModelDims(hidden=768, intermediate=3072, heads=12, num_layers=12, num_labels=2,
                 exit_layers=tuple(range(1, 13)))
N_TEST = 40


def gold_labels(tasks=TASK_KEYS, n: int = N_TEST, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for t in tasks:
        task = get_task(t)
        out[task.key] = rng.uniform(0, 5, n).round(3) if task.is_regression else rng.integers(0, task.num_labels, n)
    return out


def _predictions(task, gold: np.ndarray, accuracy: float, rng) -> list:
    if task.is_regression:
        return (gold + rng.normal(0, 5 * (1 - accuracy), gold.size)).tolist()
    preds = gold.copy()
    flip = rng.random(gold.size) > accuracy
    preds[flip] = (preds[flip] + 1) % task.num_labels
    return preds.tolist()


def bert_base_spec(num_labels: int = 2) -> dict:
    """The module spec of a 12-exit BERT-base classifier, with the embedding sizes (so params can be checked)."""
    spec = module_spec_from_config(ModelDims(**{**DIMS.__dict__, "num_labels": num_labels}))
    spec["emb"].update(vocab=30522, positions=512, token_types=2)
    return spec


def make_submission(folder: Path, gold: dict, name: str = "tiny-model", depths=(3, 6), accuracy: float = 0.9,
                    seed: int = 0, params: int | None = None, self_reported: bool = False, lengths=None,
                    tokenizer: str | None = None, model: str | None = None) -> Path:
    """A real submission zip (written and zipped by the ELUE core) with static points at ``depths`` per task.

    ``params``: per file (default: what the static point's modules hold, by the spec's parameter rule);
    ``lengths``: task -> declared token lengths (default: random); ``tokenizer``: the manifest's tokenizer name;
    ``model``: a Hub id the submission names for a re-run (each file then carries its static exit settings)."""
    from elue_hf.elue.submission.checks import spec_params

    rng = np.random.default_rng(seed)
    files = {}
    for t, labels in gold.items():
        task = get_task(t)
        dims = ModelDims(**{**DIMS.__dict__, "num_labels": task.num_labels})
        spec = bert_base_spec(task.num_labels)
        n_tokens = rng.integers(10, 60, labels.size) if lengths is None else np.asarray(lengths[task.key])
        for k in depths:
            preds = _predictions(task, np.asarray(labels), accuracy, rng)
            modules = [encoder_modules(dims, int(n), k, "dynamic") for n in n_tokens]
            used = ["emb", *(f"layer_{i}" for i in range(1, k + 1)), *(f"exit_{i}" for i in range(1, k + 1))]
            point = {"task": task.key, "predictions": preds, "label": f"k={k}",
                     "params": params or spec_params(spec, used)}
            if model:
                point["settings"] = {"exit": "static", "layers": k}
            if self_reported:
                point["flops"] = [100.0 * k + float(n) for n in n_tokens]
            else:
                point["modules"] = modules
                point["module_spec"] = spec
            files[f"{task.key}-k{k}"] = PredictionFile(**point)
    total = params or spec_params(bert_base_spec())
    sub = write_submission(folder / name, name, f"test submission {name}", total, files, tokenizer=tokenizer,
                           model={"id": model} if model else None)
    return zip_submission(sub, folder / f"{name}.zip")


def write_zip(path: Path, members: dict[str, bytes | str], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def zip_members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def manifest_of(path: Path) -> dict:
    return json.loads(zip_members(path)["submission.json"])


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def failing_point_insert(message: str):
    """A stand-in for ``SQLiteStore._insert_points`` that writes one point row, then fails like a broken disk."""
    import sqlite3

    def insert(self, conn, entry):
        conn.execute("INSERT INTO points (entry_id, task, label, performance, flops_source) "
                     "VALUES (?, 'sst-2', 'half', 1.0, 'modules')", (entry.entry_id,))
        raise sqlite3.OperationalError(message)

    return insert


def refusing_entry_insert(entry_id: str):
    """A stand-in for ``SQLiteStore._insert_entry`` that refuses one entry as SQLite would refuse a row."""
    import sqlite3

    from elue_hf.leaderboard.store import SQLiteStore

    real_insert = SQLiteStore._insert_entry

    def insert(self, conn, entry, ignore_existing):
        if entry.entry_id == entry_id:
            raise sqlite3.IntegrityError("refused by the cache (simulated)")
        return real_insert(self, conn, entry, ignore_existing)

    return insert


TOKENIZER_ID = "elue-tests/synthetic-wordpiece"


def tokenizer_root(root: Path) -> Path:
    """A folder of tokenizers by Hub id (``owner--name``) holding :data:`TOKENIZER_ID`, a fast WordPiece tokenizer
    over the synthetic ELUE fixtures' vocabulary; returns ``root``."""
    from transformers import BertTokenizer

    from tests.helpers.elue_fixtures import synthetic_vocab

    BertTokenizer(vocab=synthetic_vocab(), do_lower_case=True).save_pretrained(root / TOKENIZER_ID.replace("/", "--"))
    return root


def true_lengths(data_dir: Path, tasks, root: Path, max_length: int = 512) -> dict[str, np.ndarray]:
    """The token lengths the server computes for the synthetic test sets with :data:`TOKENIZER_ID`."""
    from elue_hf.elue.data import token_lengths
    from elue_hf.elue.submission.checks import load_tokenizer
    from elue_hf.leaderboard.submit import server_texts

    tokenizer = load_tokenizer(TOKENIZER_ID, [root], allow_hub=False)
    texts = server_texts(data_dir)
    return {get_task(t).key: token_lengths(tokenizer, t, texts(t), max_length) for t in tasks}


def make_entry(i: int, digest: bool = True, tasks=("sst-2", "mrpc")) -> EntryRecord:
    """A small stored submission (three operating points per task, the ``consistent`` tier), numbered ``i``."""
    points = tuple(
        PointRecord(task=t, label=f"k={k}", performance=80.0 + i * 0.01 + k, mflops=100.0 * k, params=1_000_000 * k,
                    residual=0.5 * k, reference_performance=80.0, metrics={"acc": 80.0 + k}, max_seq_length=128)
        for t in tasks for k in (1, 2, 3)
    )
    return EntryRecord(
        entry_id=f"sub-{i:05d}", model_name=f"model {i}", source="submission", params=3_000_000,
        partial_elue_score=0.5, task_scores={t: 1.0 for t in tasks}, flops_tier="consistent",
        created_at=f"2024-01-01T00:00:{i % 60:02d}+00:00", digest=f"{i:064x}" if digest else None, points=points,
    )
