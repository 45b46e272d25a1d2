"""Configuration of a multi-exit model over any supported encoder (``model_type="multiexit"``).

The backbone keeps its own configuration (``backbone_config``, a RoBERTa / XLM-R / CamemBERT / ELECTRA / DistilBERT /
DeBERTa-v2 / ModernBERT config, saved nested in ``config.json``); this configuration adds where the exits sit, what
their heads look like (copied from the family's own classification head) and the early-exit / training options,
under the same names as :class:`elue_hf.elasticbert.ElasticBertConfig`.
"""

from __future__ import annotations

from transformers import AutoConfig, PretrainedConfig

from ..elasticbert.configuration_elasticbert import check_exit_options

__all__ = ["MultiExitConfig"]


def _backbone(config) -> PretrainedConfig:
    if isinstance(config, PretrainedConfig):
        return config
    if not isinstance(config, dict) or "model_type" not in config:
        raise ValueError("backbone_config must be a transformers config or a dict with its 'model_type'")
    fields = dict(config)
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


class MultiExitConfig(PretrainedConfig):
    r"""A backbone configuration plus exits.

    Args:
        backbone_config (`PretrainedConfig` or `dict`): the encoder's own configuration (its ``model_type`` picks the
            adapter, see ``elue_hf.multiexit.adapters``).
        exit_layers (`list[int]`, *optional*): 1-based layers carrying an exit, ascending; the top layer always has
            one (default: every layer). ``[k]`` with ``num_hidden_layers=k`` is the static model of depth k.
        pooling (`str`): ``"cls"`` (first token) or ``"mean"`` (mean over the non-padding tokens) before each exit.
        pooler_activation (`str`), pooler_dropout (`float`), pooler_norm (`bool`), pooler_bias (`bool`): each exit's
            pooler, ``norm(act(dense(dropout(pooled))))``, shaped like the family's own classification head.
        classifier_dropout (`float`): dropout between an exit's pooler and its classifier.
        exit_criterion, entropy_threshold, patience, regression_threshold, multi_exit_training, training_stage: as in
            ``ElasticBertConfig``.
    """

    model_type = "multiexit"
    sub_configs = {"backbone_config": AutoConfig}

    def __init__(
        self,
        backbone_config=None,
        exit_layers=None,
        pooling="cls",
        pooler_activation="tanh",
        pooler_dropout=0.0,
        pooler_norm=False,
        pooler_bias=True,
        classifier_dropout=0.1,
        exit_criterion=None,
        entropy_threshold=0.0,
        patience=0,
        regression_threshold=0.0,
        multi_exit_training="gradient_equilibrium",
        training_stage=1,
        **kwargs,
    ):
        self.backbone_config = _backbone(backbone_config if backbone_config is not None else {"model_type": "roberta"})
        layers = self.backbone_config.num_hidden_layers
        self.exit_layers = sorted({int(k) for k in exit_layers} | {layers}) if exit_layers else [*range(1, layers + 1)]
        self.pooling = pooling
        self.pooler_activation = pooler_activation
        self.pooler_dropout = float(pooler_dropout)
        self.pooler_norm = bool(pooler_norm)
        self.pooler_bias = bool(pooler_bias)
        self.classifier_dropout = float(classifier_dropout)
        self.exit_criterion = exit_criterion
        self.entropy_threshold = entropy_threshold
        self.patience = patience
        self.regression_threshold = regression_threshold
        self.multi_exit_training = multi_exit_training
        self.training_stage = training_stage
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)
        self.validate_exit_fields()

    # -- what the multi-exit heads (shared with ElasticBERT) read ------------------------------------------------------

    @property
    def backbone_type(self) -> str:
        return self.backbone_config.model_type

    @property
    def num_hidden_layers(self) -> int:
        return self.backbone_config.num_hidden_layers

    @num_hidden_layers.setter
    def num_hidden_layers(self, value: int) -> None:
        """Truncate the backbone to ``value`` layers (``from_pretrained(path, num_hidden_layers=k)``); the exits above
        are dropped and layer k gets one."""
        value = int(value)
        backbone = self.backbone_config
        if isinstance(getattr(backbone, "layer_types", None), list) and len(backbone.layer_types) != value:
            if len(backbone.layer_types) < value:
                raise ValueError(f"cannot grow the backbone from {len(backbone.layer_types)} to {value} layers")
            backbone.layer_types = backbone.layer_types[:value]  # ModernBERT: the kept layers keep their type
        backbone.num_hidden_layers = value
        if hasattr(self, "exit_layers"):
            self.exit_layers = sorted({k for k in self.exit_layers if k <= value} | {value})

    @property
    def hidden_size(self) -> int:
        return self.backbone_config.hidden_size

    @property
    def vocab_size(self) -> int:
        return self.backbone_config.vocab_size

    @vocab_size.setter
    def vocab_size(self, value: int) -> None:
        """The backbone's vocabulary size (``resize_token_embeddings`` sets it)."""
        self.backbone_config.vocab_size = int(value)

    @property
    def layer_norm_eps(self) -> float:
        config = self.backbone_config
        return float(getattr(config, "layer_norm_eps", None) or getattr(config, "norm_eps", None) or 1e-12)

    @layer_norm_eps.setter
    def layer_norm_eps(self, value: float) -> None:
        """The epsilon of the backbone's norms (``layer_norm_eps``, ModernBERT's ``norm_eps``) and the exits'."""
        config = self.backbone_config
        setattr(config, "norm_eps" if hasattr(config, "norm_eps") else "layer_norm_eps", float(value))

    @property
    def num_output_layers(self) -> int:
        return len(self.exit_layers)

    @property
    def exit_layer_indices(self) -> list[int]:
        """0-based indices of the layers carrying an exit."""
        return [k - 1 for k in self.exit_layers]

    def validate_exit_fields(self) -> None:
        """Raise ``ValueError`` naming the field when the exit layout or an option is impossible."""
        layers = self.num_hidden_layers
        if any(not 1 <= k <= layers for k in self.exit_layers):
            raise ValueError(f"exit_layers {self.exit_layers} must lie in 1..{layers} (the backbone's layers)")
        if self.exit_layers[-1] != layers:
            raise ValueError(f"the top layer ({layers}) must carry an exit; exit_layers={self.exit_layers}")
        check_exit_options(self)
