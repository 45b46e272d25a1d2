"""Submission files of an LPT classifier (a PEFT model with an LPT adapter on BERT, RoBERTa or ElasticBERT).

An LPT classifier is run like its base model (:func:`..inference.run_operating_points`, static exits); its FLOPs
follow :mod:`.flops.prompt` (prompt tokens from the insertion layer on, plus the generator). The ``modules`` column
cannot express the longer sequence yet, so the file reports its FLOPs in the ``flops`` column (the self-reported
tier) with the settings that re-run it: the verifier's re-run turns them into ``verified`` (docs/elue.md).
Parameters: everything the adapted model uses, i.e. the base model plus the generator, with the adapter's classifier
in place of the base one (PEFT keeps both; the replaced copy is not counted).
"""

from __future__ import annotations

import numpy as np

from ..elue.flops import dims_from_config
from ..elue.flops.params import count_parameters
from ..elue.submission import PredictionFile, exact_mean
from ..elue.tasks import ElueTask
from .lpt_flops import PromptShape, late_prompt_flops, prompt_shape

__all__ = ["is_lpt_model", "lpt_prompt_shape", "lpt_params", "lpt_point_flops", "lpt_prediction_file"]


def is_lpt_model(model) -> bool:
    """True for a PEFT model whose active adapter is LPT."""
    if not getattr(model, "peft_config", None):
        return False
    from ..lpt.config import LPTConfig

    return isinstance(_active_config(model), LPTConfig)


def _active_config(model):
    configs = model.peft_config
    active = getattr(model, "active_adapter", None)
    return configs[active] if isinstance(active, str) and active in configs else next(iter(configs.values()))


def lpt_prompt_shape(model) -> PromptShape:
    """The prompt of the active LPT adapter (its layer, length, generator and bottleneck)."""
    return prompt_shape(_active_config(model).to_dict(), dims_from_config(model.config).num_layers)


def lpt_params(model) -> int:
    """Parameters the adapted model uses: all of them but the base copies PEFT keeps of modules it replaced."""
    from peft.utils import ModulesToSaveWrapper

    replaced = sum(count_parameters(m.original_module) for m in model.modules()
                   if isinstance(m, ModulesToSaveWrapper))
    return count_parameters(model) - replaced


def lpt_point_flops(model, point) -> np.ndarray:
    """MFLOPs per instance of a static operating point (``point.setting["layers"]``) of an LPT classifier."""
    if "layers" not in point.setting:
        raise ValueError(f"{point.label}: LPT classifiers are counted at static exits only")
    dims = dims_from_config(model.config)
    return late_prompt_flops(dims, lpt_prompt_shape(model), point.lengths, int(point.setting["layers"]))


def lpt_mean_mflops(model, point) -> float:
    """Mean MFLOPs of the point, computed as the submission reader averages a ``flops`` column."""
    return exact_mean(lpt_point_flops(model, point))


def lpt_prediction_file(model, point, task: ElueTask, max_seq_length: int | None = None) -> PredictionFile:
    """The submission file of one static point: self-reported per-instance FLOPs, params, re-run settings."""
    from ..elue.inference import rerun_settings

    return PredictionFile(task.key, point.predictions, flops=lpt_point_flops(model, point).tolist(),
                          label=f"LPT {point.label}", params=lpt_params(model), max_seq_length=max_seq_length,
                          settings=rerun_settings(point))


__all__ += ["lpt_mean_mflops"]
