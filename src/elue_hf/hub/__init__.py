"""Hugging Face Hub integration: model cards with ELUE results, push helpers (ElasticBERT with ``auto_map``, LPT
adapters, Spaces) and Space cards. The Space apps themselves are in :mod:`elue_hf.spaces`.

Nothing here touches the network until a push helper is called; with ``HF_HUB_OFFLINE=1`` those fail at once.
``huggingface_hub`` and ``gradio`` are imported inside the functions that need them.
"""

from __future__ import annotations

from ..citations import CITATIONS, bibtex
from .cards import (
    ELASTICBERT_VARIANTS,
    elasticbert_card,
    eval_results_from_published,
    eval_results_from_score,
    hashee_card,
    leaderboard_space_card,
    lpt_adapter_card,
    metric_space_card,
    space_card,
)
from .push import PushError, push_elasticbert, push_lpt_adapter, push_space

__all__ = [
    "CITATIONS",
    "bibtex",
    "ELASTICBERT_VARIANTS",
    "eval_results_from_score",
    "eval_results_from_published",
    "elasticbert_card",
    "hashee_card",
    "lpt_adapter_card",
    "space_card",
    "leaderboard_space_card",
    "metric_space_card",
    "push_elasticbert",
    "push_lpt_adapter",
    "push_space",
    "PushError",
]
