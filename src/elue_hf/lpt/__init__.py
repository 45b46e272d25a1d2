"""Late Prompt Tuning (LPT) as a PEFT method: ``get_peft_model(model, LPTConfig(...))``.

Importing this package registers LPT with PEFT (:func:`register_lpt`, idempotent), so that ``get_peft_model``,
``PeftModel.from_pretrained`` and ``AutoPeftModelForSequenceClassification.from_pretrained`` know ``"LPT"``.
"""

from .config import GENERATOR_KINDS, HEAD_MODES, LPTConfig
from .fewshot import few_shot_indices, few_shot_split
from .layer import LPTLayer, build_prompt_generator, extend_attention_mask, generator_parameter_count
from .model import LPTModel
from .registration import is_lpt_registered, register_lpt
from .saving import save_lpt_adapter
from .templates import TEMPLATES, Template, encode_with_template, get_template, label_word_ids

register_lpt()

__all__ = [
    "GENERATOR_KINDS",
    "HEAD_MODES",
    "LPTConfig",
    "LPTLayer",
    "LPTModel",
    "TEMPLATES",
    "Template",
    "build_prompt_generator",
    "encode_with_template",
    "extend_attention_mask",
    "few_shot_indices",
    "few_shot_split",
    "generator_parameter_count",
    "get_template",
    "is_lpt_registered",
    "label_word_ids",
    "register_lpt",
    "save_lpt_adapter",
]
