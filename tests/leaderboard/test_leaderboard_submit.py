"""Submitting to the leaderboard: scoring, ranks, duplicates, and every way an upload can be hostile."""

from __future__ import annotations

import builtins
import json
import marshal
import pickle
import threading
import zipfile
from pathlib import Path
from unittest.mock import patch

import pytest

from elue_hf.elue.submission import SubmissionLimits
from elue_hf.leaderboard.seed import seed_store
from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.leaderboard.submit import SubmitError, UploadLimits, submit_file
from tests.helpers.leaderboard import (
    failing_point_insert,
    gold_labels,
    make_submission,
    manifest_of,
    write_zip,
    zip_members,
)


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "lb.db")
    seed_store(s)
    return s


@pytest.fixture(scope="module")
def gold():
    return gold_labels()


@pytest.fixture(scope="module")
def valid_zip(tmp_path_factory, gold):
    return make_submission(tmp_path_factory.mktemp("sub"), gold)


def assert_nothing_stored(store, before: int = 31):
    assert store.count() == before
    assert store.integrity_check() == []


# ------------------------------------------------------------------------------------------------ happy paths


def test_submit_scores_stores_and_ranks(store, valid_zip, gold):
    outcome = submit_file(store, valid_zip, gold, submitter="alice")
    assert outcome.stored and not outcome.duplicate
    e = outcome.entry
    assert store.get_entry(e.entry_id) == e
    assert e.source == "submission" and e.submitter == "alice" and e.flops_tier == "consistent"
    assert e.elue_score is not None and abs(e.elue_score - outcome.score.elue_score) <= 0.05  # metrics to 0.1
    assert all(p.performance == round(p.performance, 1) and list(p.metrics.values()) == [p.performance]
               for p in e.points)
    assert len(e.points) == 12 and {p.max_seq_length for p in e.points} == {None}
    # the fixture's gold is not the ELUE test set (40 rows), and the FLOPs are not verified: listed, never ranked
    assert outcome.rank.elue is None and not outcome.rank.tasks and not outcome.rank.tracks
    assert outcome.rank.unranked.startswith("not ranked: scored on this server's SST-2 data (40 rows)")
    assert e.other_data == "scored on this server's SST-2 data (40 rows), not the ELUE test set (2,210 rows)"
    text = outcome.summary()
    assert f"Stored tiny-model as entry {e.entry_id}" in text and "ELUE rank" not in text
    assert "Rank: not ranked: scored on this server's SST-2 data" in text


def test_validate_only_stores_nothing(store, valid_zip, gold):
    outcome = submit_file(store, valid_zip, gold, store_result=False)
    assert not outcome.stored and outcome.rank is None
    text = outcome.summary()
    assert "Nothing was stored and nothing was scored" in text and outcome.score is None and outcome.entry is None
    assert "ELUE" not in text and "acc" not in text  # nothing computed from the gold labels is reported
    assert "FLOPs tier if stored: consistent" in text
    assert_nothing_stored(store)


def test_the_same_results_rezipped_are_a_duplicate(store, valid_zip, gold, tmp_path):
    first = submit_file(store, valid_zip, gold)
    members = zip_members(valid_zip)
    rezipped = write_zip(tmp_path / "again.zip", dict(reversed(list(members.items()))), zipfile.ZIP_STORED)
    assert rezipped.read_bytes() != valid_zip.read_bytes()
    again = submit_file(store, rezipped, gold)
    assert again.duplicate and not again.stored and again.entry.entry_id == first.entry.entry_id
    assert "nothing new was stored" in again.summary()
    assert store.count() == 32


def test_concurrent_identical_uploads_store_one_entry(store, valid_zip, gold):
    outcomes = []
    unlimited = UploadLimits(max_submissions_per_day=0)  # duplicates here; the daily limit: test_leaderboard_quota
    threads = [threading.Thread(target=lambda: outcomes.append(submit_file(store, valid_zip, gold, limits=unlimited)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 4 and sum(o.stored for o in outcomes) == 1
    assert len({o.entry.entry_id for o in outcomes}) == 1
    assert store.count() == 32


def test_self_reported_partial_submission(store, gold, tmp_path):
    z = make_submission(tmp_path, {"sst-2": gold["sst-2"]}, name="sst-only", self_reported=True)
    outcome = submit_file(store, z, gold)
    assert outcome.entry.elue_score is None and outcome.entry.partial_elue_score is not None
    assert outcome.entry.flops_tier == "self-reported" and outcome.rank.elue is None
    assert "self-reported" in outcome.summary() and "Partial: 1/6 tasks" in outcome.summary()


# ------------------------------------------------------------------------------------------- refused uploads


def test_no_gold_labels_means_no_scoring(store, valid_zip):
    with pytest.raises(SubmitError, match="no gold test labels configured"):
        submit_file(store, valid_zip, None)
    assert_nothing_stored(store)


def test_upload_size_limit(store, valid_zip, gold):
    limits = UploadLimits(max_upload_bytes=1000)
    with pytest.raises(SubmitError, match=r"the upload is [\d,]+ bytes; the limit is 1,000 bytes"):
        submit_file(store, valid_zip, gold, limits=limits)
    assert_nothing_stored(store)


@pytest.mark.parametrize("content, message", [
    (b"", "the upload is empty"),
    (b"index\tpred\tmodules\n0\t1\t\n", "is not a zip file"),
    (b"PK\x03\x04" + b"\x00" * 100, "is not a zip file"),
])
def test_not_a_zip(store, gold, tmp_path, content, message):
    path = tmp_path / "upload.zip"
    path.write_bytes(content)
    with pytest.raises(SubmitError, match=message):
        submit_file(store, path, gold)
    assert_nothing_stored(store)


def test_truncated_zip(store, gold, valid_zip, tmp_path):
    data = valid_zip.read_bytes()
    path = tmp_path / "cut.zip"
    path.write_bytes(data[: len(data) // 2] + data[-22:])  # keeps an end-of-central-directory record
    with pytest.raises(SubmitError, match="damaged|not a readable zip|Bad"):
        submit_file(store, path, gold)
    assert_nothing_stored(store)


@pytest.mark.parametrize("member", ["../evil.tsv", "/etc/evil.tsv", "sst-2/../../evil.tsv", "C:/evil.tsv",
                                    "sst-2\\..\\evil.tsv"])
def test_zip_path_traversal_is_refused(store, gold, valid_zip, tmp_path, member):
    members = zip_members(valid_zip)
    manifest = manifest_of(valid_zip)
    path = manifest["files"][0]["path"]
    members[member] = members.pop(path)
    manifest["files"][0]["path"] = member
    members["submission.json"] = json.dumps(manifest)
    bad = write_zip(tmp_path / "traversal.zip", members)
    with pytest.raises(SubmitError, match="escapes the archive|absolute or non-POSIX path"):
        submit_file(store, bad, gold)
    assert not (tmp_path.parent / "evil.tsv").exists() and not Path("/etc/evil.tsv").exists()
    assert_nothing_stored(store)


def test_symlink_members_are_refused(store, gold, valid_zip, tmp_path):
    members = zip_members(valid_zip)
    bad = tmp_path / "symlink.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in members.items():
            if name.endswith("k3.tsv") and name.startswith("sst-2"):
                info = zipfile.ZipInfo(name)
                info.external_attr = (0o120777 << 16)  # a symbolic link to /etc/passwd
                zf.writestr(info, "/etc/passwd")
            else:
                zf.writestr(name, data)
    with pytest.raises(SubmitError, match="symbolic link"):
        submit_file(store, bad, gold)
    assert_nothing_stored(store)


def test_zip_bombs_are_refused(store, gold, valid_zip, tmp_path):
    members = zip_members(valid_zip)
    path = manifest_of(valid_zip)["files"][0]["path"]
    members[path] = members[path] + b"\0" * (8 * 2**20)  # 8 MiB of zeros deflate ~1000:1
    bomb = write_zip(tmp_path / "bomb.zip", members)
    assert bomb.stat().st_size < 100_000
    with pytest.raises(SubmitError, match="compression ratio|zip bomb|beyond the allowed size"):
        submit_file(store, bomb, gold)
    tight = UploadLimits(reading=SubmissionLimits(max_file_bytes=2**20, max_compression_ratio=10_000))
    with pytest.raises(SubmitError, match="unpacks to"):
        submit_file(store, bomb, gold, limits=tight)
    assert_nothing_stored(store)


def test_too_many_members_are_refused(store, gold, valid_zip, tmp_path):
    members = zip_members(valid_zip)
    members.update({f"junk/{i}.txt": b"x" for i in range(300)})
    with pytest.raises(SubmitError, match="entries; the limit is 256"):
        submit_file(store, write_zip(tmp_path / "many.zip", members), gold)
    assert_nothing_stored(store)


def test_wrong_row_count_and_bad_manifest(store, gold, tmp_path):
    short = make_submission(tmp_path, {"sst-2": gold["sst-2"][:10]}, name="short")
    with pytest.raises(SubmitError, match="wrong row count"):
        submit_file(store, short, gold)
    bad = write_zip(tmp_path / "bad.zip", {"submission.json": "{not json"})
    with pytest.raises(SubmitError, match="not valid JSON"):
        submit_file(store, bad, gold)
    missing_gold = make_submission(tmp_path, {"snli": gold["snli"]}, name="snli")
    with pytest.raises(SubmitError, match="no gold labels given for task sst-2|no gold"):
        submit_file(store, missing_gold, {"sst-2": gold["sst-2"]})
    assert_nothing_stored(store)


# ------------------------------------------------------------------------------------------ no code ever runs


MARKER_CODE = "open({marker!r}, 'w').write('pwned')\n"


def test_uploaded_code_is_never_run(store, gold, valid_zip, tmp_path):
    marker = tmp_path / "PWNED"
    code = MARKER_CODE.format(marker=str(marker))
    members = zip_members(valid_zip)
    with_py = write_zip(tmp_path / "with_py.zip", {**members, "model.py": code, "sitecustomize.py": code,
                                                   "__init__.py": code})
    with pytest.raises(SubmitError, match="files not listed"):
        submit_file(store, with_py, gold)
    manifest = manifest_of(valid_zip)
    manifest["files"][0]["path"] = "model.py"
    listed_py = write_zip(tmp_path / "listed_py.zip", {**members, "submission.json": json.dumps(manifest),
                                                       "model.py": code})
    with pytest.raises(SubmitError, match="must be a relative .tsv path"):
        submit_file(store, listed_py, gold)
    pickled = write_zip(tmp_path / "pickle.zip", {"submission.json": pickle.dumps({"format": "x"})})
    with pytest.raises(SubmitError, match="not UTF-8"):
        submit_file(store, pickled, gold)
    assert not marker.exists()
    assert_nothing_stored(store)


def test_the_pipeline_never_executes_or_unpickles(store, gold, valid_zip, tmp_path):
    """With every dynamic-code entry point booby-trapped, a full submission still validates, scores and stores."""
    submit_file(store, valid_zip, gold, store_result=False)  # warm up lazy imports first
    second = make_submission(tmp_path, gold, name="second", seed=1)

    def trap(name):
        def refuse(*args, **kwargs):
            raise AssertionError(f"{name} was called while handling an upload")
        return refuse

    with patch.object(builtins, "exec", trap("exec")), patch.object(builtins, "eval", trap("eval")), \
            patch.object(builtins, "compile", trap("compile")), patch.object(pickle, "loads", trap("pickle.loads")), \
            patch.object(pickle, "load", trap("pickle.load")), patch.object(marshal, "loads", trap("marshal.loads")):
        outcome = submit_file(store, second, gold)
    assert outcome.stored and store.count() == 32


def test_a_store_failure_mid_write_leaves_nothing_half_stored(store, gold, valid_zip):
    failing = failing_point_insert("database disk image is malformed (simulated)")
    with patch.object(SQLiteStore, "_insert_points", failing):
        with pytest.raises(SubmitError, match="valid but could not be stored"):
            submit_file(store, valid_zip, gold)
    assert_nothing_stored(store)
    assert submit_file(store, valid_zip, gold).stored  # and the next attempt works


def test_a_directory_submission_works_from_the_cli_path(store, gold, tmp_path):
    z = make_submission(tmp_path, {"mrpc": gold["mrpc"]}, name="dir-sub")
    folder = tmp_path / "dir-sub"
    assert (folder / "submission.json").is_file() and z.is_file()
    assert submit_file(store, folder, gold).stored
