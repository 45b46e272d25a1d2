"""Hostile submissions: every one ends in SubmissionError with a clear message, never a raw Python error."""

from __future__ import annotations

import json
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elue_hf.elue.flops.module_spec import MAX_INSTANCE_MACS, ModulesError, modules_macs, validate_module_spec
from elue_hf.elue.submission import SubmissionError, read_submission
from elue_hf.elue.submission.format import _mean_from_macs
from elue_hf.validators import MAX_JSON_DEPTH, json_depth, load_json
from tests.helpers.leaderboard import DIMS, gold_labels, make_submission, manifest_of, write_zip, zip_members


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    return make_submission(tmp_path_factory.mktemp("sub"), gold_labels(("sst-2",)), depths=(3,))


def rewrite(valid, tmp_path, manifest=None, raw_manifest: bytes | None = None, stored=False, **files) -> object:
    members = zip_members(valid)
    if manifest is not None:
        members["submission.json"] = json.dumps(manifest).encode()
    if raw_manifest is not None:
        members["submission.json"] = raw_manifest
    members.update(files)
    return write_zip(tmp_path / "hostile.zip", members, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)


def test_deeply_nested_json_is_refused_without_recursion(valid, tmp_path):
    deep = b'{"format": ' + b"[" * 500_000 + b"]" * 500_000 + b"}"
    with pytest.raises(SubmissionError, match="nests 500001 levels deep; at most 32"):
        read_submission(rewrite(valid, tmp_path, raw_manifest=deep, stored=True))


@pytest.mark.parametrize("field, value, message", [
    ("params", 10**30, "'params' must be a positive integer of at most"),
    ("params", 2**63, "'params' must be a positive integer of at most"),
    ("params", True, "'params' must be a positive integer"),
    ("model_name", ["a"], "'model_name' must be 1-200 characters"),
    ("description", {"x": 1}, "'description' must be a string"),
    ("module_spec", [1, 2], "'module_spec' must be a JSON object"),
    ("tokenizer", 7, "'tokenizer' must be a string"),
])
def test_manifest_fields_are_type_checked(valid, tmp_path, field, value, message):
    manifest = manifest_of(valid)
    manifest[field] = value
    with pytest.raises(SubmissionError, match=message):
        read_submission(rewrite(valid, tmp_path, manifest))


@pytest.mark.parametrize("literal, message", [
    (b"1" + b"0" * 400, "has 401 characters"),  # 10**400 as an integer literal
    (b"1e400", "out of range"),
    (b"NaN", "NaN is not a valid JSON number"),
    (b"1e13", "at most 1e\\+12"),
    (b"[1]", "'mean_flops' must be a finite positive number"),
])
def test_mean_flops_numbers_never_overflow(valid, tmp_path, literal, message):
    manifest = manifest_of(valid)
    text = json.dumps(manifest).replace(json.dumps(manifest["files"][0]["mean_flops"]), "@@", 1)
    with pytest.raises(SubmissionError, match=message):
        read_submission(rewrite(valid, tmp_path, raw_manifest=text.encode().replace(b"@@", literal)))


@pytest.mark.parametrize("kind", [["layer"], {"a": 1}, 3, None])
def test_module_kind_of_the_wrong_type(valid, tmp_path, kind):
    manifest = manifest_of(valid)
    manifest["files"][0]["module_spec"]["layer_1"]["kind"] = kind
    with pytest.raises(SubmissionError, match="unknown kind"):
        read_submission(rewrite(valid, tmp_path, manifest))


def test_row_macs_beyond_int64_are_refused(valid, tmp_path):
    manifest = manifest_of(valid)
    manifest["files"][0]["module_spec"]["big"] = {"kind": "linear", "in": 10**7, "out": 10**7}
    tsv = zip_members(valid)[manifest["files"][0]["path"]].decode()
    header, first, *rest = tsv.splitlines()
    i, pred, modules = first.split("\t")
    first = "\t".join([i, pred, modules + "; (10000000,10000000),big"])
    hostile = "\n".join([header, first, *rest]) + "\n"
    with pytest.raises(SubmissionError, match=r"line 2: malformed modules: the instance's MACs pass 1e\+15"):
        read_submission(rewrite(valid, tmp_path, manifest, **{manifest["files"][0]["path"]: hostile.encode()}))


def test_mac_sums_never_wrap():
    macs = np.full(4, 2**62 - 1, dtype=np.int64)  # the int64 sum would wrap to a negative number
    assert _mean_from_macs(macs) == pytest.approx(2.0 * (2**62 - 1) / 1e6)
    assert _mean_from_macs(np.array([3, 4], dtype=np.int64)) == 2 * 3.5 / 1e6


@given(st.lists(st.integers(1, MAX_INSTANCE_MACS), min_size=1, max_size=50))
@settings(max_examples=60, deadline=None)
def test_mac_means_are_exact(values):
    from fractions import Fraction

    expected = float(Fraction(2 * sum(values), len(values) * 10**6))
    assert _mean_from_macs(np.array(values, dtype=np.int64)) == expected


def test_modules_macs_cap():
    spec = validate_module_spec({"lin": {"kind": "linear", "in": 10**7, "out": 10**7}})
    assert modules_macs("(10,10000000),lin", spec) == 10 * 10**14
    with pytest.raises(ModulesError, match="MACs pass"):
        modules_macs("(11,10000000),lin", spec)


def test_manifest_bom_is_accepted_like_a_tsv_bom(valid, tmp_path):
    raw = zip_members(valid)["submission.json"]
    sub = read_submission(rewrite(valid, tmp_path, raw_manifest=b"\xef\xbb\xbf" + raw))
    assert sub.model_name == "tiny-model"


def test_row_count_is_enforced_while_streaming(valid, tmp_path):
    manifest = manifest_of(valid)
    path = manifest["files"][0]["path"]
    tsv = zip_members(valid)[path]
    header, body = tsv.split(b"\n", 1)
    many = header + b"\n" + body * 200  # 8,000 rows for a 40-instance test set
    zipped = rewrite(valid, tmp_path, **{path: many})
    with pytest.raises(SubmissionError, match=r"larger than allowed \(63,017 bytes: 40 rows of at most 1,536"):
        read_submission(zipped, expected_rows={"sst-2": 40})  # the byte cap implied by the rows trips first
    double = rewrite(valid, tmp_path, **{path: header + b"\n" + body * 2})
    with pytest.raises(SubmissionError, match="has more than 40 rows; its task has 40 test instances"):
        read_submission(double, expected_rows={"sst-2": 40})
    with pytest.raises(SubmissionError, match="wrong row count: 20 predictions for 40"):
        short = header + b"\n" + b"\n".join(body.split(b"\n")[:20]) + b"\n"
        read_submission(rewrite(valid, tmp_path, **{path: short}), expected_rows={"sst-2": 40})
    # without the gold counts the task's ELUE test-set size caps the rows (SST-2: 2,210)
    with pytest.raises(SubmissionError, match="has more than 2,210 rows"):
        read_submission(rewrite(valid, tmp_path, **{path: header + b"\n" + body * 60}))


def test_overlong_rows_are_refused(valid, tmp_path):
    manifest = manifest_of(valid)
    path = manifest["files"][0]["path"]
    lines = zip_members(valid)[path].decode().splitlines()
    i, pred, modules = lines[1].split("\t")
    lines[1] = "\t".join([i, pred, "; ".join([modules] * 30)])
    with pytest.raises(SubmissionError, match="line 2: a row of [0-9,]+ bytes; the limit is 1,536"):
        read_submission(rewrite(valid, tmp_path, **{path: ("\n".join(lines) + "\n").encode()}))


def test_a_maximum_size_hostile_upload_is_refused_fast_and_small(tmp_path):
    """32 MB of highly compressible rows (the upload limit): refused while streaming, < 5 s and < 300 MB."""
    gold = gold_labels(("imdb",), n=25_000)
    valid = make_submission(tmp_path, gold, depths=(3,), name="big")
    manifest = manifest_of(valid)
    path = manifest["files"][0]["path"]
    tsv = zip_members(valid)[path]
    header, body = tsv.split(b"\n", 1)
    hostile = header + b"\n" + body * 40  # 1,000,000 rows, ~100 MB unpacked
    zipped = rewrite(valid, tmp_path, **{path: hostile})
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(SubmissionError, match="has more than 25,000 rows"):
        read_submission(zipped, expected_rows={"imdb": 25_000})
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert elapsed < 5.0 and peak < 300 * 2**20, (elapsed, peak)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                    max_leaves=20))
@settings(max_examples=80, deadline=None)
def test_json_depth_matches_the_structure(value):
    def depth(v):
        if isinstance(v, list):
            return 1 + max(map(depth, v), default=0)
        if isinstance(v, dict):
            return 1 + max(map(depth, v.values()), default=0)
        return 0

    raw = json.dumps(value).encode()
    assert json_depth(raw) == depth(value)
    if depth(value) <= MAX_JSON_DEPTH:
        assert load_json(raw, "x") == value


def test_json_strings_holding_brackets_do_not_count():
    assert json_depth(b'{"a": "[[[[\\"[[[", "b": [1]}') == 2


def test_dims_helper_is_bert_base():
    assert DIMS.hidden == 768  # the fixtures above rely on BERT-base-sized modules
