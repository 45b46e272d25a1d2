"""ELUE FLOPs and parameter counts (docs/elue.md, "FLOPs rules" and "Parameter counting").

- :mod:`.primitives`: the MACs maths every route shares (Linear, LayerNorm, attention, a BERT layer, an exit);
- :mod:`.analytic`: closed-form MACs/FLOPs of encoder classifiers, vectorised over instances;
- :mod:`.hooks`: the same numbers from forward hooks on a running model (rules see a :class:`.hook_call.HookCall`);
- :mod:`.module_spec`: the ``modules`` column of a submission and the declarative module spec;
- :mod:`.params`: parameter counts;
- :mod:`.architectures`: other encoder families (DistilBERT, ALBERT, ELECTRA, DeBERTa-v2, ModernBERT) keyed by
  ``config.model_type``, and the generic ``FlopCounterMode`` route for the rest.

The published baseline FLOPs reproduced with these counters are in :mod:`elue_hf.elue.score.baselines` (they need
the reference curve's token statistics, and data flows flops -> score, never back).
"""

from __future__ import annotations

from . import primitives as _primitives
from .analytic import ModelDims, bert_classifier_flops, dims_from_config, elasticbert_flops, model_flops, shape_flops
from .architectures import EncoderShape, UnsupportedArchitecture, encoder_shape, flops_shape
from .hooks import (
    ElueFlopsCounter,
    HookCall,
    SharedMacs,
    default_rules,
    hooked_flops_by_length,
    register_rule,
)
from .module_spec import (
    MODULE_KINDS,
    ModulesError,
    encoder_modules,
    entry_macs,
    format_modules,
    module_spec_from_config,
    modules_macs,
    modules_macs_column,
    parse_modules,
    validate_module_spec,
)
from .params import count_parameters, encoder_classifier_params
from .primitives import *  # noqa: F401,F403  (the MACs maths)

__all__ = [
    *_primitives.__all__,
    "ModelDims",
    "dims_from_config",
    "elasticbert_flops",
    "bert_classifier_flops",
    "model_flops",
    "shape_flops",
    "EncoderShape",
    "UnsupportedArchitecture",
    "encoder_shape",
    "flops_shape",
    "SharedMacs",
    "ElueFlopsCounter",
    "HookCall",
    "register_rule",
    "default_rules",
    "hooked_flops_by_length",
    "MODULE_KINDS",
    "ModulesError",
    "validate_module_spec",
    "module_spec_from_config",
    "parse_modules",
    "format_modules",
    "entry_macs",
    "modules_macs",
    "modules_macs_column",
    "encoder_modules",
    "count_parameters",
    "encoder_classifier_params",
]
