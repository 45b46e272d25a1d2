"""ELUE FLOPs and parameter counts (docs/elue.md, "FLOPs rules" and "Parameter counting").

- :mod:`.analytic`: closed-form MACs/FLOPs of encoder classifiers, vectorised over instances;
- :mod:`.hooks`: the same numbers from forward hooks on a running model;
- :mod:`.module_spec`: the ``modules`` column of a submission and the declarative module spec;
- :mod:`.params`: parameter counts;
- :mod:`.architectures`: other encoder families (DistilBERT, ALBERT, ELECTRA, DeBERTa-v2, ModernBERT) keyed by
  ``config.model_type``, and the generic ``FlopCounterMode`` route for the rest.

The published baseline FLOPs reproduced with these counters are in :mod:`elue_hf.elue.score.baselines` (they need
the reference curve's token statistics, and data flows flops -> score, never back).
"""

from __future__ import annotations

from .analytic import (
    MFLOPS,
    ModelDims,
    attention_macs,
    bert_classifier_flops,
    dims_from_config,
    elasticbert_flops,
    embedding_macs,
    encoder_classifier_macs,
    exit_macs,
    layer_macs,
    layer_norm_macs,
    linear_macs,
    macs_to_mflops,
    model_flops,
    shape_flops,
)
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

__all__ = [
    "MFLOPS",
    "macs_to_mflops",
    "linear_macs",
    "layer_norm_macs",
    "embedding_macs",
    "attention_macs",
    "layer_macs",
    "exit_macs",
    "encoder_classifier_macs",
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
