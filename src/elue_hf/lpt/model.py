"""``LPTModel``: the PEFT tuner (``BaseTuner``) wrapping the backbone's encoder or decoder stack in an ``LPTLayer``."""

from __future__ import annotations

import re
from functools import partial

import torch
import torch.nn.functional as F
from peft.tuners.tuners_utils import BaseTuner
from torch import nn
from transformers.modeling_outputs import SequenceClassifierOutput

from .backbones import (
    BACKBONES,
    CausalDecoderBackbone,
    backbone_for,
    backbone_for_model_type,
    context_source_from_labels,
    last_valid_index,
)
from .config import LPTConfig, check_prompt_layer
from .layer import LPTLayer

__all__ = ["LPTModel", "SUPPORTED_MODEL_TYPES", "masked_lm_parts", "mask_positions"]

#: Backbones LPT knows how to wrap, and the name of the module it wraps (the encoder, or the decoder stack).
SUPPORTED_MODEL_TYPES = {
    "bert": ["encoder"],
    "roberta": ["encoder"],
    "elasticbert": ["encoder"],
    "multiexit": ["multiexit.encoder"],  # elue_hf.multiexit: not the backbone's own ``encoder`` underneath
    **{model_type: [backbone.target_module] for backbone in BACKBONES for model_type in backbone.model_types},
}

#: Task types per family: encoders classify; decoders classify or model language.
_DECODER_TASKS = ("SEQ_CLS", "CAUSAL_LM")


def _config_value(model_config: dict, *names: str):
    """The first of ``names`` set in a model config dict (GPT-2 says ``n_embd``, the others ``hidden_size``)."""
    return next((model_config[name] for name in names if model_config.get(name) is not None), None)


def mask_positions(input_ids: torch.Tensor, mask_token_id: int) -> torch.Tensor:
    """(b,) index of the single [MASK] token in each row; a clear error when a row has none or several."""
    is_mask = input_ids == mask_token_id
    counts = is_mask.sum(dim=1)
    if bool((counts != 1).any()):
        bad = torch.nonzero(counts != 1).flatten().tolist()
        raise ValueError(
            f"Verbalizer mode needs exactly one mask token (id {mask_token_id}) per example; rows {bad[:10]} have "
            f"{counts[bad[:10]].tolist()}. Encode inputs with elue_hf.lpt.templates.encode_with_template."
        )
    return is_mask.int().argmax(dim=1)


def masked_lm_parts(model: nn.Module):
    """(body, MLM head) of a masked-LM model: ``BertForMaskedLM`` and legacy ``DebertaV2ForMaskedLM`` (``cls``),
    ``RobertaForMaskedLM`` (``lm_head``), non-legacy ``DebertaV2ForMaskedLM`` (``lm_predictions``) or
    ``ElasticBertForMaskedLM`` (the top exit's ``predictions`` head).

    The head maps (b, t, d) hidden states to (b, t, V) vocabulary logits.
    """
    body = getattr(model, "base_model", model)
    head = None
    if isinstance(getattr(model, "cls", None), nn.Module) and hasattr(model.cls, "predictions"):
        head = model.cls
    elif isinstance(getattr(model, "lm_head", None), nn.Module):
        head = model.lm_head
    elif isinstance(getattr(model, "lm_predictions", None), nn.Module):  # DeBERTa-v2, non-legacy head
        head = partial(model.lm_predictions, word_embeddings=body.embeddings.word_embeddings)
    elif hasattr(getattr(model, "predictions", None), "transforms"):  # ElasticBERT: per-layer MLM heads
        top = body.encoder.exit_layer_indices[-1]
        head = partial(model.predictions, top)
    if head is None or body is model:
        raise ValueError(
            "head_mode='verbalizer' needs a masked-LM backbone whose frozen MLM head scores the label words (e.g. "
            "BertForMaskedLM, RobertaForMaskedLM, DebertaV2ForMaskedLM, ElasticBertForMaskedLM); got "
            f"{type(model).__name__}. Use "
            "head_mode='cls' with a *ForSequenceClassification model otherwise (e.g. for the MiniLM, which ships no "
            "MLM head)."
        )
    return body, head


def _check_task_type(config: LPTConfig, model_type: str | None) -> None:
    """Decoders run ``SEQ_CLS`` or ``CAUSAL_LM``; the encoders ``SEQ_CLS`` (or no task type, for a bare encoder)."""
    task = None if config.task_type is None else str(config.task_type)
    if isinstance(backbone_for_model_type(model_type), CausalDecoderBackbone):
        if task not in _DECODER_TASKS:
            raise ValueError(
                f"LPT on the decoder {model_type!r} needs task_type 'SEQ_CLS' or 'CAUSAL_LM', got {task!r}."
            )
    elif task == "CAUSAL_LM":
        raise ValueError(f"task_type='CAUSAL_LM' needs a decoder backbone (GPT-2, Llama, ...); got {model_type!r}.")


def _multi_exit_config(model_config: dict) -> dict:
    """A multi-exit model's config dict (``elue_hf.multiexit``) as LPT reads it: the backbone's sizes, the exits."""
    backbone = model_config.get("backbone_config") or {}
    return {**model_config, "hidden_size": _config_value(backbone, "hidden_size", "dim"),
            "num_hidden_layers": _config_value(backbone, "num_hidden_layers", "n_layers"),
            "num_output_layers": len(model_config.get("exit_layers") or [1])}


def _exit_classifier_names(model_config: dict) -> list[str]:
    """modules_to_save entries for the per-exit classifiers of ElasticBERT and the multi-exit models (the static
    ``classifier`` PEFT adds itself)."""
    num_exits = int(model_config.get("num_output_layers") or 1)
    return [f"classifiers.{j}" for j in range(num_exits)] if num_exits > 1 else []


class LPTModel(BaseTuner):
    """Late Prompt Tuning (Liu et al., 2022) as a PEFT tuner. Create it with ``get_peft_model(model, LPTConfig(...))``.

    The backbone's encoder (or decoder stack) is replaced by an :class:`LPTLayer`; everything else stays in place and
    frozen. In ``"verbalizer"`` head mode the forward scores the label words with the frozen MLM head at the [MASK]
    position, in ``"generative"`` mode (decoders) with the frozen LM head after the last token (training loss:
    cross-entropy over the full vocabulary with the label word as target; logits: restricted to the label words).
    With ``task_type="CAUSAL_LM"`` and ``labels`` the prompt is generated from the context before the first labelled
    token; :meth:`generate` builds it once from the prompt ids. :meth:`unload` puts the original module back; merging
    is impossible (instance-dependent prompts).
    """

    prefix: str = "lpt_"
    tuner_layer_cls = LPTLayer
    target_module_mapping = SUPPORTED_MODEL_TYPES

    # -- injection -----------------------------------------------------------------------------------------------------

    def _pre_injection_hook(self, model: nn.Module, config: LPTConfig, adapter_name: str) -> None:
        if config.head_mode == "verbalizer":
            masked_lm_parts(model)
        model_type = getattr(getattr(model, "config", None), "model_type", None)
        if config.head_mode == "generative" and (
            not isinstance(backbone_for_model_type(model_type), CausalDecoderBackbone)
            or model.get_output_embeddings() is None
        ):
            raise ValueError(
                "head_mode='generative' scores the label words with a decoder's frozen LM head: use a causal-LM model "
                f"(GPT2LMHeadModel, LlamaForCausalLM, ...); got {type(model).__name__}."
            )

    def _prepare_adapter_config(self, peft_config: LPTConfig, model_config: dict) -> LPTConfig:
        model_type = model_config.get("model_type")
        if model_type == "multiexit":
            model_config = _multi_exit_config(model_config)
        if peft_config.target_modules is None:
            if model_type not in self.target_module_mapping:
                raise ValueError(
                    f"LPT supports BERT, RoBERTa and ElasticBERT encoders, DeBERTa-v2/v3, GPT-2 and Llama-style "
                    f"decoders (model_type one of {sorted(self.target_module_mapping)}); got "
                    f"model_type={model_type!r}. For another BERT-like encoder with a `layer` list, pass "
                    "target_modules=['<name of the encoder module>']."
                )
            peft_config.target_modules = list(self.target_module_mapping[model_type])
        _check_task_type(peft_config, model_type)
        hidden_size = _config_value(model_config, "hidden_size", "n_embd")
        num_layers = _config_value(model_config, "num_hidden_layers", "n_layer")
        if peft_config.token_dim is None:
            peft_config.token_dim = hidden_size
        elif hidden_size is not None and peft_config.token_dim != hidden_size:
            raise ValueError(
                f"LPTConfig.token_dim={peft_config.token_dim} but the model's hidden size is {hidden_size}."
            )
        if peft_config.token_dim is None:
            raise ValueError("Cannot infer the hidden size: set LPTConfig.token_dim.")
        peft_config.num_layers = num_layers
        if peft_config.prompt_layer is None:
            if num_layers is None:
                raise ValueError("Cannot infer the number of layers: set LPTConfig.prompt_layer.")
            peft_config.prompt_layer = num_layers // 2
        if num_layers is not None:
            check_prompt_layer(peft_config.prompt_layer, num_layers)
        if model_type in ("elasticbert", "multiexit") and peft_config.head_mode == "cls" and (
            peft_config.task_type == "SEQ_CLS"
        ):
            saved = list(peft_config.modules_to_save or [])
            extra = [name for name in _exit_classifier_names(model_config) if name not in saved]
            if extra:
                peft_config.modules_to_save = saved + extra
        if model_type == "deberta-v2" and peft_config.head_mode == "cls" and peft_config.task_type == "SEQ_CLS":
            # DeBERTa's ContextPooler is not pre-trained (created with the classifier): it trains with the head
            saved = list(peft_config.modules_to_save or [])
            peft_config.modules_to_save = saved if "pooler" in saved else saved + ["pooler"]
        if peft_config.prompt_dropout is None:
            # BERT-likes: hidden_dropout_prob; GPT-2: embd_pdrop (the LPT code's choice); Llama-likes have none
            dropout = _config_value(model_config, "hidden_dropout_prob", "embd_pdrop")
            peft_config.prompt_dropout = float(dropout or 0.0)
        return peft_config

    @staticmethod
    def _check_target_module_exists(peft_config: LPTConfig, key: str):
        targets = peft_config.target_modules
        if isinstance(targets, str):
            return re.fullmatch(targets, key) is not None
        return key in targets or any(key.endswith(f".{t}") for t in targets)

    def _create_and_replace(
        self,
        peft_config: LPTConfig,
        adapter_name: str,
        target: nn.Module,
        target_name: str,
        parent: nn.Module,
        current_key: str,
        parameter_name: str | None = None,
    ) -> None:
        if isinstance(target, LPTLayer):
            target.update_layer(adapter_name, peft_config)
            return
        if backbone_for(target) is None and not isinstance(getattr(target, "layer", None), nn.ModuleList):
            raise ValueError(
                f"LPT wraps an encoder module that owns a `layer` ModuleList, or a supported decoder stack; "
                f"'{current_key}' is a {type(target).__name__}. Unsupported backbone: use BERT, RoBERTa, "
                "ElasticBERT, DeBERTa-v2/v3, GPT-2 or a Llama-style decoder."
            )
        new_module = LPTLayer(target, adapter_name, peft_config)
        if adapter_name not in self.active_adapters:
            new_module.requires_grad_(False)
        self._replace_module(parent, target_name, new_module, target)

    def _post_injection_hook(self, model: nn.Module, config: LPTConfig, adapter_name: str) -> None:
        wrapped = [name for name, module in model.named_modules() if isinstance(module, LPTLayer)]
        if len(wrapped) != 1:
            raise ValueError(f"LPT must wrap exactly one encoder, but target_modules matched {wrapped}.")

    def _replace_module(self, parent: nn.Module, child_name: str, new_module: nn.Module, child: nn.Module) -> None:
        # BaseTuner._replace_module assumes Linear-like children (``new_module.weight = child.weight``), which an
        # encoder does not have; a plain swap is all LPT needs (the generator is created on the encoder's device).
        setattr(parent, child_name, new_module)

    @classmethod
    def _remove_adapter_name_from_key(cls, key: str, adapter_name: str) -> str:
        # generator weights sit deeper than LoRA's ``lora_A.<adapter>.weight``: drop the adapter name right after
        # ``lpt_generator`` so checkpoints are independent of the adapter name (``...lpt_generator.proj_up.weight``)
        marker = f".{LPTLayer.adapter_layer_names[0]}.{adapter_name}."
        if marker in key:
            return key.replace(marker, f".{LPTLayer.adapter_layer_names[0]}.", 1)
        return super()._remove_adapter_name_from_key(key, adapter_name)

    def _check_merge_allowed(self):
        raise ValueError(
            "LPT cannot be merged into the base weights: its prompt is generated per instance at run time. "
            "Use unload() to get the base model back."
        )

    # -- forward -------------------------------------------------------------------------------------------------------

    @property
    def _active_config(self) -> LPTConfig:
        return self.peft_config[self.active_adapters[0]]

    def forward(self, *args, **kwargs):
        if self._active_config.head_mode == "verbalizer":
            return self._verbalizer_forward(*args, **kwargs)
        if self._active_config.head_mode == "generative":
            return self._generative_forward(*args, **kwargs)
        labels = kwargs.get("labels")
        if str(self._active_config.task_type) == "CAUSAL_LM" and labels is not None and not args:
            # causal-LM training: the prompt is generated from the context, i.e. the tokens before the first label
            keep = kwargs.get("attention_mask")
            keep = torch.ones_like(labels, dtype=torch.bool) if keep is None else keep.bool()
            with self._lpt_layer().context_source(context_source_from_labels(labels, keep)):
                return self.model(*args, **kwargs)
        return self.model(*args, **kwargs)

    def generate(self, *args, **kwargs):
        """``generate()`` of the wrapped model; the late prompt is built once from the context (the prompt ids)."""
        with self._lpt_layer().generation_session():
            return self.model.generate(*args, **kwargs)

    def _lpt_layer(self) -> LPTLayer:
        return next(module for module in self.model.modules() if isinstance(module, LPTLayer))

    def _verbalizer_forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        config = self._active_config
        if input_ids is None or inputs_embeds is not None:
            raise ValueError("Verbalizer mode finds the [MASK] token in input_ids; pass input_ids, not inputs_embeds.")
        body, head = masked_lm_parts(self.model)
        positions = mask_positions(input_ids, config.mask_token_id)
        outputs = body(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        mask_states = outputs.last_hidden_state[rows, positions]
        vocab_logits = head(mask_states[:, None, :])[:, 0]
        return _label_word_output(vocab_logits, config.label_word_ids, labels, outputs, return_dict)

    def _generative_forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ):
        """Decoders: the frozen LM head's next-token logits at the last real token, restricted to the label words."""
        if input_ids is None:
            raise ValueError("Generative mode reads the context from input_ids; pass input_ids.")
        keep = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        last = last_valid_index(keep)
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=True, **kwargs)
        rows = torch.arange(input_ids.shape[0], device=input_ids.device)
        return _label_word_output(outputs.logits[rows, last], self._active_config.label_word_ids, labels, outputs,
                                  return_dict)


def _label_word_output(vocab_logits, label_word_ids, labels, outputs, return_dict):
    """Label-word classification: loss = cross-entropy over the full vocabulary with the label word as target
    (docs/lpt.md, "Classification heads"); logits = the vocabulary logits restricted to the label words (in order)."""
    words = torch.tensor(label_word_ids, device=vocab_logits.device)
    loss = None
    if labels is not None:
        loss = F.cross_entropy(vocab_logits.float(), words[labels.to(words.device).long()])
    output = SequenceClassifierOutput(
        loss=loss,
        logits=vocab_logits[:, words],
        hidden_states=getattr(outputs, "hidden_states", None),
        attentions=getattr(outputs, "attentions", None),
    )
    return output.to_tuple() if return_dict is False else output
