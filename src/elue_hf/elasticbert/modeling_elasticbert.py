"""ElasticBERT: a BERT with an exit (pooler + classifier) on every layer.

Liu et al., "Towards Efficient NLP: A Standard Evaluation and A Strong Baseline" (NAACL 2022).

This file imports only torch, transformers and its sibling configuration, so a model saved with elue-hf can be loaded
from a directory or the Hub with ``trust_remote_code=True`` by people who never installed elue-hf. The state-dict
layout is exactly the one of the original ``fnlp/elasticbert-*`` checkpoints: backbone under ``elasticbert.``, one
pooler per layer at ``elasticbert.encoder.pooler.<layer>`` (absolute 0-based index), heads at the top level
(``classifier`` / ``classifiers.<j>`` / ``predictions.*`` / ``sop_classifier.classifiers.<layer>``).
"""

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.core_model_loading import WeightRenaming
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import MaskedLMOutput, ModelOutput
from transformers.models.bert.modeling_bert import (
    BertEmbeddings,
    BertLayer,
    BertPredictionHeadTransform,
    BertSelfAttention,
)
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
from transformers.utils.generic import can_return_tuple
from transformers.utils.output_capturing import capture_outputs

from .configuration_elasticbert import EXIT_CRITERIA, ElasticBertConfig

# --------------------------------------------------------------------------------------------------------------------
# Gradient equilibrium (Li et al., 2019): identity forward, gradient scaled by a constant backward.
# --------------------------------------------------------------------------------------------------------------------


class _GradientRescale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output * ctx.scale, None


def gradient_rescale(x: torch.Tensor, scale: float) -> torch.Tensor:
    """Identity in the forward pass; multiplies the incoming gradient by ``scale`` in the backward pass."""
    return _GradientRescale.apply(x, scale)


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of ``softmax(logits)`` over the last dimension, computed stably."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    return -(log_p.exp() * log_p).sum(-1)


# --------------------------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------------------------

_HIDDEN_STATES_DOC = """hidden_states (`tuple(torch.FloatTensor)`, *optional*, with `output_hidden_states=True`):
            The embeddings' output and every layer's output, each (batch, seq_len, hidden_size), as in BERT.
        attentions (`tuple(torch.FloatTensor)`, *optional*, returned when `output_attentions=True` with the eager
            attention): every layer's attention probabilities, each (batch, num_heads, seq_len, seq_len)."""


@dataclass
class ElasticBertModelOutput(ModelOutput):
    """Output of [`ElasticBertModel`]: the top exit's states plus every exit's (exits ordered bottom to top).

    Args:
        last_hidden_state (`torch.FloatTensor` of shape `(batch, seq_len, hidden_size)`):
            Output of the last layer (the top exit's hidden states).
        pooler_output (`torch.FloatTensor` of shape `(batch, hidden_size)`, *optional*):
            The top exit's pooled [CLS] output (`None` when built with `add_pooling_layer=False`).
        exit_hidden_states (`tuple(torch.FloatTensor)`):
            Hidden states read by each exit, one (batch, seq_len, hidden_size) tensor per exit.
        exit_pooled_outputs (`tuple(torch.FloatTensor)`, *optional*):
            Each exit's pooled output, (batch, hidden_size) (`None` without poolers).
        {hidden}
    """

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    exit_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    exit_pooled_outputs: tuple[torch.FloatTensor, ...] | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class ElasticBertSequenceClassifierOutput(ModelOutput):
    """Output of [`ElasticBertForSequenceClassification`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` is given):
            Training loss (combined over exits for a multi-exit model, see `config.multi_exit_training`).
        logits (`torch.FloatTensor` of shape `(batch, num_labels)`):
            Logits of the exit each row used (the last exit without early exit).
        exit_layer (`torch.LongTensor` of shape `(batch,)`):
            1-based layer at which each row exited.
        all_logits (`torch.FloatTensor` of shape `(batch, num_exits, num_labels)`, *optional*):
            Logits of every exit, when every exit ran for every row (no early exit).
        exit_losses (`torch.FloatTensor` of shape `(num_exits,)`, *optional*):
            Per-exit losses (multi-exit training with `labels`).
        {hidden}
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    exit_layer: torch.LongTensor | None = None
    all_logits: torch.FloatTensor | None = None
    exit_losses: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class ElasticBertForPreTrainingOutput(ModelOutput):
    """Output of [`ElasticBertForPreTraining`] (heads of the selected exits only, see `exit_group`).

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when `labels` or `sentence_order_label` is
            given): sum of the selected exits' masked-LM and sentence-order losses.
        logits (`torch.FloatTensor` of shape `(batch, seq_len, vocab_size)`):
            Masked-LM logits of the top selected exit.
        sop_logits (`torch.FloatTensor` of shape `(batch, 2)`):
            Sentence-order logits of the top selected exit.
        exit_mlm_losses (`torch.FloatTensor` of shape `(num_selected_exits,)`, *optional*):
            Masked-LM loss of each selected exit (with `labels`).
        exit_sop_losses (`torch.FloatTensor` of shape `(num_selected_exits,)`, *optional*):
            Sentence-order loss of each selected exit (with `sentence_order_label`).
        exit_logits (`tuple(torch.FloatTensor)`):
            Masked-LM logits of each selected exit, bottom to top.
        {hidden}
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    sop_logits: torch.FloatTensor | None = None
    exit_mlm_losses: torch.FloatTensor | None = None
    exit_sop_losses: torch.FloatTensor | None = None
    exit_logits: tuple[torch.FloatTensor, ...] | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


for _output_class in (ElasticBertModelOutput, ElasticBertSequenceClassifierOutput, ElasticBertForPreTrainingOutput):
    _output_class.__doc__ = _output_class.__doc__.replace("{hidden}", _HIDDEN_STATES_DOC)

# Keyword arguments every ``forward`` accepts besides its own (transformers' shared ones: output_attentions,
# output_hidden_states, num_items_in_batch, ...). ``return_dict`` is consumed by the output decorators.
_SHARED_FORWARD_KWARGS = frozenset(TransformersKwargs.__annotations__)


def _reject_unknown_kwargs(model: nn.Module, kwargs: dict) -> None:
    unknown = sorted(set(kwargs) - _SHARED_FORWARD_KWARGS)
    if unknown:
        raise TypeError(
            f"{type(model).__name__}.forward() got unexpected keyword argument(s) {unknown}; besides its own "
            f"arguments it accepts {sorted(_SHARED_FORWARD_KWARGS)}"
        )


# --------------------------------------------------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------------------------------------------------


def _per_layer_list(config: ElasticBertConfig, factory) -> nn.ModuleList:
    """A list of ``max_output_layers`` slots indexed by absolute layer; slots without an exit hold ``None``."""
    exits = set(config.exit_layer_indices)
    return nn.ModuleList([factory() if i in exits else None for i in range(config.max_output_layers)])


def masked_mean(hidden_states: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of ``hidden_states`` (batch, seq, d) over the tokens where ``token_mask`` (batch, seq) is non-zero.

    Every token counts when ``token_mask`` is None; a row without any valid token gets zeros.
    """
    if token_mask is None:
        return hidden_states.mean(1)
    if token_mask.shape != hidden_states.shape[:2]:
        raise ValueError(
            f"token_mask of shape {tuple(token_mask.shape)} does not match hidden states of shape "
            f"{tuple(hidden_states.shape)}: expected (batch, seq) = {tuple(hidden_states.shape[:2])}"
        )
    weights = token_mask.to(hidden_states.dtype).unsqueeze(-1)
    return (hidden_states * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def pooling_token_mask(config: ElasticBertConfig, attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """The (batch, seq) mask the exits' mean pooling reads, or None ([CLS] pooling, or no mask: every token)."""
    if config.pooling != "mean" or attention_mask is None:
        return None
    if attention_mask.dim() != 2:
        raise ValueError(
            f'pooling="mean" averages over the tokens of a 2-D (batch, seq) attention_mask; got a '
            f"{attention_mask.dim()}-D mask of shape {tuple(attention_mask.shape)}"
        )
    return attention_mask


class ElasticBertPooler(nn.Module):
    """Dense + tanh on the [CLS] state (``config.pooling="cls"``) or on the masked token mean (``"mean"``)."""

    def __init__(self, config: ElasticBertConfig):
        super().__init__()
        self.pooling = config.pooling
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        summary = masked_mean(hidden_states, token_mask) if self.pooling == "mean" else hidden_states[:, 0]
        return self.activation(self.dense(summary))


class ElasticBertEncoder(nn.Module):
    """The layer stack plus one pooler per exit layer, driven one layer at a time.

    It is a *multi-exit encoder* (it implements ``elue_hf.multi_exit.MultiExitEncoder`` structurally, since this
    file imports nothing from elue-hf): ``num_layers``, ``exit_layer_indices`` (0-based layers with an exit),
    ``run_layer(i, hidden_states, attention_mask)``, ``exit_states(i, hidden_states)`` (what exit ``i``'s heads read
    from layer ``i``'s output) and ``pool(i, states)``. The models only use these, so a module wrapping the encoder
    and offering the same methods (e.g. one that inserts extra rows into the sequence) drives every head unchanged.
    :meth:`forward` runs every layer and collects every exit.
    """

    def __init__(self, config: ElasticBertConfig, add_pooling_layer: bool = True):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList([BertLayer(config, layer_idx=i) for i in range(config.num_hidden_layers)])
        self.pooler = _per_layer_list(config, lambda: ElasticBertPooler(config)) if add_pooling_layer else None
        self.exit_layer_indices = list(config.exit_layer_indices)
        self.gradient_checkpointing = False

    @property
    def num_layers(self) -> int:
        return len(self.layer)

    def run_layer(self, i: int, hidden_states: torch.Tensor, attention_mask=None, **kwargs) -> torch.Tensor:
        return self.layer[i](hidden_states, attention_mask, **kwargs)

    def exit_states(self, i: int, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states

    def pool(self, i: int, hidden_states: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooler ``i``; ``token_mask`` (batch, seq) marks the tokens a mean pooling averages (ignored for [CLS])."""
        if self.pooler is None:
            raise ValueError("This ElasticBERT encoder was built with add_pooling_layer=False: it has no exit pooler")
        return self.pooler[i](hidden_states, token_mask)

    def exit_modules(self, i: int) -> list[nn.Module]:
        """The encoder modules exit ``i``'s pooled output depends on: layers ``0..i`` and pooler ``i``."""
        pooler = [] if self.pooler is None else [self.pooler[i]]
        return [*self.layer[: i + 1], *pooler]

    def forward(self, hidden_states, attention_mask=None, token_mask=None, **kwargs) -> ElasticBertModelOutput:
        pool = self.pooler is not None
        return run_exits(self, self.config, hidden_states, attention_mask, pool=pool, token_mask=token_mask, **kwargs)


def run_exits(
    encoder, config, hidden_states, attention_mask=None, pool: bool = True, token_mask=None, **layer_kwargs
):
    """Run every layer of a multi-exit ``encoder`` and collect each exit's states (and pooled output).

    ``token_mask`` (batch, seq) is what a mean pooling averages over (see :func:`pooling_token_mask`).

    In training with several exits and ``multi_exit_training="gradient_equilibrium"``, the gradient reaching layer
    ``i`` from the exits above is rescaled as in Li et al. (2019). Returns an :class:`ElasticBertModelOutput`
    without ``hidden_states`` / ``attentions`` (the model records those).
    """
    num_layers = encoder.num_layers
    equilibrium = (
        encoder.training and config.num_output_layers > 1 and config.multi_exit_training == "gradient_equilibrium"
    )
    exits = set(encoder.exit_layer_indices)
    exit_hidden, exit_pooled = [], []
    for i in range(num_layers):
        hidden_states = encoder.run_layer(i, hidden_states, attention_mask, **layer_kwargs)
        if i in exits:
            if equilibrium:
                hidden_states = gradient_rescale(hidden_states, 1.0 / (num_layers - i))
            exit_hidden.append(encoder.exit_states(i, hidden_states))
            if pool:
                exit_pooled.append(encoder.pool(i, exit_hidden[-1], token_mask))
            if equilibrium:
                hidden_states = gradient_rescale(hidden_states, float(num_layers - i - 1))
    return ElasticBertModelOutput(
        last_hidden_state=exit_hidden[-1],
        pooler_output=exit_pooled[-1] if pool else None,
        exit_hidden_states=tuple(exit_hidden),
        exit_pooled_outputs=tuple(exit_pooled) if pool else None,
    )


class ElasticBertLMPredictionHeads(nn.Module):
    """Per-layer BERT prediction transforms, one output bias shared by every exit, decoder tied to the embeddings."""

    def __init__(self, config: ElasticBertConfig):
        super().__init__()
        self.transforms = _per_layer_list(config, lambda: BertPredictionHeadTransform(config))
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, i: int, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transforms[i](hidden_states))


class ElasticBertSOPHeads(nn.Module):
    """Per-layer sentence-order-prediction classifiers on each layer's pooled output."""

    def __init__(self, config: ElasticBertConfig):
        super().__init__()
        self.classifiers = _per_layer_list(config, lambda: nn.Linear(config.hidden_size, 2))

    def forward(self, i: int, pooled_output: torch.Tensor) -> torch.Tensor:
        return self.classifiers[i](pooled_output)


# --------------------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------------------

# Keys of the original checkpoints that a given head does not use: ignored silently on load.
_IGNORE_UNEXPECTED = [
    r"^predictions\.",
    r"^sop_classifier\.",
    r"^classifiers?\.",
    r"encoder\.layer\.\d+\.",
    r"encoder\.pooler\.\d+\.",
    r"embeddings\.position_ids$",
]


class ElasticBertPreTrainedModel(PreTrainedModel):
    config_class = ElasticBertConfig
    config: ElasticBertConfig
    base_model_prefix = "elasticbert"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    _no_split_modules = ["BertEmbeddings", "BertLayer"]
    _keys_to_ignore_on_load_unexpected = _IGNORE_UNEXPECTED
    _can_record_outputs = {"hidden_states": BertLayer, "attentions": BertSelfAttention}

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, BertEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            init.zeros_(module.token_type_ids)
        elif isinstance(module, ElasticBertLMPredictionHeads):
            init.zeros_(module.bias)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """``PreTrainedModel.from_pretrained``; a checkpoint whose tensor shapes do not fit raises a ``ValueError``
        that names every mismatched key with both shapes (unless ``ignore_mismatched_sizes=True``)."""
        return load_checking_shapes(super().from_pretrained, cls.__name__, pretrained_model_name_or_path, *args,
                                    **kwargs)


def load_checking_shapes(load, class_name: str, pretrained_model_name_or_path, *args, **kwargs):
    """``load(path, ...)`` (a ``from_pretrained``) raising a ``ValueError`` that names every key whose shape does not
    fit ``class_name`` with both shapes, unless ``ignore_mismatched_sizes=True`` is passed."""
    if kwargs.get("ignore_mismatched_sizes"):
        return load(pretrained_model_name_or_path, *args, **kwargs)
    want_info = kwargs.pop("output_loading_info", False)
    model, info = load(
        pretrained_model_name_or_path, *args, **kwargs, ignore_mismatched_sizes=True, output_loading_info=True
    )
    if info["mismatched_keys"]:
        details = "; ".join(
            f"{key}: checkpoint {tuple(ckpt)} vs model {tuple(ours)}" for key, ckpt, ours in info["mismatched_keys"]
        )
        raise ValueError(
            f"Checkpoint {pretrained_model_name_or_path} does not fit {class_name} with this config. "
            f"Mismatched shapes: {details}"
        )
    return (model, info) if want_info else model


class ElasticBertModel(ElasticBertPreTrainedModel):
    """The ElasticBERT backbone; returns every exit's hidden states and (with poolers) pooled output.

    ``add_pooling_layer=False`` builds no exit pooler (``pooler_output`` / ``exit_pooled_outputs`` are ``None``).
    ``output_hidden_states`` / ``output_attentions`` work as in BERT (attentions need the eager attention).
    """

    def __init__(self, config: ElasticBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        config.validate_elastic_fields()
        self.add_pooling_layer = add_pooling_layer
        self.embeddings = BertEmbeddings(config)
        self.encoder = ElasticBertEncoder(config, add_pooling_layer)
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    def embed(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        """Embeddings and the bidirectional attention mask (None, bool or float, as the attention backend needs)."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        hidden_states = self.embeddings(
            input_ids=input_ids, token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds
        )
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask)
        return hidden_states, mask

    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ElasticBertModelOutput:
        _reject_unknown_kwargs(self, kwargs)
        hidden_states, mask = self.embed(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        # ``self.encoder`` may be a wrapper offering the same step methods: always drive it through them
        token_mask = pooling_token_mask(self.config, attention_mask)
        pool = self.add_pooling_layer
        return run_exits(self.encoder, self.config, hidden_states, mask, pool=pool, token_mask=token_mask, **kwargs)


def _criterion_fix(criterion) -> str:
    close = difflib.get_close_matches(str(criterion).lower(), EXIT_CRITERIA, n=1, cutoff=0.6)
    example = close[0] if close else "entropy"
    settings = "entropy_threshold=0.3" if example == "entropy" else "patience=2"
    return (f"{f'did you mean {example!r}? ' if close else ''}e.g. model(**batch, exit_criterion={example!r}, "
            f"{settings}), or exit_criterion=None for no early exit")


def _check_exit_arguments(config, criterion, entropy_threshold, patience, regression_threshold):
    if criterion not in (None, *EXIT_CRITERIA):
        raise ValueError(
            f"Unknown exit_criterion {criterion!r}; expected None, 'none' or one of {EXIT_CRITERIA}: "
            f"{_criterion_fix(criterion)}"
        )
    if criterion is None:
        return
    num_exits = config.num_output_layers
    if num_exits == 1:
        raise ValueError(
            f"exit_criterion={criterion!r} needs a multi-exit model, but this model has num_output_layers=1 (static)"
        )
    if criterion == "entropy":
        if config.num_labels == 1:
            raise ValueError("Entropy-based early exit is undefined for regression (num_labels=1); use 'patience'")
        if not (isinstance(entropy_threshold, (int, float)) and math.isfinite(entropy_threshold)) or (
            entropy_threshold < 0
        ):
            raise ValueError(f"entropy_threshold must be a finite number >= 0, got {entropy_threshold!r}")
    else:
        if isinstance(patience, bool) or not isinstance(patience, int) or not 0 <= patience < num_exits:
            raise ValueError(
                f"patience must be an integer between 0 and {num_exits - 1} (the model has {num_exits} exits), "
                f"got {patience!r}"
            )
        if not (isinstance(regression_threshold, (int, float)) and math.isfinite(regression_threshold)) or (
            regression_threshold < 0
        ):
            raise ValueError(f"regression_threshold must be a finite number >= 0, got {regression_threshold!r}")


# --------------------------------------------------------------------------------------------------------------------
# Loading a classifier's exit heads for a different set of exits (e.g. the static model of depth k)
# --------------------------------------------------------------------------------------------------------------------


def _head_key(layer: int, exit_layers: list[int]) -> str:
    """Prefix of the classifier of absolute layer ``layer`` in a model whose exits sit on ``exit_layers``."""
    return "classifier" if len(exit_layers) == 1 else f"classifiers.{exit_layers.index(layer)}"


def exit_head_key_mapping(source_layers: list[int], target_layers: list[int]) -> dict[str, str]:
    """``key_mapping`` (regex -> replacement, transformers' renaming) that gives each exit of a model on
    ``target_layers`` the classifier a checkpoint trained for the same layer (its exits on ``source_layers``, 0-based).

    Empty when the names already agree. Every source head goes through a temporary name
    ``classifiers.layer<i>.`` first, so the renamings (applied in order, chaining) never collide; the temporary
    names of the heads the model does not use are ignored on load like any unused ``classifiers.*`` key.
    Re-indexing several exits (``classifiers.<j>`` to ``classifiers.<j - d>``) is refused: transformers' loader
    puts a renamed key back under its original name when that name is also a key of the model, so an unused head
    would land on a used slot.
    """
    if all(_head_key(i, source_layers) == _head_key(i, target_layers) for i in target_layers):
        return {}
    if len(target_layers) > 1:
        raise ValueError(
            f"exits on layers {[i + 1 for i in target_layers]} would take other slots than in the checkpoint "
            f"(exits on layers {[i + 1 for i in source_layers]}): load it as saved and read all_logits, or one "
            "static exit at a time with num_hidden_layers=k, num_output_layers=1"
        )
    mapping = {rf"^{re.escape(_head_key(i, source_layers))}\.": f"classifiers.layer{i}." for i in source_layers}
    mapping.update({rf"^classifiers\.layer{i}\.": f"{_head_key(i, target_layers)}." for i in target_layers})
    return mapping


def _saved_exit_layers(load_config) -> list[int] | None:
    """0-based layers whose trained exit heads the checkpoint being loaded holds (from its ``config.json``), or None
    when it holds no sequence-classification heads (a pre-trained backbone, a masked LM, not an ElasticBERT)."""
    path = load_config.pretrained_model_name_or_path
    if path is None:
        return None
    download = {k: v for k, v in dict(load_config.download_kwargs or {}).items() if k != "tqdm_class"}
    saved, _ = PretrainedConfig.get_config_dict(path, **download)
    classifier = any(a.endswith("ForSequenceClassification") for a in saved.get("architectures") or [])
    if saved.get("model_type") != "elasticbert" or not classifier:
        return None
    layers, exits = int(saved.get("num_hidden_layers", 12)), int(saved.get("num_output_layers", 12))
    return list(range(layers - exits, layers))


def _check_exit_heads(path, source_layers: list[int], config: ElasticBertConfig) -> None:
    missing = [i + 1 for i in config.exit_layer_indices if i not in source_layers]
    if missing:
        raise ValueError(
            f"{path} holds trained exit heads for layer(s) {[i + 1 for i in source_layers]} only, but this model "
            f"(num_hidden_layers={config.num_hidden_layers}, num_output_layers={config.num_output_layers}) asks for "
            f"exits on layer(s) {missing}: for the static model of depth k load it with num_hidden_layers=k, "
            "num_output_layers=1 and k one of those layers"
        )


class ElasticBertForSequenceClassification(ElasticBertPreTrainedModel):
    """ElasticBERT with a classifier (static: one ``classifier``) or one classifier per exit (``classifiers``).

    Dynamic early exit is chosen at call time (``exit_criterion="entropy"`` / ``"patience"``) and runs batched: rows
    that have exited leave the batch, so the remaining layers run on fewer rows. In training mode every exit runs.
    """

    def __init__(self, config: ElasticBertConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.elasticbert = ElasticBertModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self._build_exit_heads(config, dropout)
        self.post_init()

    @staticmethod
    def exit_layers_from_logits(all_logits: torch.Tensor, exit_layers, criterion, **policy_kwargs) -> torch.Tensor:
        """The exit this model's early exit picks for each row, from every exit's logits of one full pass
        (:func:`exit_layers_from_logits`): how callers that hold the model but not this module get its rule."""
        return exit_layers_from_logits(all_logits, exit_layers, criterion, **policy_kwargs)

    def _build_exit_heads(self, config, dropout: float) -> None:
        """One shared dropout and a classifier per exit (``classifiers``), or one ``classifier`` (static)."""
        self.dropout = nn.Dropout(dropout)
        if config.num_output_layers == 1:
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        else:
            self.classifiers = nn.ModuleList(
                [nn.Linear(config.hidden_size, config.num_labels) for _ in range(config.num_output_layers)]
            )

    @property
    def is_static(self) -> bool:
        return self.config.num_output_layers == 1

    @staticmethod
    def _load_pretrained_model(model, state_dict, checkpoint_files, load_config, expected_keys=None):
        """transformers' loading step, with each exit taking the pooler and classifier the checkpoint trained for
        the same layer: ``from_pretrained(path, num_hidden_layers=k, num_output_layers=1)`` on a multi-exit
        classifier gets exit k's own head (``classifiers.<j>`` renamed to ``classifier``), whatever form the
        config takes (keyword overrides, ``config=``, Auto classes). An exit the checkpoint has no head for is a
        ``ValueError``, never a random head. Saving writes the model's own layout (the renaming is not reverted)."""
        source_layers = _saved_exit_layers(load_config)
        renamings = []
        if source_layers is not None:
            _check_exit_heads(load_config.pretrained_model_name_or_path, source_layers, model.config)
            mapping = exit_head_key_mapping(source_layers, model.config.exit_layer_indices)
            renamings = [WeightRenaming(source_patterns=k, target_patterns=v) for k, v in mapping.items()]
            weights = [*renamings, *(load_config.weight_mapping or [])]
            load_config = dataclasses.replace(load_config, weight_mapping=weights)
        info, offload = PreTrainedModel._load_pretrained_model(
            model, state_dict, checkpoint_files, load_config, expected_keys
        )
        if renamings:
            model._weight_conversions = [c for c in model._weight_conversions if all(c is not r for r in renamings)]
        return info, offload

    def exit_head(self, j: int, pooled_output: torch.Tensor) -> torch.Tensor:
        """Logits of exit ``j`` (0-based among the exits) from its pooled output."""
        head = self.classifier if self.is_static else self.classifiers[j]
        return head(self.dropout(pooled_output))

    def _loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.num_labels == 1:
            return F.mse_loss(logits.squeeze(-1), labels.to(logits.dtype).view(-1))
        return F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))

    def _combine_exit_losses(self, losses: torch.Tensor) -> torch.Tensor:
        mode = self.config.multi_exit_training
        if mode == "gradient_equilibrium":
            return losses.sum()
        if mode == "weighted":
            weights = torch.tensor(
                [i + 1 for i in self.elasticbert.encoder.exit_layer_indices], dtype=losses.dtype, device=losses.device
            )
            return (weights * losses).sum() / weights.sum()
        # two_stage
        return losses[-1] if self.config.training_stage == 1 else losses[:-1].sum()

    def _resolve_exit(self, exit_criterion, entropy_threshold, patience, regression_threshold):
        cfg = self.config
        criterion = cfg.exit_criterion if exit_criterion is None else exit_criterion
        if criterion == "none":
            criterion = None
        entropy_threshold = cfg.entropy_threshold if entropy_threshold is None else entropy_threshold
        patience = cfg.patience if patience is None else patience
        regression_threshold = cfg.regression_threshold if regression_threshold is None else regression_threshold
        _check_exit_arguments(cfg, criterion, entropy_threshold, patience, regression_threshold)
        if criterion == "patience" and patience == 0:
            criterion = None  # patience 0 = no early exit
        return criterion, entropy_threshold, patience, regression_threshold

    @can_return_tuple
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        exit_criterion: str | None = None,
        entropy_threshold: float | None = None,
        patience: int | None = None,
        regression_threshold: float | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ElasticBertSequenceClassifierOutput:
        _reject_unknown_kwargs(self, kwargs)
        criterion, entropy_threshold, patience, regression_threshold = self._resolve_exit(
            exit_criterion, entropy_threshold, patience, regression_threshold
        )
        if criterion is not None and not self.training:
            requested = [name for name in ("output_hidden_states", "output_attentions") if kwargs.get(name)]
            if requested:
                raise ValueError(
                    f"{requested} cannot be combined with early exit (exit_criterion={criterion!r}): rows leave the "
                    "batch at different layers. Run without early exit to get every layer's states."
                )
            return self._early_exit_forward(
                input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, labels,
                criterion, entropy_threshold, patience, regression_threshold,
            )  # fmt: skip

        out = self.elasticbert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        all_logits = torch.stack([self.exit_head(j, p) for j, p in enumerate(out.exit_pooled_outputs)], dim=1)
        logits = all_logits[:, -1]
        loss = exit_losses = None
        if labels is not None:
            if self.is_static:
                loss = self._loss(logits, labels)
            else:
                exit_losses = torch.stack([self._loss(all_logits[:, j], labels) for j in range(all_logits.shape[1])])
                loss = self._combine_exit_losses(exit_losses)
        exit_layer = torch.full((logits.shape[0],), self.config.num_hidden_layers, device=logits.device)
        return ElasticBertSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            exit_layer=exit_layer,
            all_logits=all_logits,
            exit_losses=exit_losses,
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )

    def _early_exit_forward(
        self, input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds, labels,
        criterion, entropy_threshold, patience, regression_threshold,
    ) -> ElasticBertSequenceClassifierOutput:  # fmt: skip
        hidden, mask = self.elasticbert.embed(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        encoder = self.elasticbert.encoder
        batch_size, num_layers = hidden.shape[0], self.config.num_hidden_layers
        policy = ExitPolicy(criterion, entropy_threshold, patience, regression_threshold, self.num_labels == 1)
        rows = torch.arange(batch_size, device=hidden.device)  # original index of each still-active row
        logits_out = hidden.new_zeros(batch_size, self.num_labels)
        exit_layer = torch.full((batch_size,), num_layers, dtype=torch.long, device=hidden.device)
        exits = {layer: j for j, layer in enumerate(encoder.exit_layer_indices)}
        token_mask = pooling_token_mask(self.config, attention_mask)
        for i in range(num_layers):
            hidden = encoder.run_layer(i, hidden, mask)
            if i not in exits:
                continue
            logits = self.exit_head(exits[i], encoder.pool(i, encoder.exit_states(i, hidden), token_mask))
            done = policy.step(logits, last=i == num_layers - 1)
            if done.any():
                logits_out[rows[done]] = logits[done].to(logits_out.dtype)
                exit_layer[rows[done]] = i + 1
                keep = ~done
                if not keep.any():
                    break
                hidden, rows = hidden[keep], rows[keep]
                policy.select(keep)
                if mask is not None and mask.shape[0] > 1:
                    mask = mask[keep]
                hidden, mask = _trim_padding(hidden, mask, attention_mask, rows)
                if token_mask is not None:  # the remaining rows, cut to the positions the trim kept
                    token_mask = attention_mask[rows][:, : mask.shape[-1] if mask is not None else None]
        loss = self._loss(logits_out, labels) if labels is not None else None
        return ElasticBertSequenceClassifierOutput(loss=loss, logits=logits_out, exit_layer=exit_layer)


def _trim_padding(hidden, mask, attention_mask, rows):
    """Drop trailing positions that are padding for every remaining row (masked keys that nothing reads).

    Trims from the end, so encoders that prepend rows to ``hidden`` (e.g. prompt vectors) stay aligned.
    """
    if mask is None or attention_mask is None or attention_mask.dim() != 2:
        return hidden, mask
    valid = attention_mask[rows].bool().any(0)
    length = int(valid.nonzero().max()) + 1 if valid.any() else mask.shape[-1]
    drop = mask.shape[-1] - length
    if drop <= 0:
        return hidden, mask
    queries = mask.shape[-2]
    return hidden[:, : hidden.shape[1] - drop], mask[..., : queries - drop if queries > 1 else 1, :length]


class ExitPolicy:
    """Per-row early-exit decisions, fed one exit's logits at a time (rows may be dropped with :meth:`select`).

    - entropy: exit at the first exit whose softmax entropy is strictly below ``entropy_threshold``;
    - patience: count consecutive exits agreeing with the previous one (same argmax, or for regression
      ``|y_i - y_{i-1}| < regression_threshold``); exit when the count reaches ``patience``.
    The last exit always exits.
    """

    def __init__(self, criterion, entropy_threshold=0.0, patience=0, regression_threshold=0.0, regression=False):
        self.criterion = criterion
        self.entropy_threshold = entropy_threshold
        self.patience = patience
        self.regression_threshold = regression_threshold
        self.regression = regression
        self.previous = None
        self.streak = None

    def step(self, logits: torch.Tensor, last: bool = False) -> torch.Tensor:
        if self.criterion == "entropy":
            done = prediction_entropy(logits) < self.entropy_threshold
        else:
            current = logits.squeeze(-1) if self.regression else logits.argmax(-1)
            if self.previous is None:
                self.streak = torch.zeros(current.shape[0], dtype=torch.long, device=current.device)
            else:
                if self.regression:
                    agree = (current - self.previous).abs() < self.regression_threshold
                else:
                    agree = current == self.previous
                self.streak = torch.where(agree, self.streak + 1, torch.zeros_like(self.streak))
            self.previous = current
            done = self.streak >= self.patience
        return torch.ones_like(done) if last else done

    def select(self, keep: torch.Tensor) -> None:
        if self.previous is not None:
            self.previous, self.streak = self.previous[keep], self.streak[keep]


def exit_layers_from_logits(all_logits: torch.Tensor, exit_layers, criterion, **policy_kwargs) -> torch.Tensor:
    """Reference decision from a full pass: the 1-based exit layer of each row given every exit's logits.

    ``all_logits`` is (batch, num_exits, num_labels); ``exit_layers`` the 1-based layer of each exit.
    """
    regression = all_logits.shape[-1] == 1
    policy = ExitPolicy(criterion, regression=regression, **policy_kwargs)
    chosen = torch.full((all_logits.shape[0],), int(exit_layers[-1]), dtype=torch.long)
    decided = torch.zeros(all_logits.shape[0], dtype=torch.bool)
    for j, layer in enumerate(exit_layers):
        done = policy.step(all_logits[:, j], last=j == len(exit_layers) - 1) & ~decided
        chosen[done] = int(layer)
        decided |= done
    return chosen


class _ElasticBertMaskedLMBase(ElasticBertPreTrainedModel):
    """Shared by the masked-LM and pre-training models: per-exit MLM heads (per-layer transforms, one shared output
    bias, decoder tied to the word embeddings) over the exits selected by ``exit_group``."""

    _tied_weights_keys = {
        "predictions.decoder.weight": "elasticbert.embeddings.word_embeddings.weight",
        "predictions.decoder.bias": "predictions.bias",
    }

    def __init__(self, config: ElasticBertConfig, add_pooling_layer: bool):
        super().__init__(config)
        self.elasticbert = ElasticBertModel(config, add_pooling_layer=add_pooling_layer)
        self.predictions = ElasticBertLMPredictionHeads(config)

    def get_output_embeddings(self):
        return self.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.predictions.decoder = new_embeddings

    def _selected_exits(self, exit_group) -> list[tuple[int, int]]:
        """(exit position j, absolute layer i) pairs whose heads run."""
        layers = self.elasticbert.encoder.exit_layer_indices
        if exit_group is None:
            return list(enumerate(layers))
        wanted = {int(layer) - 1 for layer in exit_group}
        unknown = wanted - set(layers)
        if unknown:
            raise ValueError(
                f"exit_group names layers without an exit: {sorted(u + 1 for u in unknown)}; "
                f"exits are on layers {[i + 1 for i in layers]}"
            )
        return [(j, i) for j, i in enumerate(layers) if i in wanted]

    def _mlm_exits(self, out: ElasticBertModelOutput, selected, labels) -> tuple[list, list]:
        """Each selected exit's MLM logits and (with ``labels``) loss."""
        logits, losses = [], []
        for j, i in selected:
            logits.append(self.predictions(i, out.exit_hidden_states[j]))
            if labels is not None:
                losses.append(F.cross_entropy(logits[-1].view(-1, self.config.vocab_size), labels.view(-1)))
        return logits, losses


class ElasticBertForPreTraining(_ElasticBertMaskedLMBase):
    """Multi-exit pre-training heads: masked LM and sentence-order prediction at every exit.

    ``exit_group`` (1-based layer numbers) restricts the loss to a group of exits, as in the paper's grouped
    training (see ``elue_hf.elasticbert.pretraining.exit_groups``); only those exits' heads are computed.
    """

    _keys_to_ignore_on_load_unexpected = [r"^classifiers?\.", r"encoder\.layer\.\d+\.", r"embeddings\.position_ids$"]

    def __init__(self, config: ElasticBertConfig):
        super().__init__(config, add_pooling_layer=True)
        self.sop_classifier = ElasticBertSOPHeads(config)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        sentence_order_label=None,
        exit_group=None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ElasticBertForPreTrainingOutput:
        _reject_unknown_kwargs(self, kwargs)
        selected = self._selected_exits(exit_group)
        out = self.elasticbert(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, **kwargs,
        )  # fmt: skip
        exit_logits, mlm_losses = self._mlm_exits(out, selected, labels)
        sop_logits = [self.sop_classifier(i, out.exit_pooled_outputs[j]) for j, i in selected]
        sop_losses = []
        if sentence_order_label is not None:
            sop_losses = [F.cross_entropy(logits, sentence_order_label.view(-1)) for logits in sop_logits]
        losses = mlm_losses + sop_losses
        return ElasticBertForPreTrainingOutput(
            loss=torch.stack(losses).sum() if losses else None,
            logits=exit_logits[-1],
            sop_logits=sop_logits[-1],
            exit_mlm_losses=torch.stack(mlm_losses) if mlm_losses else None,
            exit_sop_losses=torch.stack(sop_losses) if sop_losses else None,
            exit_logits=tuple(exit_logits),
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )


class ElasticBertForMaskedLM(_ElasticBertMaskedLMBase):
    """Multi-exit masked LM (per-layer transforms, shared bias, tied decoder); returns a ``MaskedLMOutput``.

    ``loss`` is the sum of the selected exits' MLM losses (``exit_group``: 1-based layers; default every exit) and
    ``logits`` the top selected exit's. The exit poolers are not built (no MLM loss reaches them).
    """

    _keys_to_ignore_on_load_unexpected = [
        r"^classifiers?\.",
        r"^sop_classifier\.",
        r"encoder\.layer\.\d+\.",
        r"encoder\.pooler\.\d+\.",
        r"embeddings\.position_ids$",
    ]

    def __init__(self, config: ElasticBertConfig):
        super().__init__(config, add_pooling_layer=False)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        labels=None,
        exit_group=None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> MaskedLMOutput:
        _reject_unknown_kwargs(self, kwargs)
        selected = self._selected_exits(exit_group)
        out = self.elasticbert(
            input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, position_ids=position_ids,
            inputs_embeds=inputs_embeds, **kwargs,
        )  # fmt: skip
        exit_logits, losses = self._mlm_exits(out, selected, labels)
        return MaskedLMOutput(
            loss=torch.stack(losses).sum() if losses else None,
            logits=exit_logits[-1],
            hidden_states=out.hidden_states,
            attentions=out.attentions,
        )


__all__ = [
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
]
