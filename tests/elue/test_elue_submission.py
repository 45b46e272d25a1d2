"""Submissions: modules grammar, module spec, write/read/zip, FLOPs verification, bad input, property tests."""

import io
import json
import os
import zipfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from elue_hf.elue.flops import ModelDims, elasticbert_flops
from elue_hf.elue.flops.module_spec import (
    ModulesError,
    encoder_modules,
    format_modules,
    module_spec_from_config,
    modules_macs,
    parse_modules,
    validate_module_spec,
)
from elue_hf.elue.submission import (
    PredictionFile,
    SubmissionError,
    SubmissionLimits,
    parse_predictions_tsv,
    read_submission,
    submission_bytes,
    write_submission,
    zip_submission,
)

DIMS = ModelDims(hidden=768, intermediate=3072, heads=12, num_layers=12, num_labels=2,
                 exit_layers=tuple(range(1, 13)))
SPEC = module_spec_from_config(DIMS)


def _point(n=20, seed=0, mode="dynamic", task="sst-2", labels=2):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, 80, n)
    exits = rng.integers(1, 13, n)
    preds = rng.integers(0, labels, n)
    modules = [encoder_modules(DIMS, int(a), int(b), mode) for a, b in zip(lengths, exits)]
    return PredictionFile(task, preds, modules=modules, label=f"{mode}-{seed}"), lengths, exits


# ------------------------------------------------------------------------------------------- modules grammar


def test_modules_example_from_the_paper_and_costs():
    entries = parse_modules("(15),emb; (15,768),layer_1; (768),exit_1; (15,768),layer_2; (768),exit_2")
    assert entries[0] == ("emb", (15,)) and entries[-1] == ("exit_2", (768,))
    macs = modules_macs("(15),emb; (15,768),layer_1; (768),exit_1; (15,768),layer_2; (768),exit_2", SPEC)
    assert 2 * macs / 1e6 == pytest.approx(elasticbert_flops(DIMS, 15, 2, "dynamic"))
    assert parse_modules(" (3, 5 ,768) , layer_1 ") == [("layer_1", (3, 5, 768))]


def test_token_level_layer_entries_match_hashee_rule():
    m = [128, 107, 86, 65, 44, 23]
    six = ModelDims(768, 3072, 12, 6, 2, (6,))
    text = encoder_modules(six, 128, 6, "static", active_tokens=m)
    assert "(107,128,768),layer_2" in text and "(128,768),layer_1" in text
    assert 2 * modules_macs(text, module_spec_from_config(six)) / 1e6 == pytest.approx(7341.01, abs=0.005)


def test_a_layer_with_no_active_token_costs_its_key_and_value_projections():
    # HashEE with special ids exiting early: every token of an instance can leave before the last layer
    six = ModelDims(768, 3072, 12, 6, 2, (6,))
    text = encoder_modules(six, 10, 6, "static", active_tokens=[10, 10, 0, 0, 0, 0])
    assert "(0,10,768),layer_3" in text and parse_modules(text)[3] == ("layer_3", (0, 10, 768))
    full, zero = (modules_macs(f"(10),emb; ({m},10,768),layer_1; (768),exit_6", module_spec_from_config(six))
                  for m in (1, 0))
    assert full - zero == modules_macs("(1,10,768),layer_1", SPEC) - 2 * 10 * 768**2  # 0 queries: 2 n d^2 left
    for bad in ("(0,768),layer_1", "(0),emb", "(0,0,768),layer_1", "(5,0,768),layer_1"):
        with pytest.raises(ModulesError):
            modules_macs(bad, SPEC)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "entry 1"),
        ("(15),emb;", "entry 2"),
        ("(15,),emb", "entry 1 '\\(15,\\),emb': the shape must be comma-separated positive integers"),
        ("(0),emb", "every dimension"),
        ("(-3),emb", "entry 1"),
        ("(1.5),emb", "entry 1"),
        ("15,emb", "entry 1"),
        ("(15)emb", "entry 1"),
        ("(15),e mb", "entry 1"),
        ("(15),emb; (15,768),layer_99", "not in the module spec"),
        ("(15,768),emb", None),
        ("(15,700),layer_1", "expected \\(n,768\\)"),
        ("(20,15,768),layer_1", "m <= n"),
        ("(768,1),exit_1", "expected \\(768\\)"),
    ],
)
def test_malformed_modules(text, message):
    if message is None:  # (n, d) is accepted for the embedding
        assert modules_macs(text, SPEC) == 2 * 15 * 768
        return
    with pytest.raises(ModulesError, match=message):
        modules_macs(text, SPEC)


def test_module_spec_validation():
    assert validate_module_spec({"x": {"kind": "linear", "in": 4, "out": 2}}) == {
        "x": {"kind": "linear", "in": 4, "out": 2}}
    assert validate_module_spec({"e": {"kind": "exit", "d": 8, "labels": 3}})["e"]["pooler"] is True
    for bad, msg in [
        ({}, "non-empty"),
        ({"x": {"kind": "conv"}}, "unknown kind"),
        ({"x": {"kind": "linear", "in": 4}}, "'out' must be a positive integer"),
        ({"x": {"kind": "linear", "in": 4, "out": 2.5}}, "'out' must be a positive integer"),
        ({"x": {"kind": "layer", "d": 10, "d_ff": 4, "heads": 3}}, "not divisible"),
        ({"x": {"kind": "layer_norm", "d": 4, "eps": 1}}, "unknown fields"),
        ({"bad name!": {"kind": "layer_norm", "d": 4}}, "must match"),
    ]:
        with pytest.raises(ModulesError, match=msg):
            validate_module_spec(bad)
    assert modules_macs("(2,3,4),x", {"x": {"kind": "linear", "in": 4, "out": 5}}) == 2 * 3 * 4 * 5
    assert modules_macs("(7,4),n", {"n": {"kind": "layer_norm", "d": 4}}) == 2 * 28


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,10}", fullmatch=True),
                          st.lists(st.integers(1, 10**6), min_size=1, max_size=4)), min_size=1, max_size=8))
def test_format_parse_roundtrip(entries):
    entries = [(name, tuple(shape)) for name, shape in entries]
    assert parse_modules(format_modules(entries)) == entries


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet="(),;0123456789 _abcemblayrxit\t-.", max_size=60))
def test_modules_parser_only_raises_modules_error(text):
    try:
        macs = modules_macs(text, SPEC)
    except ModulesError:
        return
    assert isinstance(macs, int) and macs > 0


# ------------------------------------------------------------------------------------------- write / read


def test_roundtrip_directory_and_zip(tmp_path):
    a, lengths, exits = _point(25, 1)
    b = PredictionFile("sts-b", np.linspace(0, 5, 7), flops=np.full(7, 123.25), label="self")
    sub = write_submission(tmp_path / "sub", "Model X", "desc", 109_483_778, {"dyn": a, "other": b},
                           module_spec=SPEC)
    manifest = json.loads((sub / "submission.json").read_text())
    assert manifest["files"][0]["path"] == "sst-2/dyn.tsv" and manifest["files"][1]["flops_source"] == "self-reported"
    zipped = zip_submission(sub)
    for source in (sub, zipped):
        s = read_submission(source)
        f, g = s.files
        np.testing.assert_array_equal(f.predictions, a.predictions)
        np.testing.assert_allclose(f.mflops, elasticbert_flops(DIMS, lengths, exits, "dynamic"), rtol=1e-12)
        assert f.flops_tier == "consistent" and g.flops_tier == "self-reported" and g.mean_mflops == 123.25
        np.testing.assert_allclose(g.predictions, np.linspace(0, 5, 7))
        assert s.params == 109_483_778 and s.model_name == "Model X"
    assert zipfile.ZipFile(io.BytesIO(submission_bytes(sub))).namelist() == zipfile.ZipFile(zipped).namelist()


def test_per_file_spec_for_other_label_counts(tmp_path):
    three = ModelDims(768, 3072, 12, 12, 3, tuple(range(1, 13)))
    modules = [encoder_modules(three, 10, 2, "dynamic")] * 3
    point = PredictionFile("snli", [0, 1, 2], modules=modules, module_spec=module_spec_from_config(three))
    sub = write_submission(tmp_path / "s", "m", "", 10, [point], module_spec=SPEC)
    f = read_submission(sub).files[0]
    assert f.mean_mflops == pytest.approx(elasticbert_flops(three, 10, 2, "dynamic"))


def test_claimed_mean_flops_are_verified(tmp_path):
    a, _, _ = _point(10, 2)
    sub = write_submission(tmp_path / "s", "m", "", 10, {"p": a}, module_spec=SPEC)
    manifest = json.loads((sub / "submission.json").read_text())
    true = manifest["files"][0]["mean_flops"]
    manifest["files"][0]["mean_flops"] = true * 1.009  # within 1%: accepted, the recomputed value is used
    (sub / "submission.json").write_text(json.dumps(manifest))
    assert read_submission(sub).files[0].mean_mflops == true
    manifest["files"][0]["mean_flops"] = true * 0.98
    (sub / "submission.json").write_text(json.dumps(manifest))
    with pytest.raises(SubmissionError, match=r"claimed mean FLOPs .* but the modules give .*2\.0\d% off"):
        read_submission(sub)


def test_writer_rejects_bad_points(tmp_path):
    with pytest.raises(SubmissionError, match="outside the label set"):
        write_submission(tmp_path / "a", "m", "", 10, [PredictionFile("sst-2", [0, 2], flops=[1.0, 1.0])])
    with pytest.raises(SubmissionError, match="not finite"):
        write_submission(tmp_path / "b", "m", "", 10, [PredictionFile("sts-b", [0.1, float("nan")], flops=[1, 1])])
    with pytest.raises(SubmissionError, match="give `modules`"):
        write_submission(tmp_path / "c", "m", "", 10, [PredictionFile("sst-2", [0, 1])])
    with pytest.raises(SubmissionError, match="need a module_spec"):
        write_submission(tmp_path / "d", "m", "", 10, [PredictionFile("sst-2", [0], modules=["(3),emb"])])
    with pytest.raises(SubmissionError, match="params"):
        write_submission(tmp_path / "e", "m", "", 0, [PredictionFile("sst-2", [0], flops=[1.0])])
    with pytest.raises(ValueError, match="unknown ELUE task"):
        write_submission(tmp_path / "f", "m", "", 10, [PredictionFile("cola", [0], flops=[1.0])])


# ------------------------------------------------------------------------------------------- bad TSV input


def _tsv(rows, header="index\tpred\tmodules\tflops"):
    return (header + "\n" + "\n".join(rows) + "\n").encode()


@pytest.mark.parametrize(
    "rows, task, message",
    [
        (["0\t1\t\t5", "0\t0\t\t5"], "sst-2", "line 3: duplicate index 0"),
        (["0\t1\t\t5", "2\t0\t\t5"], "sst-2", r"missing \[1\], unexpected \[2\]"),
        (["1\t1\t\t5"], "sst-2", r"missing \[0\]"),
        (["0\t1\t\t5", "x\t0\t\t5"], "sst-2", "line 3: index 'x' is not an integer"),
        (["0\t3\t\t5"], "snli", "label 3 is outside snli's label set 0..2"),
        (["0\t-1\t\t5"], "sst-2", "label -1 is outside"),
        (["0\t1.0\t\t5"], "sst-2", "pred '1.0' is not an integer"),
        (["0\tnan\t\t5"], "sts-b", "pred is NaN or infinite"),
        (["0\tinf\t\t5"], "sts-b", "pred is NaN or infinite"),
        (["0\t2.5\t\tabc"], "sts-b", "flops 'abc' is not a number"),
        (["0\t2.5\t\tnan"], "sts-b", "flops is NaN or infinite"),
        (["0\t2.5\t\t-4"], "sts-b", "flops must be > 0"),
        (["0\t1\t\t5\textra"], "sst-2", "expected 4 tab-separated fields, got 5"),
        (["0\t1"], "sst-2", "expected 4 tab-separated fields, got 2"),
        (["0\t1\t(3),emb;(3,768)layer_1\t5"], "sst-2", "malformed modules: entry 2"),
    ],
)
def test_bad_rows_are_rejected_with_the_line(rows, task, message):
    with pytest.raises(SubmissionError, match=message):
        parse_predictions_tsv(_tsv(rows), task, "x.tsv", SPEC)


def test_bad_headers_encoding_and_missing_flops():
    with pytest.raises(SubmissionError, match="header but no rows"):
        parse_predictions_tsv(b"index\tpred\tmodules\n", "sst-2")
    with pytest.raises(SubmissionError, match="header must be"):
        parse_predictions_tsv(b"idx\tpred\tmodules\n0\t1\t\n", "sst-2")
    with pytest.raises(SubmissionError, match="not UTF-8"):
        parse_predictions_tsv(b"index\tpred\tmodules\n0\t1\t\xff\n", "sst-2")
    with pytest.raises(SubmissionError, match="no FLOPs"):
        parse_predictions_tsv(_tsv(["0\t1\t"], "index\tpred\tmodules"), "sst-2")
    with pytest.raises(SubmissionError, match="needs a 'module_spec'"):
        parse_predictions_tsv(_tsv(["0\t1\t(3),emb"], "index\tpred\tmodules"), "sst-2", "x", None)
    with pytest.raises(SubmissionError, match="limit is 2"):
        parse_predictions_tsv(_tsv(["0\t1\t\t1", "1\t1\t\t1", "2\t1\t\t1"]), "sst-2", max_rows=2)
    raw = b"\xef\xbb\xbf" + _tsv(["1\t0\t\t2", "0\t1\t\t3"]).replace(b"\n", b"\r\n")
    preds, macs, flops = parse_predictions_tsv(raw, "sst-2")
    assert preds.tolist() == [1, 0] and flops.tolist() == [3.0, 2.0] and macs is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200) | st.text(alphabet="0123456789\t\n.-(),;abcdefmnlu ", max_size=120).map(str.encode))
def test_parser_fuzz_only_raises_submission_error(blob):
    for data in (blob, b"index\tpred\tmodules\tflops\n" + blob):
        try:
            preds, macs, flops = parse_predictions_tsv(data, "sst-2", "f.tsv", SPEC)
        except SubmissionError:
            continue
        assert preds.shape[0] > 0 and set(np.unique(preds)) <= {0, 1}


@settings(max_examples=25, deadline=None)
@given(st.permutations(list(range(12))), st.integers(0, 10**6))
def test_row_order_does_not_matter(perm, seed):
    rng = np.random.default_rng(seed)
    preds = rng.integers(0, 3, 12)
    mods = [encoder_modules(DIMS, int(n), int(k), "dynamic") for n, k in zip(rng.integers(1, 50, 12),
                                                                              rng.integers(1, 13, 12))]
    rows = [f"{i}\t{preds[i]}\t{mods[i]}" for i in perm]
    got_preds, macs, _ = parse_predictions_tsv(_tsv(rows, "index\tpred\tmodules"), "snli", "f", SPEC)
    np.testing.assert_array_equal(got_preds, preds)
    np.testing.assert_array_equal(macs, [modules_macs(m, SPEC) for m in mods])


# ------------------------------------------------------------------------------------------- manifest / zip


def _write_zip(path, members: dict, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=compression)
    return path


def _manifest(**over):
    m = {"format": "elue-hf-submission/1", "model_name": "m", "description": "", "params": 10,
         "module_spec": None, "files": [{"path": "sst-2/a.tsv", "task": "sst-2", "label": "a", "mean_flops": 5.0}]}
    m.update(over)
    return json.dumps(m).encode()


GOOD_TSV = _tsv(["0\t1\t\t5", "1\t0\t\t5"])


def test_valid_handmade_zip_and_nested_folder(tmp_path):
    z = _write_zip(tmp_path / "ok.zip", {"submission.json": _manifest(), "sst-2/a.tsv": GOOD_TSV})
    assert read_submission(z).files[0].mean_mflops == 5.0
    z2 = _write_zip(tmp_path / "nested.zip", {"mine/submission.json": _manifest(), "mine/sst-2/a.tsv": GOOD_TSV})
    assert read_submission(z2).files[0].predictions.tolist() == [1, 0]


@pytest.mark.parametrize(
    "members, message",
    [
        ({"submission.json": _manifest(), "sst-2/a.tsv": GOOD_TSV, "../evil.tsv": b"x"}, "escapes the archive"),
        ({"submission.json": _manifest(), "sst-2/a.tsv": GOOD_TSV, "/etc/evil": b"x"}, "absolute"),
        ({"submission.json": _manifest(), "sst-2/a.tsv": GOOD_TSV, "C:/evil": b"x"}, "absolute"),
        ({"submission.json": _manifest(), "sst-2/a.tsv": GOOD_TSV, "extra.py": b"import os"}, "not listed"),
        ({"submission.json": _manifest()}, "missing from the zip"),
        ({"sst-2/a.tsv": GOOD_TSV}, "no submission.json"),
        ({"submission.json": b"{not json", "sst-2/a.tsv": GOOD_TSV}, "not valid JSON"),
        ({"submission.json": _manifest(format="v0"), "sst-2/a.tsv": GOOD_TSV}, "'format' must be"),
        ({"submission.json": _manifest(params="lots"), "sst-2/a.tsv": GOOD_TSV}, "'params' must be a positive"),
        ({"submission.json": _manifest(files=[{"path": "sst-2/a.tsv", "task": "sst-2", "mean_flops": "fast"}]),
          "sst-2/a.tsv": GOOD_TSV}, "'mean_flops' must be a finite positive number"),
        ({"submission.json": _manifest(files=[{"path": "sst-2/a.tsv", "task": "sst-2", "mean_flops": True}]),
          "sst-2/a.tsv": GOOD_TSV}, "'mean_flops' must be a finite positive number"),
        ({"submission.json": _manifest().replace(b"5.0", b"NaN"), "sst-2/a.tsv": GOOD_TSV}, "NaN is not a valid"),
        ({"submission.json": _manifest(files=[{"path": "sst-2/a.tsv", "task": "cola", "mean_flops": 5}]),
          "sst-2/a.tsv": GOOD_TSV}, "unknown ELUE task 'cola'"),
        ({"submission.json": _manifest(files=[{"path": "../a.tsv", "task": "sst-2", "mean_flops": 5}])},
         "must be a relative .tsv path"),
        ({"submission.json": _manifest(files=[{"path": "sst-2/a.tsv", "task": "sst-2", "mean_flops": 5}] * 2),
          "sst-2/a.tsv": GOOD_TSV}, "listed twice"),
        ({"submission.json": _manifest(module_spec={"x": {"kind": "conv"}}), "sst-2/a.tsv": GOOD_TSV},
         "unknown kind"),
    ],
)
def test_bad_zips_are_rejected(tmp_path, members, message):
    z = _write_zip(tmp_path / "bad.zip", members)
    with pytest.raises(SubmissionError, match=message):
        read_submission(z)


def test_zip_bomb_and_size_limits(tmp_path):
    bomb = _tsv(["0\t1\t\t5", "1\t0\t\t5"]) + b"\n" * (4 * 2**20)
    z = _write_zip(tmp_path / "bomb.zip", {"submission.json": _manifest(), "sst-2/a.tsv": bomb})
    with pytest.raises(SubmissionError, match="compression ratio"):
        read_submission(z)
    z2 = _write_zip(tmp_path / "big.zip", {"submission.json": _manifest(), "sst-2/a.tsv": GOOD_TSV})
    with pytest.raises(SubmissionError, match="limit is 10"):
        read_submission(z2, SubmissionLimits(max_file_bytes=10))
    with pytest.raises(SubmissionError, match="bytes; the limit is 100"):
        read_submission(z2, SubmissionLimits(max_archive_bytes=100))
    with pytest.raises(SubmissionError, match="entries; the limit is 1"):
        read_submission(z2, SubmissionLimits(max_entries=1))
    corrupt = bytearray(z2.read_bytes())
    start = corrupt.index(b"sst-2/a.tsv") + len("sst-2/a.tsv")  # first local header's data follows its name
    corrupt[start + 2 : start + 8] = b"\xff" * 6
    (tmp_path / "corrupt.zip").write_bytes(bytes(corrupt))
    with pytest.raises(SubmissionError, match="corrupt"):
        read_submission(tmp_path / "corrupt.zip")
    (tmp_path / "notzip.zip").write_bytes(b"PK junk")
    with pytest.raises(SubmissionError, match="neither a submission directory nor a zip"):
        read_submission(tmp_path / "notzip.zip")
    with pytest.raises(SubmissionError, match="not found"):
        read_submission(tmp_path / "nothing")


def test_directory_symlink_escape_is_rejected(tmp_path):
    sub = tmp_path / "sub"
    (sub / "sst-2").mkdir(parents=True)
    (sub / "submission.json").write_bytes(_manifest())
    (tmp_path / "secret.tsv").write_bytes(GOOD_TSV)
    (sub / "sst-2" / "a.tsv").symlink_to(tmp_path / "secret.tsv")
    with pytest.raises(SubmissionError, match="outside the submission directory"):
        read_submission(sub)
