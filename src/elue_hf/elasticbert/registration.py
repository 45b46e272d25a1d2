"""Register ElasticBERT with the transformers Auto classes (idempotent) and for remote code on save."""

from __future__ import annotations

from .configuration_elasticbert import ElasticBertConfig
from .modeling_elasticbert import (
    ElasticBertForMaskedLM,
    ElasticBertForPreTraining,
    ElasticBertForSequenceClassification,
    ElasticBertModel,
)

_AUTO_CLASSES = {
    "AutoModel": ElasticBertModel,
    "AutoModelForSequenceClassification": ElasticBertForSequenceClassification,
    "AutoModelForMaskedLM": ElasticBertForMaskedLM,
    "AutoModelForPreTraining": ElasticBertForPreTraining,
}
_registered = False


def register_elasticbert() -> None:
    """Make ``AutoConfig`` / ``AutoModel*`` resolve ``model_type="elasticbert"``. Safe to call many times."""
    global _registered
    if _registered:
        return
    import transformers

    transformers.AutoConfig.register("elasticbert", ElasticBertConfig, exist_ok=True)
    for auto_name, model_cls in _AUTO_CLASSES.items():
        getattr(transformers, auto_name).register(ElasticBertConfig, model_cls, exist_ok=True)
    # save_pretrained copies the configuration/modeling files next to the weights; the config's auto_map
    # (configuration_elasticbert.AUTO_MAP) names every class in them.
    ElasticBertConfig.register_for_auto_class("AutoConfig")
    for auto_name, model_cls in _AUTO_CLASSES.items():
        model_cls.register_for_auto_class(auto_name)
    _registered = True
