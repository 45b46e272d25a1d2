"""Multi-exit models over the encoders people fine-tune today (RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT,
DeBERTa-v2/v3, ModernBERT): the backbone's own modules, one exit per chosen layer, the package's
``MultiExitEncoder`` interface (docs/multi-exit.md).

Importing this package registers ``model_type="multiexit"`` with the Auto classes (:func:`register_multiexit`).
"""

from .adapters import adapter_for, supported_model_types
from .configuration_multiexit import MultiExitConfig
from .modeling_multiexit import (
    MultiExitEncoder,
    MultiExitForSequenceClassification,
    MultiExitModel,
    MultiExitPooler,
    MultiExitPreTrainedModel,
)
from .registration import register_multiexit

register_multiexit()

__all__ = [
    "MultiExitConfig",
    "MultiExitEncoder",
    "MultiExitForSequenceClassification",
    "MultiExitModel",
    "MultiExitPooler",
    "MultiExitPreTrainedModel",
    "adapter_for",
    "convert_to_multi_exit",
    "register_multiexit",
    "supported_model_types",
]


def __getattr__(name):
    if name == "convert_to_multi_exit":
        from .convert import convert_to_multi_exit

        return convert_to_multi_exit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
