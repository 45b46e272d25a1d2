"""``LPTConfig``: the PEFT configuration of Late Prompt Tuning (Liu et al., Findings EMNLP 2022)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from peft.config import PeftConfig

from .peft_compat import lpt_peft_type

__all__ = ["LPTConfig", "GENERATOR_KINDS", "HEAD_MODES", "check_prompt_layer", "normalize_generator_kind"]

GENERATOR_KINDS = ("npg", "appg", "mppg", "none")
HEAD_MODES = ("cls", "verbalizer", "generative")

_GENERATOR_ALIASES = {
    "npg": "npg",
    "naive": "npg",
    "appg": "appg",
    "avg": "appg",
    "average": "appg",
    "avg_pool": "appg",
    "mppg": "mppg",
    "max": "mppg",
    "max_pool": "mppg",
    "none": "none",
    "static": "none",
    "w/o pg": "none",
}


def normalize_generator_kind(kind: str | None) -> str:
    """Canonical generator name (``npg``, ``appg``, ``mppg`` or ``none``) for a name or alias; ``None`` -> ``none``."""
    if kind is None:
        return "none"
    if not isinstance(kind, str):
        raise TypeError(f"generator must be a string, got {type(kind).__name__}")
    canonical = _GENERATOR_ALIASES.get(kind.strip().lower())
    if canonical is None:
        raise ValueError(
            f"Unknown LPT prompt generator {kind!r}. Choose one of: 'npg' (naive, from the first token), "
            "'appg' (average pooling), 'mppg' (max pooling) or 'none' (a plain learned late prompt)."
        )
    return canonical


@dataclass
class LPTConfig(PeftConfig):
    """Configuration of Late Prompt Tuning (LPT).

    A soft prompt of ``num_prompt_tokens`` vectors is produced per instance by a small prompt generator from the hidden
    states after ``prompt_layer`` frozen layers, prepended to the sequence, and carried through the remaining layers.
    Only the generator (plus the classifier in ``"cls"`` head mode) is trained.

    Args:
        prompt_layer (`int`, *optional*):
            Number of frozen layers run **before** the prompt is inserted (the code convention ``k`` of the original
            ``add_prompt_layer``; the paper calls layer ``k + 1`` the prompt layer). ``0 <= prompt_layer <
            num_hidden_layers``; ``0`` is vanilla prompt tuning. Default: ``num_hidden_layers // 2``.
        num_prompt_tokens (`int`): Prompt length ``l`` (paper: 5 for NPG, 10-20 for the pooling generators, 20 w/o PG).
        generator (`str`): ``"npg"`` (naive), ``"appg"`` (average pooling), ``"mppg"`` (max pooling) or ``"none"``
            (one learned ``l x d`` prompt, identical for all instances). Aliases such as ``"naive"``, ``"avg"`` and
            ``"max"`` are accepted and stored in canonical form.
        bottleneck_size (`int`): Generator bottleneck ``m`` (paper 128); unused by ``"none"``.
        head_mode (`str`): ``"cls"`` (a trainable classifier on the pooled [CLS] state, kept in ``modules_to_save``) or
            ``"verbalizer"`` (the frozen MLM head scores ``label_word_ids`` at the single [MASK] position of a
            template; needs a masked-LM model and ``task_type="SEQ_CLS"``) or ``"generative"`` (decoders, the LPT
            code's GPT-2 mode: the frozen LM head scores ``label_word_ids`` as the token after the context, i.e. at
            the last real token; needs a causal-LM model and ``task_type="SEQ_CLS"``).
        label_word_ids (`list[int]`, *optional*): Vocabulary ids of the label words, in label order (verbalizer and
            generative modes).
        mask_token_id (`int`, *optional*): Id of the [MASK] token the template inserts (verbalizer mode).
        prompt_dropout (`float`, *optional*): Dropout after the generator; default the backbone's
            ``hidden_dropout_prob``.
        token_dim (`int`, *optional*): Hidden size ``d``; filled from the model config.
        num_layers (`int`, *optional*): Number of layers ``L`` (encoder or decoder); filled from the model config.
        target_modules (`list[str]` or `str`, *optional*): Name of the module to wrap (the encoder or the decoder
            stack); inferred for BERT, RoBERTa, ElasticBERT, DeBERTa-v2/v3, GPT-2 and the Llama-style decoders.
        modules_to_save (`list[str]`, *optional*): Extra trainable modules (the classification head is added
            automatically for ``task_type="SEQ_CLS"``).
    """

    prompt_layer: Optional[int] = field(
        default=None, metadata={"help": "Frozen layers before the prompt goes in (k); default num_hidden_layers//2."}
    )
    num_prompt_tokens: int = field(default=5, metadata={"help": "Number of prompt tokens l."})
    generator: str = field(default="npg", metadata={"help": "Prompt generator: npg, appg, mppg or none."})
    bottleneck_size: int = field(default=128, metadata={"help": "Generator bottleneck size m."})
    head_mode: str = field(
        default="cls", metadata={"help": "'cls' (classifier), 'verbalizer' (MLM head) or 'generative' (LM head)."}
    )
    label_word_ids: Optional[list[int]] = field(default=None, metadata={"help": "Label word ids (verbalizer mode)."})
    mask_token_id: Optional[int] = field(default=None, metadata={"help": "[MASK] token id (verbalizer mode)."})
    prompt_dropout: Optional[float] = field(
        default=None, metadata={"help": "Dropout on the generated prompt; default hidden_dropout_prob."}
    )
    token_dim: Optional[int] = field(default=None, metadata={"help": "Hidden size d (filled from the model)."})
    num_layers: Optional[int] = field(default=None, metadata={"help": "Number of layers L (filled)."})
    target_modules: Optional[Union[list[str], str]] = field(
        default=None, metadata={"help": "Module to wrap (encoder / decoder stack); inferred for supported models."}
    )
    modules_to_save: Optional[list[str]] = field(
        default=None, metadata={"help": "Additional trainable modules saved with the adapter."}
    )

    def __post_init__(self):
        super().__post_init__()
        self.peft_type = lpt_peft_type()
        self.generator = normalize_generator_kind(self.generator)
        if self.head_mode not in HEAD_MODES:
            raise ValueError(f"head_mode must be one of {HEAD_MODES}, got {self.head_mode!r}.")
        _check_int("num_prompt_tokens", self.num_prompt_tokens, minimum=1)
        _check_int("bottleneck_size", self.bottleneck_size, minimum=1)
        if self.prompt_layer is not None:
            _check_int("prompt_layer", self.prompt_layer, minimum=0)
        if self.prompt_dropout is not None and not 0.0 <= float(self.prompt_dropout) < 1.0:
            raise ValueError(f"prompt_dropout must be in [0, 1), got {self.prompt_dropout}.")
        if self.head_mode in ("verbalizer", "generative"):
            self._check_label_word_fields()
        if self.label_word_ids is not None:
            self.label_word_ids = [int(i) for i in self.label_word_ids]

    def _check_label_word_fields(self) -> None:
        mode = f"head_mode={self.head_mode!r}"
        if not self.label_word_ids:
            raise ValueError(
                f"{mode} needs label_word_ids (one single-token label word per class, e.g. from "
                "elue_hf.lpt.templates.label_word_ids(tokenizer, ['terrible', 'great']))."
            )
        if len(set(self.label_word_ids)) != len(self.label_word_ids):
            raise ValueError(f"label_word_ids must be distinct, got {self.label_word_ids}.")
        if self.mask_token_id is None and self.head_mode == "verbalizer":
            raise ValueError("head_mode='verbalizer' needs mask_token_id (tokenizer.mask_token_id).")
        if self.task_type is None or str(self.task_type) != "SEQ_CLS":
            raise ValueError(
                f"{mode} scores label words for classification: set task_type='SEQ_CLS' so that "
                f"PeftModelForSequenceClassification routes the call through LPT (got task_type={self.task_type!r})."
            )


def check_prompt_layer(prompt_layer, num_layers: int) -> None:
    """``ValueError`` unless ``0 <= prompt_layer < num_layers`` (k frozen layers run before the prompt goes in)."""
    if prompt_layer is None or not 0 <= prompt_layer < num_layers:
        raise ValueError(
            f"prompt_layer={prompt_layer} is outside the model: it counts the frozen layers run before the prompt is "
            f"inserted and must satisfy 0 <= prompt_layer < {num_layers} (the number of encoder layers); the paper's "
            "prompt layer is PL = prompt_layer + 1."
        )


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
