"""Register LPT as a PEFT method (``PeftType.LPT``), idempotently.

The enum member comes from :mod:`.peft_compat` (the only module that touches PEFT's internals, version-guarded); the
registration itself is PEFT's public :func:`peft.utils.register_peft_method`. Saved adapters name ``peft_type: "LPT"``.
Calling :func:`register_lpt` twice, or after a module reload, is harmless.
"""

from __future__ import annotations

from .peft_compat import LPT_PEFT_TYPE_VALUE, lpt_peft_type

__all__ = [
    "LPT_METHOD_NAME",
    "LPT_PEFT_TYPE_VALUE",
    "lpt_peft_type",
    "register_lpt",
    "is_lpt_registered",
]

LPT_METHOD_NAME = "lpt"


def _peft_mappings():
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING

    return PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING


def _same_class(a, b) -> bool:
    """True for the same class, or the 'same' class re-created by a module reload."""
    return a is b or (a.__module__ == b.__module__ and a.__qualname__ == b.__qualname__)


def is_lpt_registered() -> bool:
    """Whether PEFT currently knows the ``LPT`` method (``get_peft_model``/``PeftModel.from_pretrained`` work)."""
    config_map, tuner_map, prefix_map = _peft_mappings()
    return LPT_PEFT_TYPE_VALUE in config_map and LPT_PEFT_TYPE_VALUE in tuner_map


def register_lpt() -> None:
    """Make LPT a PEFT method: ``PeftType.LPT`` plus the config, tuner and prefix mappings. Idempotent.

    Raises:
        RuntimeError: another (non-elue_hf) method is already registered under the name ``LPT``, or this PEFT's
            ``PeftType`` cannot be extended (see :mod:`.peft_compat`).
    """
    from .config import LPTConfig
    from .model import LPTModel

    config_map, tuner_map, prefix_map = _peft_mappings()
    existing = config_map.get(LPT_PEFT_TYPE_VALUE)
    if existing is not None:
        if not _same_class(existing, LPTConfig):
            raise RuntimeError(
                f"A different PEFT method is already registered as 'LPT' ({existing.__module__}."
                f"{existing.__qualname__}); elue_hf cannot register its LPTConfig."
            )
        # already ours (possibly from before a module reload): refresh to the current class objects
        key = next(k for k in config_map if k == LPT_PEFT_TYPE_VALUE)
        config_map[key], tuner_map[key], prefix_map[key] = LPTConfig, LPTModel, LPTModel.prefix
        return
    lpt_peft_type()  # PeftType.LPT must exist before PEFT's own registration accepts the name
    from peft.utils import register_peft_method

    register_peft_method(name=LPT_METHOD_NAME, config_cls=LPTConfig, model_cls=LPTModel, prefix=LPTModel.prefix)
