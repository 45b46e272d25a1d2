"""``elue-hf train`` on a multi-exit model or on any encoder the multi-exit model supports."""

from __future__ import annotations

__all__ = ["load_multi_exit_for_finetuning"]


def _top_exits(num_layers: int, count: int | None) -> list[int] | None:
    return None if count is None else list(range(num_layers - int(count) + 1, num_layers + 1))


def load_multi_exit_for_finetuning(path: str, config, num_labels: int, labels: dict, overrides: dict):
    """A saved multi-exit model (``model_type="multiexit"``), or a supported encoder converted with an exit on every
    layer (``num_output_layers`` in ``overrides``: the top layers only). Raises one sentence for anything else."""
    from .adapters import supported_model_types
    from .convert import SUPPORTED, convert_to_multi_exit
    from .modeling_multiexit import MultiExitForSequenceClassification

    overrides = dict(overrides)
    count = overrides.pop("num_output_layers", None)
    if config.model_type == "multiexit":
        exits = _top_exits(config.num_hidden_layers, count)
        extra = {} if exits is None else {"exit_layers": exits}
        return MultiExitForSequenceClassification.from_pretrained(path, num_labels=num_labels, **labels, **extra,
                                                                  **overrides)
    if config.model_type not in supported_model_types():
        raise ValueError(f"--model must be one of {SUPPORTED} (or a multi-exit / ElasticBERT checkpoint), got "
                         f"model_type={config.model_type!r}")
    return convert_to_multi_exit(path, exits=_top_exits(config.num_hidden_layers, count), num_labels=num_labels,
                                 **labels, **overrides)
