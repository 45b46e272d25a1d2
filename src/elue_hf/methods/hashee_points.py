"""Run a HashEE classifier over an ELUE test set and turn it into a submission file (used by ``elue-hf evaluate``,
the demo and the verifier's re-run).

A HashEE model has one operating point: every token leaves at the layer its exit table gives it, the classifier
reads the last layer. Its submission file lists shrinking ``(m,n,d)`` layers in the ``modules`` column
(:mod:`.flops.token_exit`) and carries the settings ``{"exit": "hashee"}`` that re-run it (docs/elue.md,
"Verification by re-running the model").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from ..elue.flops import dims_from_config
from ..elue.flops.module_spec import modules_macs_column, with_embedding_sizes
from ..elue.submission import PredictionFile
from ..elue.submission.format import _mean_from_macs
from ..elue.tasks import ElueTask
from ..hashee.auto import is_hashee_config, to_base_config
from .hashee_flops import last_active_counts, module_spec, modules_column

__all__ = ["HASHEE_SETTINGS", "HASHEE_LABEL", "TokenExitOutputs", "run_hashee", "hashee_spec", "hashee_modules",
           "hashee_mean_mflops", "hashee_prediction_file"]

HASHEE_SETTINGS = {"exit": "hashee"}
HASHEE_LABEL = "hashee"


@dataclass
class TokenExitOutputs:
    """What a HashEE classifier produced on the test rows (index order)."""

    predictions: list
    lengths: np.ndarray  # (N,) unpadded token counts
    counts: np.ndarray  # (N, L) tokens each layer updated


def _check_single_exit(config) -> None:
    if not is_hashee_config(config):
        raise ValueError(f"model_type {config.model_type!r} is not a HashEE model (saved with apply_hashee)")
    if len(dims_from_config(to_base_config(config)).exit_layers) != 1:
        raise ValueError("HashEE is evaluated on single-exit classifiers (BERT, RoBERTa, a static ElasticBERT); "
                         "this ElasticBERT has several exits")


def run_hashee(model, tokenizer, dataset, task: ElueTask, max_length: int = 128, batch_size: int = 32,
               progress: Callable[..., Iterable] | None = None) -> TokenExitOutputs:
    """Predictions, token lengths and per-layer active-token counts of a HashEE classifier on ``dataset``."""
    from ..elue.inference import _decode, full_pass

    _check_single_exit(model.config)
    counts: list[np.ndarray] = []
    logits, lengths = full_pass(model, tokenizer, dataset, task, max_length, batch_size, progress,
                                after_batch=lambda m: counts.append(last_active_counts(m)))
    return TokenExitOutputs(_decode(task, logits[:, -1]), np.asarray(lengths, dtype=np.int64),
                            np.concatenate(counts))


def hashee_spec(model) -> dict:
    """The module spec of a HashEE classifier (its base model's, with the embedding sizes for the params check)."""
    return with_embedding_sizes(module_spec(model.config), model.config)


def hashee_modules(config, outputs: TokenExitOutputs) -> list[str]:
    return modules_column(config, outputs.lengths, outputs.counts)


def hashee_mean_mflops(config, outputs: TokenExitOutputs) -> float:
    """Mean MFLOPs of the run, computed as the submission reader computes a ``modules`` column."""
    return _mean_from_macs(modules_macs_column(hashee_modules(config, outputs), module_spec(config)))


def hashee_prediction_file(outputs: TokenExitOutputs, task: ElueTask, config, params: int | None = None,
                           max_seq_length: int | None = None, label: str = HASHEE_LABEL) -> PredictionFile:
    """The submission file of the run: ``(m,n,d)`` layers in ``modules``, settings ``{"exit": "hashee"}``."""
    return PredictionFile(task.key, outputs.predictions, modules=hashee_modules(config, outputs),
                          label=label, params=params, max_seq_length=max_seq_length, settings=dict(HASHEE_SETTINGS))
