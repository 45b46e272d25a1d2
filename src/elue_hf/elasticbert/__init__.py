"""ElasticBERT: a BERT that can exit at any layer (static or dynamic early exit).

Importing this package registers ElasticBERT with the transformers Auto classes (:func:`register_elasticbert`).
"""

from .configuration_elasticbert import ElasticBertConfig
from .modeling_elasticbert import (
    ElasticBertForMaskedLM,
    ElasticBertForPreTraining,
    ElasticBertForPreTrainingOutput,
    ElasticBertForSequenceClassification,
    ElasticBertModel,
    ElasticBertModelOutput,
    ElasticBertPreTrainedModel,
    ElasticBertSequenceClassifierOutput,
    ExitPolicy,
    exit_layers_from_logits,
    gradient_rescale,
    masked_mean,
    prediction_entropy,
)
from .registration import register_elasticbert
from .training import compute_metrics, make_compute_metrics, per_exit_metrics, preprocess_logits_for_metrics

register_elasticbert()

__all__ = [
    "ElasticBertConfig",
    "ElasticBertPreTrainedModel",
    "ElasticBertModel",
    "ElasticBertForSequenceClassification",
    "ElasticBertForMaskedLM",
    "ElasticBertForPreTraining",
    "ElasticBertModelOutput",
    "ElasticBertSequenceClassifierOutput",
    "ElasticBertForPreTrainingOutput",
    "ExitPolicy",
    "exit_layers_from_logits",
    "gradient_rescale",
    "masked_mean",
    "prediction_entropy",
    "register_elasticbert",
    "compute_metrics",
    "make_compute_metrics",
    "per_exit_metrics",
    "preprocess_logits_for_metrics",
    "convert_bert_to_elasticbert",
]


def __getattr__(name):  # heavier helpers load on first use
    if name == "convert_bert_to_elasticbert":
        from .convert import convert_bert_to_elasticbert

        return convert_bert_to_elasticbert
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
