"""Hostile uploads at the leaderboard's edges: the CLI (exit code 2, one line), the app (one escaped sentence, the
upload deleted, no server paths), the per-submitter daily limit, validation that is no label oracle (a busy --port:
tests/package/test_cli.py)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from elue_hf.cli import main
from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.leaderboard.submit import SubmitError, UploadLimits, submit_file
from elue_hf.spaces.leaderboard.app import Leaderboard
from tests.helpers.leaderboard import gold_labels, make_submission, write_zip, zip_members


@pytest.fixture(scope="module")
def gold():
    return gold_labels(("sst-2",))


@pytest.fixture
def store(tmp_path):
    return SQLiteStore(tmp_path / "lb.db")


def hostile_zips(tmp_path, valid):
    members = zip_members(valid)
    manifest = json.loads(members["submission.json"])
    deep = {**members, "submission.json": b"[" * 200_000 + b"]" * 200_000}
    huge = {**members, "submission.json": json.dumps({**manifest, "params": 10**30}).encode()}
    kind = json.loads(members["submission.json"])
    kind["files"][0]["module_spec"]["emb"]["kind"] = ["embedding"]
    return {
        "deep": write_zip(tmp_path / "deep.zip", deep, compression=0),
        "params": write_zip(tmp_path / "params.zip", huge),
        "kind": write_zip(tmp_path / "kind.zip", {**members, "submission.json": json.dumps(kind).encode()}),
    }


def test_cli_refuses_hostile_uploads_with_exit_code_2_and_no_traceback(tmp_path, gold, capsys):
    valid = make_submission(tmp_path, gold, depths=(3,))
    data = tmp_path / "data"
    from tests.helpers.elue_fixtures import write_synthetic_elue

    write_synthetic_elue(data, ("sst-2",), sizes={"test": 40})
    for name, path in hostile_zips(tmp_path, valid).items():
        code = main(["leaderboard-submit", str(path), "--db", str(tmp_path / "lb.db"), "--data-dir", str(data)])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("elue-hf leaderboard-submit: error:") and "Traceback" not in err, name
        assert len(err.strip().splitlines()) == 1


def test_app_shows_one_escaped_sentence_deletes_the_upload_and_no_paths(tmp_path, gold, store):
    board = Leaderboard(store, gold=gold)
    valid = make_submission(tmp_path, gold, depths=(3,), name="evil")
    manifest = json.loads(zip_members(valid)["submission.json"])
    manifest["model_name"] = '<img src=x onerror="alert(1)"> **[click](http://x)**'
    named = write_zip(tmp_path / "named.zip", {**zip_members(valid), "submission.json": json.dumps(manifest)})
    for path in hostile_zips(tmp_path, valid).values():
        status, frame = board.submit(str(path), discard_upload=True)
        assert status.startswith("**Submission refused:**") and "\n" not in status and frame.empty
        assert not path.exists()  # uploads are deleted after processing
    status, _ = board.submit(str(named), "<b>mallory</b>", discard_upload=True, identity="token:mallory")
    assert "<img" not in status and "&lt;img" in status and "\\*\\*\\[click\\]" in status
    assert not named.exists()
    header = board.views()[0]
    assert str(tmp_path) not in header and "lb.db" not in header and "Store: SQLite database." in header


def test_validation_reports_nothing_from_the_gold_labels(tmp_path, gold, store):
    good = make_submission(tmp_path, gold, depths=(3,), accuracy=1.0, name="perfect")
    bad = make_submission(tmp_path, gold, depths=(3,), accuracy=0.0, name="wrong")
    first = submit_file(store, good, gold, store_result=False).summary()
    second = submit_file(store, bad, gold, store_result=False).summary()
    assert first.replace("perfect", "X") == second.replace("wrong", "X")  # perfect and all-wrong look the same
    assert store.count() == 0


def test_stored_submissions_per_submitter_are_limited_per_day(tmp_path, gold, store):
    limits = UploadLimits(max_submissions_per_day=2)
    now = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    zips = [make_submission(tmp_path, gold, depths=(3,), seed=i, name=f"m{i}") for i in range(4)]
    for z in zips[:2]:  # local callers (CLI, Python) count by submitter name, case and spaces ignored
        assert submit_file(store, z, gold, submitter="Eve", limits=limits, now=now).stored
    assert submit_file(store, zips[0], gold, submitter="eve", limits=limits, now=now).duplicate  # not counted
    with pytest.raises(SubmitError, match="eve already had 2 new entries stored in the last 24 hours"):
        submit_file(store, zips[2], gold, submitter=" eve ", limits=limits, now=now)
    assert submit_file(store, zips[2], gold, submitter="someone else", limits=limits, now=now).stored
    later = now + timedelta(hours=25)
    assert submit_file(store, zips[3], gold, submitter="Eve", limits=limits, now=later).stored
    assert store.count() == 4

