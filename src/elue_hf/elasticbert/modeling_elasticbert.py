"""ElasticBERT: a BERT with an exit (pooler + classifier) on every layer.

Liu et al., "Towards Efficient NLP: A Standard Evaluation and A Strong Baseline" (NAACL 2022).

This file imports only torch, transformers and its sibling configuration, so a model saved with elue-hf can be loaded
from a directory or the Hub with ``trust_remote_code=True`` by people who never installed elue-hf. The state-dict
layout is exactly the one of the original ``fnlp/elasticbert-*`` checkpoints: backbone under ``elasticbert.``, one
pooler per layer at ``elasticbert.encoder.pooler.<layer>`` (absolute 0-based index), heads at the top level
(``classifier`` / ``classifiers.<j>`` / ``predictions.*`` / ``sop_classifier.classifiers.<layer>``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import ModelOutput
from transformers.models.bert.modeling_bert import BertEmbeddings, BertLayer, BertPredictionHeadTransform
from transformers.utils.generic import can_return_tuple

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


@dataclass
class ElasticBertEncoderOutput(ModelOutput):
    last_hidden_state: torch.FloatTensor | None = None
    exit_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    exit_pooled_outputs: tuple[torch.FloatTensor, ...] | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class ElasticBertModelOutput(ModelOutput):
    """Every exit's hidden states and pooled output (exits ordered bottom to top)."""

    last_hidden_state: torch.FloatTensor | None = None
    pooler_output: torch.FloatTensor | None = None
    exit_hidden_states: tuple[torch.FloatTensor, ...] | None = None
    exit_pooled_outputs: tuple[torch.FloatTensor, ...] | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class ElasticBertSequenceClassifierOutput(ModelOutput):
    """
    loss: training loss (combined over exits for a multi-exit model).
    logits: (batch, num_labels) logits of the exit each row used (the last exit without early exit).
    exit_layer: (batch,) 1-based layer at which each row exited.
    all_logits: (batch, num_exits, num_labels) logits of every exit, when every exit ran for every row.
    exit_losses: (num_exits,) per-exit losses (multi-exit training).
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    exit_layer: torch.LongTensor | None = None
    all_logits: torch.FloatTensor | None = None
    exit_losses: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class ElasticBertForPreTrainingOutput(ModelOutput):
    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    sop_logits: torch.FloatTensor | None = None
    exit_mlm_losses: torch.FloatTensor | None = None
    exit_sop_losses: torch.FloatTensor | None = None
    exit_logits: tuple[torch.FloatTensor, ...] | None = None


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
    """The layer stack plus one pooler per exit layer.

    Heads drive it through :meth:`layer_forward` and :meth:`pool` (so wrappers such as LPT can intercept both), or
    call :meth:`forward` to run every layer and collect every exit.
    """

    def __init__(self, config: ElasticBertConfig):
        super().__init__()
        self.config = config
        self.layer = nn.ModuleList([BertLayer(config, layer_idx=i) for i in range(config.num_hidden_layers)])
        self.pooler = _per_layer_list(config, lambda: ElasticBertPooler(config))
        self.exit_layer_indices = list(config.exit_layer_indices)
        self.gradient_checkpointing = False

    def layer_forward(self, i: int, hidden_states: torch.Tensor, attention_mask=None) -> torch.Tensor:
        return self.layer[i](hidden_states, attention_mask)

    def pool(self, i: int, hidden_states: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooler ``i``; ``token_mask`` (batch, seq) marks the tokens a mean pooling averages (ignored for [CLS])."""
        return self.pooler[i](hidden_states, token_mask)

    def forward(
        self, hidden_states, attention_mask=None, output_hidden_states=False, token_mask=None
    ) -> ElasticBertEncoderOutput:
        num_layers = self.config.num_hidden_layers
        equilibrium = (
            self.training
            and self.config.num_output_layers > 1
            and self.config.multi_exit_training == "gradient_equilibrium"
        )
        exits = set(self.exit_layer_indices)
        all_hidden = (hidden_states,) if output_hidden_states else None
        exit_hidden, exit_pooled = [], []
        for i in range(num_layers):
            hidden_states = self.layer_forward(i, hidden_states, attention_mask)
            if i in exits:
                if equilibrium:
                    hidden_states = gradient_rescale(hidden_states, 1.0 / (num_layers - i))
                exit_hidden.append(hidden_states)
                exit_pooled.append(self.pool(i, hidden_states, token_mask))
                if output_hidden_states:
                    all_hidden += (hidden_states,)
                if equilibrium:
                    hidden_states = gradient_rescale(hidden_states, float(num_layers - i - 1))
            elif output_hidden_states:
                all_hidden += (hidden_states,)
        return ElasticBertEncoderOutput(
            last_hidden_state=exit_hidden[-1],
            exit_hidden_states=tuple(exit_hidden),
            exit_pooled_outputs=tuple(exit_pooled),
            hidden_states=all_hidden,
        )


class ElasticBertLMPredictionHeads(nn.Module):
    """Per-layer BERT prediction transforms, one output bias shared by every exit, decoder tied to the embeddings."""

    def __init__(self, config: ElasticBertConfig):
        super().__init__()
        self.transforms = _per_layer_list(config, lambda: BertPredictionHeadTransform(config))
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size, bias=True)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias

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


# ``auto_map`` written on save, so a saved directory loads with ``trust_remote_code=True`` without elue-hf.
AUTO_MAP = {
    "AutoConfig": "configuration_elasticbert.ElasticBertConfig",
    "AutoModel": "modeling_elasticbert.ElasticBertModel",
    "AutoModelForSequenceClassification": "modeling_elasticbert.ElasticBertForSequenceClassification",
    "AutoModelForMaskedLM": "modeling_elasticbert.ElasticBertForMaskedLM",
    "AutoModelForPreTraining": "modeling_elasticbert.ElasticBertForPreTraining",
}


class ElasticBertPreTrainedModel(PreTrainedModel):
    config_class = ElasticBertConfig
    config: ElasticBertConfig
    base_model_prefix = "elasticbert"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_attention_backend = True
    _no_split_modules = ["BertEmbeddings", "BertLayer"]
    _keys_to_ignore_on_load_unexpected = _IGNORE_UNEXPECTED

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
        that names every mismatched key with both shapes (instead of pointing at a printed report)."""
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        except RuntimeError as err:
            if "ignore_mismatched_sizes" not in str(err) or kwargs.get("ignore_mismatched_sizes"):
                raise
            retry = {**kwargs, "ignore_mismatched_sizes": True, "output_loading_info": True}
            _, info = super().from_pretrained(pretrained_model_name_or_path, *args, **retry)
            details = "; ".join(
                f"{key}: checkpoint {tuple(ckpt)} vs model {tuple(model)}" for key, ckpt, model in info["mismatched_keys"]
            )
            raise ValueError(
                f"Checkpoint {pretrained_model_name_or_path} does not fit {cls.__name__} with this config. "
                f"Mismatched shapes: {details}"
            ) from err

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save weights and config; the config's ``auto_map`` covers every ElasticBERT Auto class."""
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {}), **AUTO_MAP}
        return super().save_pretrained(save_directory, *args, **kwargs)


class ElasticBertModel(ElasticBertPreTrainedModel):
    """The ElasticBERT backbone; returns every exit's hidden states and pooled output."""

    def __init__(self, config: ElasticBertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        config.validate_elastic_fields()
        self.embeddings = BertEmbeddings(config)
        self.encoder = ElasticBertEncoder(config)
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

    @can_return_tuple
    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ) -> ElasticBertModelOutput:
        hidden_states, mask = self.embed(input_ids, attention_mask, token_type_ids, position_ids, inputs_embeds)
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        out = self.encoder(
            hidden_states,
            mask,
            output_hidden_states=bool(output_hidden_states),
            token_mask=pooling_token_mask(self.config, attention_mask),
        )
        return ElasticBertModelOutput(
            last_hidden_state=out.last_hidden_state,
            pooler_output=out.exit_pooled_outputs[-1],
            exit_hidden_states=out.exit_hidden_states,
            exit_pooled_outputs=out.exit_pooled_outputs,
            hidden_states=out.hidden_states,
        )


def _check_exit_arguments(config, criterion, entropy_threshold, patience, regression_threshold):
    if criterion not in (None, *EXIT_CRITERIA):
        raise ValueError(f"Unknown exit_criterion {criterion!r}; expected None, 'none' or one of {EXIT_CRITERIA}")
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
        self.dropout = nn.Dropout(dropout)
        if config.num_output_layers == 1:
            self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        else:
            self.classifiers = nn.ModuleList(
                [nn.Linear(config.hidden_size, config.num_labels) for _ in range(config.num_output_layers)]
            )
        self.post_init()

    @property
    def is_static(self) -> bool:
        return self.config.num_output_layers == 1

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
        output_hidden_states=None,
        return_dict=None,
        **kwargs,
    ) -> ElasticBertSequenceClassifierOutput:
        criterion, entropy_threshold, patience, regression_threshold = self._resolve_exit(
            exit_criterion, entropy_threshold, patience, regression_threshold
        )
        if criterion is not None and not self.training:
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
            output_hidden_states=output_hidden_states,
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
            hidden = encoder.layer_forward(i, hidden, mask)
            if i not in exits:
                continue
            logits = self.exit_head(exits[i], encoder.pool(i, hidden, token_mask))
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

    Trims from the end, so wrappers that prepend rows to ``hidden`` (LPT's prompt) stay aligned.
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


class ElasticBertForPreTraining(ElasticBertPreTrainedModel):
    """Multi-exit pre-training heads: masked LM and sentence-order prediction at every exit.

    ``exit_group`` (1-based layer numbers) restricts the loss to a group of exits, as in the paper's grouped
    training (see ``elue_hf.elasticbert.pretraining.exit_groups``); only those exits' heads are computed.
    """

    _tied_weights_keys = {
        "predictions.decoder.weight": "elasticbert.embeddings.word_embeddings.weight",
        "predictions.decoder.bias": "predictions.bias",
    }
    _keys_to_ignore_on_load_unexpected = [r"^classifiers?\.", r"encoder\.layer\.\d+\.", r"embeddings\.position_ids$"]
    with_sop = True

    def __init__(self, config: ElasticBertConfig):
        super().__init__(config)
        self.elasticbert = ElasticBertModel(config)
        self.predictions = ElasticBertLMPredictionHeads(config)
        if self.with_sop:
            self.sop_classifier = ElasticBertSOPHeads(config)
        self.post_init()

    def get_output_embeddings(self):
        return self.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.predictions.decoder = new_embeddings
        self.predictions.bias = new_embeddings.bias

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
        return_dict=None,
        **kwargs,
    ) -> ElasticBertForPreTrainingOutput:
        out = self.elasticbert(
            input_ids,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
        )
        exit_logits, mlm_losses, sop_logits, sop_losses = [], [], [], []
        for j, i in self._selected_exits(exit_group):
            exit_logits.append(self.predictions(i, out.exit_hidden_states[j]))
            if labels is not None:
                mlm_losses.append(F.cross_entropy(exit_logits[-1].view(-1, self.config.vocab_size), labels.view(-1)))
            if self.with_sop:
                sop_logits.append(self.sop_classifier(i, out.exit_pooled_outputs[j]))
                if sentence_order_label is not None:
                    sop_losses.append(F.cross_entropy(sop_logits[-1], sentence_order_label.view(-1)))
        losses = mlm_losses + sop_losses
        return ElasticBertForPreTrainingOutput(
            loss=torch.stack(losses).sum() if losses else None,
            logits=exit_logits[-1] if exit_logits else None,
            sop_logits=sop_logits[-1] if sop_logits else None,
            exit_mlm_losses=torch.stack(mlm_losses) if mlm_losses else None,
            exit_sop_losses=torch.stack(sop_losses) if sop_losses else None,
            exit_logits=tuple(exit_logits),
        )


class ElasticBertForMaskedLM(ElasticBertForPreTraining):
    """Multi-exit masked LM (per-layer transforms, shared bias, tied decoder). Loss = sum over the selected exits.

    ``forward`` takes the same arguments as :class:`ElasticBertForPreTraining` (no sentence-order head runs).
    """

    _keys_to_ignore_on_load_unexpected = ElasticBertForPreTraining._keys_to_ignore_on_load_unexpected + [
        r"^sop_classifier\."
    ]
    with_sop = False


__all__ = [
    "AUTO_MAP",
    "ElasticBertPreTrainedModel",
    "ElasticBertModel",
    "ElasticBertForSequenceClassification",
    "ElasticBertForMaskedLM",
    "ElasticBertForPreTraining",
    "ExitPolicy",
    "exit_layers_from_logits",
    "gradient_rescale",
    "masked_mean",
    "prediction_entropy",
]
