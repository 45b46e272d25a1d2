"""Register LPT as a PEFT method (``PeftType.LPT``), idempotently.

PEFT 0.21's :func:`peft.utils.register_peft_method` only accepts names that are already members of the closed
``PeftType`` enum. We therefore first add an ``LPT`` member to the enum *in place* (route 1 of
``hf-notes`` §3: the member is built from the string, given its name, value and sort order, and inserted into the
enum's member map, value map and name list), then call PEFT's own registration function. Should a future Python
or PEFT make the enum extension impossible, :func:`register_lpt` falls back to route 2: the plain string key
``"LPT"`` written into PEFT's three mappings (works because ``PeftType`` members are ``str`` and all lookups go
by value).

Registration is guarded: calling :func:`register_lpt` twice, or after a module reload, is harmless.
"""

from __future__ import annotations

import warnings

from peft.utils import PeftType

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
LPT_SAVED_PEFT_TYPE = "LPT (Late Prompt Tuning needs elue-hf: pip install elue-hf, then `import elue_hf` first)"


def _add_enum_member(enum_cls, name: str):
    """Add ``name`` (value == name) to a ``str``-based enum in place and return the member (CPython >= 3.11)."""
    if name in enum_cls._member_map_:
        return enum_cls._member_map_[name]
    member = str.__new__(enum_cls, name)
    member._name_ = name
    member._value_ = name
    member.__objclass__ = enum_cls
    member._sort_order_ = len(enum_cls._member_names_)
    # ``type.__setattr__`` bypasses EnumType.__setattr__, which refuses to (re)assign member attributes.
    type.__setattr__(enum_cls, name, member)
    enum_cls._member_map_[name] = member
    enum_cls._value2member_map_[name] = member
    enum_cls._member_names_.append(name)
    return member


def lpt_peft_type():
    """``PeftType.LPT``, created on first use; the plain string ``"LPT"`` if the enum cannot be extended."""
    member = PeftType._member_map_.get(LPT_PEFT_TYPE_VALUE)
    if member is not None:
        return member
    try:
        member = _add_enum_member(PeftType, LPT_PEFT_TYPE_VALUE)
    except (AttributeError, TypeError) as err:  # enum internals changed (route 2 fallback)
        warnings.warn(
            f"Could not add LPT to peft.utils.PeftType ({err!r}); registering LPT under the plain string key 'LPT'.",
            RuntimeWarning,
            stacklevel=2,
        )
        return LPT_PEFT_TYPE_VALUE
    if PeftType(LPT_PEFT_TYPE_VALUE) is not member:  # pragma: no cover - defensive
        return LPT_PEFT_TYPE_VALUE
    return member


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

    peft_type = lpt_peft_type()
    if isinstance(peft_type, PeftType):
        from peft.utils import register_peft_method

        register_peft_method(name=LPT_METHOD_NAME, config_cls=LPTConfig, model_cls=LPTModel, prefix=LPTModel.prefix)
    else:  # route 2: plain string key
        _register_with_string_key(config_map, tuner_map, prefix_map, LPTConfig, LPTModel)
    config_map[LPT_SAVED_PEFT_TYPE] = LPTConfig  # saved adapters name this alias (see LPT_SAVED_PEFT_TYPE)


def _register_with_string_key(config_map, tuner_map, prefix_map, config_cls, model_cls) -> None:
    """Route 2 of hf-notes §3: write the string key ``"LPT"`` into PEFT's mappings (no enum member needed)."""
    if model_cls.prefix in prefix_map.values():
        raise RuntimeError(f"The PEFT prefix {model_cls.prefix!r} is already used by another method.")
    config_map[LPT_PEFT_TYPE_VALUE] = config_cls
    tuner_map[LPT_PEFT_TYPE_VALUE] = model_cls
    prefix_map[LPT_PEFT_TYPE_VALUE] = model_cls.prefix
