"""Every manifest field is type-checked: any malformed ``submission.json`` is the package's error, never a raw
TypeError/KeyError (hypothesis over the manifest schema: each field replaced by any JSON value, or removed)."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elue_hf.elue.submission import SubmissionError, read_submission
from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.leaderboard.submit import SubmitError, UploadLimits, submit_file
from tests.helpers.leaderboard import gold_labels, make_submission, manifest_of, write_zip, zip_members

_WORK = Path(tempfile.mkdtemp(prefix="elue-manifest-types-"))
GOLD = gold_labels(("sst-2",))
VALID = make_submission(_WORK, GOLD, depths=(3,), model="owner/model")
MEMBERS = zip_members(VALID)
MANIFEST = manifest_of(VALID)
STORE = SQLiteStore(_WORK / "lb.db")
LIMITS = UploadLimits(max_submissions_per_day=0)

#: Where a field can be: the manifest's top level, its first file, the model reference, the exit settings, extra.
FIELDS = ([((), k) for k in ("format", "model_name", "description", "params", "module_spec", "tokenizer", "model",
                             "extra", "files")]
          + [(("files", 0), k) for k in ("path", "task", "mean_flops", "params", "max_seq_length", "label",
                                         "module_spec", "flops_source", "settings")]
          + [(("model",), k) for k in ("id", "revision")]
          + [(("files", 0, "settings"), k) for k in ("exit", "layers", "value")]
          + [(("extra",), "data_name")])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6)
DELETE = object()


def _mutated(where, key, value) -> dict:
    manifest = copy.deepcopy(MANIFEST)
    parent = manifest
    for step in where:
        parent = parent.setdefault(step, {}) if isinstance(parent, dict) else parent[step]
    if value is DELETE:
        parent.pop(key, None)
    else:
        parent[key] = value
    return manifest


def _zip(manifest: dict, name: str) -> Path:
    return write_zip(_WORK / name, {**MEMBERS, "submission.json": json.dumps(manifest)})


@pytest.mark.parametrize("store_result", [False, True])
def test_null_description_is_an_empty_description(store_result):
    path = _zip(_mutated((), "description", None), f"null-description-{store_result}.zip")
    outcome = submit_file(STORE, path, GOLD, limits=LIMITS, store_result=store_result)
    assert outcome.submission.description == ""


def test_null_file_params_falls_back_to_the_manifest_params():
    path = _zip(_mutated(("files", 0), "params", None), "null-file-params.zip")
    assert read_submission(path).files[0].params == MANIFEST["params"]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), value=json_values | st.just(DELETE), store_result=st.booleans())
def test_any_malformed_manifest_field_is_the_packages_error(field, value, store_result):
    path = _zip(_mutated(*field, value), "mutated.zip")
    try:
        read_submission(path)
    except SubmissionError:
        pass
    try:
        submit_file(STORE, path, GOLD, limits=LIMITS, store_result=store_result)
    except SubmitError as err:
        assert str(err) and "\n" not in str(err)
