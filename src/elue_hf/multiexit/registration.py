"""Register the multi-exit model with the transformers Auto classes (public ``register`` API, idempotent).

No ``auto_map`` and no remote code: a saved multi-exit folder loads through ``AutoConfig`` / ``AutoModel`` /
``AutoModelForSequenceClassification`` after ``import elue_hf``, never with ``trust_remote_code``.
"""

from __future__ import annotations

from .configuration_multiexit import MultiExitConfig
from .modeling_multiexit import MultiExitForSequenceClassification, MultiExitModel

__all__ = ["register_multiexit"]


def register_multiexit() -> None:
    """Make ``AutoConfig`` / ``AutoModel`` / ``AutoModelForSequenceClassification`` resolve ``model_type="multiexit"``.
    Safe to call many times."""
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    AutoConfig.register(MultiExitConfig.model_type, MultiExitConfig, exist_ok=True)
    AutoModel.register(MultiExitConfig, MultiExitModel, exist_ok=True)
    AutoModelForSequenceClassification.register(MultiExitConfig, MultiExitForSequenceClassification, exist_ok=True)
