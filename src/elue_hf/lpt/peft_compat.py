"""The one place where elue-hf reaches into PEFT's internals: adding ``LPT`` to PEFT's closed ``PeftType`` enum.

Why this exists: PEFT 0.21's :func:`peft.utils.register_peft_method` only accepts names that are already members of
``PeftType``, and PEFT has no public way to add one. Until ``PeftType.LPT`` exists upstream (the proposal is in
``docs/upstream-peft.md``), LPT needs a member added in place. Everything that touches enum internals is in this
module, and it is guarded:

- :data:`CHECKED_PEFT_VERSIONS` lists the PEFT releases this was verified against; on any other release
  :func:`peft_type_member` warns once (the extension may still work) and the test
  ``tests/lpt/test_lpt_registration.py::test_peft_version_was_checked`` fails loudly, so whoever bumps PEFT re-checks
  this file first;
- if the enum cannot be extended (Python or PEFT changed the internals), :func:`peft_type_member` raises a
  ``RuntimeError`` that says so and names the checked releases (there is no second route).
"""

from __future__ import annotations

import enum
import warnings

__all__ = ["CHECKED_PEFT_VERSIONS", "LPT_PEFT_TYPE_VALUE", "peft_version_checked", "add_str_enum_member",
           "peft_type_member", "lpt_peft_type"]

#: ``peft_type`` of LPT adapters (``PeftType.LPT``'s value, what ``adapter_config.json`` stores)
LPT_PEFT_TYPE_VALUE = "LPT"

#: PEFT releases on which extending ``PeftType`` in place was verified (member lookup, ``list(PeftType)``, mappings,
#: save/load of an adapter whose config holds ``peft_type: "LPT"``).
CHECKED_PEFT_VERSIONS = ("0.21.2",)


def peft_version_checked() -> bool:
    """Whether the installed PEFT is one of :data:`CHECKED_PEFT_VERSIONS`."""
    import peft

    return peft.__version__ in CHECKED_PEFT_VERSIONS


def add_str_enum_member(enum_cls: type[enum.Enum], name: str):
    """Add ``name`` (value == name) to a ``str``-valued enum in place and return the member (CPython >= 3.11).

    Idempotent: an existing member of that name is returned unchanged. The member gets the next sort order, so it is
    listed last by ``list(enum_cls)``.
    """
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


_warned = False


def peft_type_member(name: str):
    """``PeftType.<name>``, added on first use; ``RuntimeError`` when the enum cannot be extended on this PEFT."""
    global _warned
    from peft.utils import PeftType

    member = PeftType._member_map_.get(name)
    if member is not None:
        return member
    if not peft_version_checked() and not _warned:
        import peft

        _warned = True
        warnings.warn(
            f"elue-hf extends peft.utils.PeftType with {name!r}; this was verified on PEFT "
            f"{', '.join(CHECKED_PEFT_VERSIONS)}, you have {peft.__version__}. If LPT misbehaves, pin PEFT to a "
            "checked release (see docs/upstream-peft.md).",
            RuntimeWarning,
            stacklevel=3,
        )
    try:
        member = add_str_enum_member(PeftType, name)
    except (AttributeError, TypeError) as err:  # enum internals changed
        member = None
        reason = repr(err)
    else:
        reason = "the new member is not found by value"
    if member is None or PeftType(name) is not member:
        import peft

        raise RuntimeError(
            f"elue-hf could not add {name} to peft.utils.PeftType on PEFT {peft.__version__} ({reason}); install a "
            f"checked PEFT release ({', '.join(CHECKED_PEFT_VERSIONS)})."
        )
    return member


def lpt_peft_type():
    """``PeftType.LPT``, created on first use."""
    return peft_type_member(LPT_PEFT_TYPE_VALUE)
