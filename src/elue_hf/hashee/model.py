"""Turn a transformers model into its HashEE version, and save / load it.

``apply_hashee(model, table)`` works in place on BERT, RoBERTa and (static) ElasticBERT models of any head, on the
encoder of BART, T5 and ``EncoderDecoderModel`` (bert2bert) for ``generate()``, in training and inference alike:

- the exit table becomes a persistent buffer ``hashee_exit_table`` of the model (saved with the weights);
- the model gets a new config object of class ``HashEE<BaseConfig>`` (:mod:`.configuration_hashee`: same settings,
  ``model_type = "hashee_<base type>"``, the :class:`HashEEConfig` as its ``hashee`` block), bound wherever the old
  one was, so ``save_pretrained`` writes a checkpoint that transformers' Auto classes load as a HashEE model (with
  elue_hf imported) or refuse (without);
- a forward pre-hook on the encoder stack looks the ``input_ids`` up in the table (one exit plan per forward);
- each encoder layer is replaced by its HashEE copy (:func:`~elue_hf.hashee.layer.hashee_layer`: an instance of the
  declared subclass ``HashEE<LayerClass>`` sharing the original's parameters; skip or reference mode). Parameters and
  state-dict keys are unchanged, so are the decoder with its cache and cross-attention; cross-attention reads the
  final encoder states, in which exited tokens hold their copied states;
- the :class:`HashEEController` is the model's ``hashee_controller`` attribute (a plain attribute, not a module).

``save_hashee_model(model, path)`` saves it with its tokenizer; ``load_hashee_model(path_or_repo_id)`` restores a
saved HashEE model with exactly the saved table (never rebuilt), from a local folder or a Hub repo (``model_type``
``hashee_<base>``).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..multi_exit import multi_exit_backbone, num_exits
from .config import MODES, HashEEConfig
from .configuration_hashee import HASHEE_MODEL_TYPE_PREFIX, ensure_hashee_model_type, to_base_config, to_hashee_config
from .hashing import HashTable, lookup_exits
from .layer import HashEEState, LayerKind, TokenPlan, detect_layer_kind, hashee_layer

__all__ = [
    "TABLE_BUFFER",
    "HashEEController",
    "apply_hashee",
    "remove_hashee",
    "get_hashee",
    "is_hashee_model",
    "set_hashee_mode",
    "hashee_table",
    "hashee_config_for",
    "find_encoder",
    "load_hashee_model",
    "resolve_model_folder",
    "save_hashee_model",
]

TABLE_BUFFER = "hashee_exit_table"
_CONTROLLER = "hashee_controller"


# --------------------------------------------------------------------------------------------------------------------
# Finding the encoder
# --------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class EncoderParts:
    stack: nn.Module  # the module that receives input_ids (BertModel, ElasticBertModel, BartEncoder, T5Stack, ...)
    layers: nn.ModuleList
    kind: LayerKind


def _layers_of(stack: nn.Module) -> nn.ModuleList | None:
    encoder = getattr(stack, "encoder", None)
    if isinstance(getattr(encoder, "layer", None), nn.ModuleList):
        return encoder.layer  # BERT, RoBERTa, ElasticBERT
    for name in ("layers", "block"):  # BART encoder, T5 encoder stack
        if isinstance(getattr(stack, name, None), nn.ModuleList):
            return getattr(stack, name)
    return None


def find_encoder(model: nn.Module) -> EncoderParts:
    """The encoder stack and layer list HashEE acts on (raises ``ValueError`` naming what is unsupported)."""
    config = getattr(model, "config", None)
    backbone = multi_exit_backbone(model)
    if backbone is not None and num_exits(backbone.encoder) > 1:
        # tokens leaving at layer i would change what the exits below layer L read
        raise ValueError(
            "HashEE runs on a static multi-exit model (e.g. a static ElasticBERT, num_output_layers=1: one exit on "
            f"layer L). This model has {num_exits(backbone.encoder)} exits; load it with from_pretrained(path, "
            "num_hidden_layers=L, num_output_layers=1) or convert_bert_to_elasticbert(..., num_output_layers=1)"
        )
    if getattr(config, "is_encoder_decoder", False) and hasattr(model, "get_encoder"):
        stack = model.get_encoder()
    else:
        stack = getattr(model, "base_model", model)
    if getattr(getattr(stack, "config", None), "is_decoder", False):
        raise ValueError(f"HashEE acts on encoders; {type(stack).__name__} is configured as a decoder")
    layers = _layers_of(stack)
    if layers is None or len(layers) == 0:
        raise ValueError(
            f"HashEE supports BERT, RoBERTa, ElasticBERT, BART, T5 and EncoderDecoderModel encoders; found no encoder "
            f"layer list in {type(model).__name__}"
        )
    kinds = {detect_layer_kind(layer) for layer in layers}
    if None in kinds or len(kinds) != 1:
        raise ValueError(
            f"HashEE does not support the encoder layers of {type(model).__name__} ({type(layers[0]).__name__}); "
            "supported: BERT-style post-LN layers, BART encoder layers, T5 encoder blocks"
        )
    return EncoderParts(stack, layers, kinds.pop())


def _vocab_rows(model: nn.Module, stack: nn.Module) -> int:
    for owner in (model, stack):
        getter = getattr(owner, "get_input_embeddings", None)
        embeddings = getter() if getter is not None else None
        if isinstance(embeddings, nn.Embedding):
            return embeddings.num_embeddings
    raise ValueError(f"Cannot find the input embedding matrix of {type(model).__name__}")


def hashee_config_for(model: nn.Module, tokenizer=None, **kwargs: Any) -> HashEEConfig:
    """A :class:`HashEEConfig` sized for ``model``: L = encoder layers, V = input embedding rows, B = L by default,
    special ids from ``tokenizer.all_special_ids``. ``kwargs`` override any field."""
    parts = find_encoder(model)
    fields: dict[str, Any] = {
        "num_layers": len(parts.layers),
        "num_buckets": kwargs.pop("num_buckets", None) or len(parts.layers),
        "vocab_size": _vocab_rows(model, parts.stack),
    }
    if tokenizer is not None:
        fields["special_ids"] = list(tokenizer.all_special_ids)
    fields.update(kwargs)
    return HashEEConfig(**fields)


# --------------------------------------------------------------------------------------------------------------------
# The controller: one exit plan per encoder forward
# --------------------------------------------------------------------------------------------------------------------


class HashEEController:
    """Holds the HashEE state of one model: config, mode, the current exit plan and the installed hooks."""

    def __init__(self, model: nn.Module, parts: EncoderParts, config: HashEEConfig):
        self.model = model
        self.parts = parts
        self.state = HashEEState(config.mode)
        self.config = config
        self._handles: list = []
        self._originals: list[nn.Module] = []
        self._signature = inspect.signature(parts.stack.forward)

    @property
    def config(self) -> HashEEConfig:
        return self._config

    @config.setter
    def config(self, config: HashEEConfig) -> None:
        self._config = config
        self.state.mode = config.mode

    @property
    def mode(self) -> str:
        return self.config.mode

    @property
    def plan(self) -> TokenPlan | None:
        """The exit plan of the last encoder forward."""
        return self.state.plan

    @property
    def table(self) -> torch.Tensor:
        return getattr(self.model, TABLE_BUFFER)

    def exit_layers(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Exit layer of each token (before padding is taken into account)."""
        return lookup_exits(self.table, input_ids, self.config)

    def make_plan(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> TokenPlan:
        if input_ids.dim() != 2:
            raise ValueError(f"HashEE needs input_ids of shape (batch, seq), got {tuple(input_ids.shape)}")
        return TokenPlan.build(self.exit_layers(input_ids), attention_mask, self.config.num_layers)

    def _pre_forward(self, module, args, kwargs):
        arguments = self._signature.bind_partial(*args, **kwargs).arguments
        input_ids = arguments.get("input_ids")
        if input_ids is None:
            raise ValueError(
                "HashEE maps token ids to exit layers, so the encoder must be called with input_ids "
                "(inputs_embeds alone cannot be hashed)"
            )
        self.state.plan = self.make_plan(input_ids, arguments.get("attention_mask"))

    def install(self) -> None:
        parts = self.parts
        self._handles.append(parts.stack.register_forward_pre_hook(self._pre_forward, with_kwargs=True))
        for index, layer in enumerate(parts.layers):
            self._originals.append(layer)
            parts.layers[index] = hashee_layer(layer, index, parts.kind, self.state)

    def uninstall(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for index, original in enumerate(self._originals):
            self.parts.layers[index] = original
        self._originals.clear()
        self.state.plan = None

    def last_active_counts(self) -> torch.Tensor:
        """(batch, L) active tokens per layer of the last encoder forward (for FLOPs)."""
        if self.plan is None:
            raise RuntimeError("No forward has run through the HashEE encoder yet")
        return self.plan.counts.T


def get_hashee(model: nn.Module) -> HashEEController:
    controller = getattr(model, _CONTROLLER, None)
    if controller is None:
        raise ValueError(f"{type(model).__name__} is not a HashEE model (use apply_hashee(model, table) first)")
    return controller


def is_hashee_model(model: nn.Module) -> bool:
    return getattr(model, _CONTROLLER, None) is not None


def hashee_table(model: nn.Module) -> HashTable:
    """The model's table and config as a :class:`HashTable`."""
    controller = get_hashee(model)
    return HashTable(controller.config, controller.table.detach().cpu())


def set_hashee_mode(model: nn.Module, mode: str) -> None:
    """Switch between ``"skip"`` (compute only active tokens) and ``"reference"`` (compute all, keep active)."""
    if mode not in MODES:
        raise ValueError(f"Unknown HashEE mode {mode!r}; expected one of {MODES}")
    controller = get_hashee(model)
    controller.config = dataclasses.replace(controller.config, mode=mode)
    model.config.hashee = controller.config.to_dict()


# --------------------------------------------------------------------------------------------------------------------
# apply / remove
# --------------------------------------------------------------------------------------------------------------------


def apply_hashee(model: nn.Module, table: HashTable, mode: str | None = None) -> nn.Module:
    """Make ``model`` a HashEE model in place (and return it).

    Args:
        model: a transformers BERT / RoBERTa / static ElasticBERT model (any head), a BART or T5 model, or an
            ``EncoderDecoderModel``; HashEE acts on its encoder.
        table: the exit table (see :mod:`elue_hf.hashee.hashing`); its ``num_layers`` must equal the number of encoder
            layers and its ``vocab_size`` the number of input embedding rows.
        mode: ``"skip"`` (default of the config: compute only active tokens) or ``"reference"``.
    """
    if not isinstance(table, HashTable):
        raise TypeError(f"table must be a HashTable (see elue_hf.hashee.hashing), got {type(table).__name__}")
    if is_hashee_model(model):
        raise ValueError("This model already runs HashEE; call remove_hashee(model) first to change its table")
    parts = find_encoder(model)
    config = table.config if mode is None else dataclasses.replace(table.config, mode=mode)
    if config.num_layers != len(parts.layers):
        raise ValueError(
            f"The table was built for L={config.num_layers} layers but the encoder has {len(parts.layers)}; "
            "build the table with num_layers equal to the encoder depth"
        )
    rows = _vocab_rows(model, parts.stack)
    if config.vocab_size != rows:
        raise ValueError(
            f"The table covers vocab_size={config.vocab_size} ids but the model embeds {rows}; build it with "
            f"vocab_size={rows} (e.g. hashee_config_for(model, tokenizer))"
        )
    device = next(model.parameters()).device
    model.register_buffer(TABLE_BUFFER, table.exits.to(device), persistent=True)
    _bind_config(model, to_hashee_config(model.config, config.to_dict()))
    controller = HashEEController(model, parts, config)
    controller.install()
    setattr(model, _CONTROLLER, controller)
    return model


def remove_hashee(model: nn.Module) -> nn.Module:
    """Undo :func:`apply_hashee` (the plain model again, same parameters)."""
    controller = get_hashee(model)
    controller.uninstall()
    delattr(model, _CONTROLLER)
    del model._buffers[TABLE_BUFFER]
    _bind_config(model, to_base_config(model.config))
    return model


def _bind_config(model: nn.Module, config) -> None:
    """Give ``model`` the config object ``config`` everywhere its current one is held (the model and the sub-modules
    that share it, e.g. the base model and the attention modules of BERT)."""
    old = model.config
    for module in model.modules():
        for name, value in list(vars(module).items()):
            if value is old:
                setattr(module, name, config)


# --------------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------------


def _weight_files(path: Path) -> list[Path]:
    index_file = path / "model.safetensors.index.json"
    if index_file.exists():
        weight_map = json.loads(index_file.read_text())["weight_map"]
        return [path / name for name in sorted(set(weight_map.values()))]
    single = path / "model.safetensors"
    if not single.exists():
        raise ValueError(f"{path} holds no model.safetensors: HashEE models are loaded from safetensors only")
    return [single]


def _read_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The saved weights (without the table) and the saved exit table, read from safetensors (never pickles)."""
    from safetensors import safe_open

    weights, table = {}, None
    for file in _weight_files(path):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                if key.split(".")[-1] == TABLE_BUFFER:
                    table = handle.get_tensor(key)
                else:
                    weights[key] = handle.get_tensor(key)
    if table is None:
        raise ValueError(f"{path} holds no {TABLE_BUFFER!r} tensor: it was not saved from a HashEE model")
    return weights, table


_HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.md"]


def resolve_model_folder(path_or_repo_id: str | os.PathLike, revision: str | None = None, **hub_kwargs: Any) -> Path:
    """A local folder as is; anything else as a Hub repo id, downloaded (or found in the cache offline) with
    ``huggingface_hub.snapshot_download`` (JSON, safetensors and tokenizer files only: no pickles, no code)."""
    path = Path(path_or_repo_id)
    if path.is_dir():
        return path
    text = str(path_or_repo_id)
    if path.exists() or text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise FileNotFoundError(f"No saved model directory at {path}")
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id=text, revision=revision, allow_patterns=_HUB_FILES, **hub_kwargs))
    except (HfHubHTTPError, LocalEntryNotFoundError, ValueError) as err:
        raise OSError(
            f"Could not get the HashEE model {text!r} from the Hub (and there is no local folder of that name): {err}"
        ) from None


def _model_class(config) -> type:
    import transformers

    from elue_hf import elasticbert

    architectures = getattr(config, "architectures", None) or []
    for name in architectures:
        for module in (transformers, elasticbert):
            if hasattr(module, name):
                return getattr(module, name)
    raise ValueError(f"Cannot tell which model class to load (architectures={architectures}); pass model_class=")


#: ``from_pretrained`` arguments that say where the checkpoint is (the rest go to the model class).
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token")


def load_hashee_model(path_or_repo_id: str | os.PathLike, model_class: type | None = None,
                      revision: str | None = None, config=None, **kwargs: Any) -> nn.Module:
    """Load a model saved from a HashEE model (``model.save_pretrained``) with exactly its saved table.

    ``path_or_repo_id`` is a local folder or a Hub repo id (``revision``: a branch, tag or commit; with
    ``HF_HUB_OFFLINE=1`` the local Hub cache is used; ``subfolder``, ``cache_dir``, ``token``, ``local_files_only``
    and ``force_download`` are understood). ``model_class`` defaults to the saved ``architectures`` entry; ``config``
    (a HashEE config) skips reading ``config.json``; other ``kwargs`` go to ``from_pretrained``. The table is read from
    the checkpoint, never rebuilt. This is also what ``AutoModel*.from_pretrained`` runs on a HashEE checkpoint.
    """
    from transformers import AutoConfig

    hub = {name: kwargs.pop(name) for name in _HUB_KWARGS if name in kwargs}
    path = resolve_model_folder(path_or_repo_id, revision=revision, **hub) / (kwargs.pop("subfolder", None) or "")
    if config is None:
        ensure_hashee_model_type(json.loads((path / "config.json").read_text()).get("model_type"))
        config, kwargs = AutoConfig.from_pretrained(path, return_unused_kwargs=True, **kwargs)
    if not str(getattr(config, "model_type", "")).startswith(HASHEE_MODEL_TYPE_PREFIX):
        raise ValueError(f"{path} is not a saved HashEE model: model_type {config.model_type!r}, expected "
                         f"'{HASHEE_MODEL_TYPE_PREFIX}<base>'; save one with save_hashee_model(apply_hashee(...), dir)")
    hashee_config = HashEEConfig.from_model_config(config)
    weights, exits = _read_checkpoint(path)
    cls = model_class or _model_class(config)
    loaded = cls.from_pretrained(None, config=config, state_dict=weights, **kwargs)
    model, info = loaded if isinstance(loaded, tuple) else (loaded, None)  # output_loading_info=True: (model, info)
    apply_hashee(model, HashTable(hashee_config, exits))
    return model if info is None else (model, info)


def save_hashee_model(model: nn.Module, save_directory: str | os.PathLike, tokenizer=None, **kwargs: Any) -> Path:
    """``model.save_pretrained(save_directory, **kwargs)`` plus the tokenizer the exit table was built for.

    The table is indexed by token ids, so a HashEE folder without its tokenizer is unusable. ``tokenizer`` (object,
    folder or Hub id) defaults to the one saved with the model's source (``model.name_or_path``); with none found the
    folder is saved without one and a warning says so. Reload with :func:`load_hashee_model` + ``AutoTokenizer``.
    """
    from ..tokenizer_io import load_tokenizer, save_tokenizer

    if not is_hashee_model(model):
        raise ValueError("save_hashee_model needs a HashEE model (apply_hashee(model, table) first)")
    out = Path(save_directory)
    model.save_pretrained(out, **kwargs)
    save_tokenizer(load_tokenizer(tokenizer, getattr(model, "name_or_path", None) or None), out, "HashEE model")
    return out
