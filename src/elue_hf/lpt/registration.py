"""Register LPT as a PEFT method (``PeftType.LPT``), idempotently.

The enum member comes from :mod:`.peft_compat` (the only module that touches PEFT's internals, version-guarded); the
registration itself is PEFT's own :func:`peft.utils.register_peft_method`. If the enum cannot be extended, LPT is
registered under the plain string key ``"LPT"`` in PEFT's three mappings instead (``PeftType`` members are ``str`` and
every lookup goes by value, so both routes behave the same). Calling :func:`register_lpt` twice, or after a module
reload, is harmless.
"""

from __future__ import annotations

from .peft_compat import peft_type_member

__all__ = [
    "LPT_METHOD_NAME",
    "LPT_PEFT_TYPE_VALUE",
    "LPT_SAVED_PEFT_TYPE",
    "lpt_peft_type",
    "register_lpt",
    "is_lpt_registered",
]

LPT_METHOD_NAME = "lpt"
LPT_PEFT_TYPE_VALUE = "LPT"
#: ``peft_type`` as written in a saved ``adapter_config.json``. PEFT without elue_hf looks it up in its config mapping
#: and fails with ``KeyError: 'LPT (...)'``, which then says what to do; with elue_hf it is an alias of ``LPT``.
LPT_SAVED_PEFT_TYPE = "LPT (Late Prompt Tuning needs the elue-hf package installed and `import elue_hf` first)"


def lpt_peft_type():
    """``PeftType.LPT``, created on first use; the plain string ``"LPT"`` if the enum cannot be extended."""
    member = peft_type_member(LPT_PEFT_TYPE_VALUE)
    return LPT_PEFT_TYPE_VALUE if member is None else member


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
        RuntimeError: another (non-elue_hf) method is already registered under the name ``LPT``.
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
        config_map[LPT_SAVED_PEFT_TYPE] = LPTConfig
        return

    if peft_type_member(LPT_PEFT_TYPE_VALUE) is not None:
        from peft.utils import register_peft_method

        register_peft_method(name=LPT_METHOD_NAME, config_cls=LPTConfig, model_cls=LPTModel, prefix=LPTModel.prefix)
    else:  # route 2: plain string key
        _register_with_string_key(config_map, tuner_map, prefix_map, LPTConfig, LPTModel)
    config_map[LPT_SAVED_PEFT_TYPE] = LPTConfig  # saved adapters name this alias (see LPT_SAVED_PEFT_TYPE)


def _register_with_string_key(config_map, tuner_map, prefix_map, config_cls, model_cls) -> None:
    """Fallback: write the string key ``"LPT"`` into PEFT's mappings (no enum member needed)."""
    if model_cls.prefix in prefix_map.values():
        raise RuntimeError(f"The PEFT prefix {model_cls.prefix!r} is already used by another method.")
    config_map[LPT_PEFT_TYPE_VALUE] = config_cls
    tuner_map[LPT_PEFT_TYPE_VALUE] = model_cls
    prefix_map[LPT_PEFT_TYPE_VALUE] = model_cls.prefix
