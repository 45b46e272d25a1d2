"""ElasticBERT configuration.

Imports only ``transformers`` so that a saved model directory is loadable with ``trust_remote_code=True`` by
people who never installed elue-hf.
"""

from transformers import PretrainedConfig

EXIT_CRITERIA = ("entropy", "patience")
MULTI_EXIT_TRAINING = ("gradient_equilibrium", "weighted", "two_stage")
POOLING = ("cls", "mean")
#: ``auto_map`` of every ElasticBERT configuration: with the two files that ``save_pretrained`` copies next to the
#: weights (classes registered with ``register_for_auto_class``), a saved directory loads with
#: ``trust_remote_code=True`` through any of these Auto classes, without elue-hf.
AUTO_MAP = {
    "AutoConfig": "configuration_elasticbert.ElasticBertConfig",
    "AutoModel": "modeling_elasticbert.ElasticBertModel",
    "AutoModelForSequenceClassification": "modeling_elasticbert.ElasticBertForSequenceClassification",
    "AutoModelForMaskedLM": "modeling_elasticbert.ElasticBertForMaskedLM",
    "AutoModelForPreTraining": "modeling_elasticbert.ElasticBertForPreTraining",
}


def check_exit_options(config) -> None:
    """Raise ``ValueError`` naming the field when an exit option of ``config`` is unknown (shared by the multi-exit
    configurations of elue-hf)."""
    if config.exit_criterion is not None and config.exit_criterion not in EXIT_CRITERIA:
        raise ValueError(f"Unknown exit_criterion {config.exit_criterion!r}; expected None or one of {EXIT_CRITERIA}")
    if config.multi_exit_training not in MULTI_EXIT_TRAINING:
        raise ValueError(
            f"Unknown multi_exit_training {config.multi_exit_training!r}; expected one of {MULTI_EXIT_TRAINING}"
        )
    if config.pooling not in POOLING:
        raise ValueError(f"Unknown pooling {config.pooling!r}; expected one of {POOLING}")
    if config.training_stage not in (1, 2):
        raise ValueError(f"training_stage must be 1 or 2, got {config.training_stage!r}")


class ElasticBertConfig(PretrainedConfig):
    r"""Configuration of an ElasticBERT model (Liu et al., 2022, "Towards Efficient NLP").

    The BERT fields keep BERT's names and defaults, except ``layer_norm_eps``, which must always be read from the
    checkpoint's ``config.json`` (1e-8 for ``fnlp/elasticbert-base`` and ``-large``).

    Args:
        max_output_layers (`int`, defaults to 12):
            Length of the per-layer pooler list (and of the pre-training head lists) in the checkpoint.
        num_output_layers (`int`, defaults to 12):
            How many of the top layers carry an exit. ``1`` is the static model (one pooler and one ``classifier`` on
            the last layer); ``num_hidden_layers`` is the dynamic model (an exit on every layer, ``classifiers``).
            A static model of depth k is ``from_pretrained(path, num_hidden_layers=k, num_output_layers=1)``.
        exit_criterion (`str`, *optional*):
            Default early-exit policy at inference: ``None`` (no early exit), ``"entropy"`` or ``"patience"``.
            Values passed to ``forward`` override it.
        entropy_threshold (`float`, defaults to 0.0): exit at the first exit whose prediction entropy (nats) is
            strictly below this value.
        patience (`int`, defaults to 0): exit once this many consecutive exits agree (0 = never exit early).
        regression_threshold (`float`, defaults to 0.0): for regression (``num_labels == 1``), two consecutive exits
            "agree" when their predictions differ by less than this.
        multi_exit_training (`str`, defaults to ``"gradient_equilibrium"``): how the exits are trained together:
            ``"gradient_equilibrium"`` (unweighted sum of exit losses with the gradient re-scaling of Li et al. 2019),
            ``"weighted"`` (PABEE: sum_l l * loss_l / sum_l l, no re-scaling) or ``"two_stage"`` (DeeBERT: stage 1
            trains the backbone and the top exit, stage 2 freezes them and trains the internal exits; see
            ``training_stage``).
        training_stage (`int`, defaults to 1): current stage when ``multi_exit_training == "two_stage"``.
        pooling (`str`, defaults to ``"cls"``): what every exit's pooler reads: ``"cls"`` (the first token's state, as
            in BERT and the original ElasticBERT checkpoints) or ``"mean"`` (the mean of the layer's states over the
            non-padding tokens of ``attention_mask``; all tokens when no mask is given). ``"mean"`` is an elue-hf
            option for backbones trained as mean-pooling sentence encoders (e.g. all-MiniLM-L6-v2); it adds no
            weights, so checkpoints load unchanged either way.
    """

    model_type = "elasticbert"

    def __init__(
        self,
        vocab_size=30522,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.1,
        attention_probs_dropout_prob=0.1,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        pad_token_id=0,
        position_embedding_type="absolute",
        max_output_layers=12,
        num_output_layers=12,
        exit_criterion=None,
        entropy_threshold=0.0,
        patience=0,
        regression_threshold=0.0,
        multi_exit_training="gradient_equilibrium",
        training_stage=1,
        classifier_dropout=None,
        pooling="cls",
        **kwargs,
    ):
        # Legacy fields of the 2021 checkpoints (accepted, unused).
        kwargs.pop("gradient_checkpointing", None)
        kwargs.setdefault("tie_word_embeddings", True)  # the MLM decoder shares the word embeddings
        kwargs["auto_map"] = {**AUTO_MAP, **(kwargs.get("auto_map") or {})}
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.position_embedding_type = position_embedding_type
        self.max_output_layers = max_output_layers
        self.num_output_layers = num_output_layers
        self.exit_criterion = exit_criterion
        self.entropy_threshold = entropy_threshold
        self.patience = patience
        self.regression_threshold = regression_threshold
        self.multi_exit_training = multi_exit_training
        self.training_stage = training_stage
        self.classifier_dropout = classifier_dropout
        self.pooling = pooling
        # BERT layer fields (transformers' BertLayer reads them).
        self.is_decoder = False
        self.add_cross_attention = False
        self.validate_elastic_fields()

    def validate_elastic_fields(self):
        """Raise ``ValueError`` naming the field when the exit layout is impossible."""
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if not 1 <= self.num_hidden_layers <= self.max_output_layers:
            raise ValueError(
                f"num_hidden_layers={self.num_hidden_layers} is out of range: the checkpoint has "
                f"max_output_layers={self.max_output_layers} layers with exits (1 <= k <= {self.max_output_layers})"
            )
        if not 1 <= self.num_output_layers <= self.num_hidden_layers:
            raise ValueError(
                f"num_output_layers={self.num_output_layers} must be between 1 and num_hidden_layers="
                f"{self.num_hidden_layers}: pass num_output_layers=1 for the static model of depth "
                f"{self.num_hidden_layers}, or num_output_layers={self.num_hidden_layers} for an exit on each layer"
            )
        check_exit_options(self)

    @property
    def exit_layer_indices(self) -> list[int]:
        """0-based indices of the layers that carry an exit (the top ``num_output_layers`` layers)."""
        start = self.num_hidden_layers - self.num_output_layers
        return list(range(start, self.num_hidden_layers))


__all__ = ["AUTO_MAP", "ElasticBertConfig", "check_exit_options"]
