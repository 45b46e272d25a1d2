"""LPT is a registered PEFT method: enum member, mappings, idempotence, conflicts and the string-key fallback."""

import enum
import importlib

import pytest
from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING
from peft.utils import PeftType

import elue_hf  # noqa: F401  (import elue_hf registers LPT)
from elue_hf.lpt import LPTConfig, LPTModel, is_lpt_registered, peft_compat, register_lpt


def test_import_registers_an_enum_member():
    assert is_lpt_registered()
    assert PeftType("LPT") is PeftType.LPT
    assert PeftType.LPT in list(PeftType) and PeftType.LPT.name == "LPT" and PeftType.LPT.value == "LPT"
    assert list(PeftType)[-1] is PeftType.LPT  # appended with the next sort order
    assert PEFT_TYPE_TO_CONFIG_MAPPING[PeftType.LPT] is LPTConfig
    assert PEFT_TYPE_TO_TUNER_MAPPING["LPT"] is LPTModel
    assert PEFT_TYPE_TO_PREFIX_MAPPING[PeftType.LPT] == "lpt_" == LPTModel.prefix
    assert LPTConfig().peft_type is PeftType.LPT


def test_register_is_idempotent():
    before = (dict(PEFT_TYPE_TO_CONFIG_MAPPING), len(PeftType._member_names_))
    register_lpt()
    register_lpt()
    assert (dict(PEFT_TYPE_TO_CONFIG_MAPPING), len(PeftType._member_names_)) == before


def test_register_survives_a_module_reload():
    import elue_hf.lpt.config as config_module
    import elue_hf.lpt.model as model_module

    saved = {m: dict(vars(m)) for m in (config_module, model_module)}
    try:
        importlib.reload(config_module)
        importlib.reload(model_module)
        register_lpt()  # same qualified names: refreshed, not a conflict
        assert PEFT_TYPE_TO_CONFIG_MAPPING["LPT"] is config_module.LPTConfig
    finally:  # restore the original class objects everyone else imported
        for module, namespace in saved.items():
            vars(module).update(namespace)
        register_lpt()  # every mapping PEFT keeps points at the original classes again
        assert PEFT_TYPE_TO_CONFIG_MAPPING[PeftType.LPT] is LPTConfig
        assert PEFT_TYPE_TO_TUNER_MAPPING[PeftType.LPT] is LPTModel


def test_a_foreign_lpt_registration_is_a_clear_error(monkeypatch):
    class LPTConfig:  # same name, other module: not ours
        pass

    monkeypatch.setitem(PEFT_TYPE_TO_CONFIG_MAPPING, PeftType.LPT, LPTConfig)
    with pytest.raises(RuntimeError, match="already registered as 'LPT'"):
        register_lpt()


def test_enum_extension_on_a_fresh_str_enum():
    class Kind(str, enum.Enum):
        A = "A"
        B = "B"

    member = peft_compat.add_str_enum_member(Kind, "C")
    assert Kind("C") is member is Kind.C
    assert [m.value for m in Kind] == ["A", "B", "C"]
    assert member == "C" and isinstance(member, str) and isinstance(member, Kind)
    assert peft_compat.add_str_enum_member(Kind, "C") is member  # no duplicate


def test_peft_version_was_checked():
    """Fails loudly when PEFT changes: re-verify elue_hf/lpt/peft_compat.py, then add the version to the list."""
    import peft

    assert peft_compat.peft_version_checked(), (
        f"PEFT {peft.__version__} is not in CHECKED_PEFT_VERSIONS {peft_compat.CHECKED_PEFT_VERSIONS}: re-run the LPT "
        "tests on it, check PeftType extension by hand, then add the version (see docs/upstream-peft.md)."
    )


def test_unchecked_peft_version_warns_and_still_registers(monkeypatch):
    monkeypatch.setattr(peft_compat, "CHECKED_PEFT_VERSIONS", ("0.0.0",))
    monkeypatch.setattr(peft_compat, "_warned", False)

    class Kind(str, enum.Enum):
        A = "A"

    monkeypatch.setattr("peft.utils.PeftType", Kind)
    with pytest.warns(RuntimeWarning, match="verified on PEFT 0.0.0"):
        member = peft_compat.peft_type_member("NEW")
    assert member is Kind.NEW


def test_unextendable_enum_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(peft_compat, "add_str_enum_member", lambda *a: (_ for _ in ()).throw(TypeError("frozen")))
    with pytest.raises(RuntimeError, match="could not add ANOTHER to peft.utils.PeftType .*install a checked PEFT"):
        peft_compat.peft_type_member("ANOTHER")
