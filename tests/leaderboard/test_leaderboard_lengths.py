"""The web app never counts token lengths: a cold cache asks the uploader to try again (no daily slot taken) and starts
``elue-hf leaderboard-prepare`` in another process; ``elue-hf leaderboard-prepare`` is also the operator's step."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from elue_hf.cli import main
from elue_hf.elue.data import load_test_labels
from elue_hf.elue.submission.lengths import prepare
from elue_hf.leaderboard.lengths_job import lengths_folder
from elue_hf.leaderboard.quota import SubmitQuota
from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.spaces.leaderboard.app import Leaderboard
from elue_hf.spaces.leaderboard.identity import Identities
from tests.helpers.elue_fixtures import write_synthetic_elue
from tests.helpers.leaderboard import TOKENIZER_ID, make_submission, tokenizer_root, true_lengths


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    data = write_synthetic_elue(root / "ELUE", tasks=("sst-2",), sizes={"test": 40})
    tokenizers = tokenizer_root(root / "tokenizers")
    gold = {"sst-2": load_test_labels(data, "sst-2")}
    honest = make_submission(root, gold, depths=(3,), name="honest", lengths=true_lengths(data, ["sst-2"], tokenizers),
                             tokenizer=TOKENIZER_ID)
    return data, tokenizers, honest


def used_checks(store, identity: str) -> int:
    return SubmitQuota.for_store(store).used(identity, "check", datetime.now(timezone.utc))


def test_a_cold_cache_asks_to_try_again_takes_no_slot_and_starts_the_job(server, tmp_path, monkeypatch):
    data, tokenizers, honest = server
    store = SQLiteStore(tmp_path / "lb.db")
    board = Leaderboard(store, gold=data, tokenizer_roots=[tokenizers], identities=Identities(allow_anonymous=True),
                        prepare_lengths=False)
    starts = []
    monkeypatch.setattr(board.lengths_job, "start", lambda: starts.append(1))
    for store_result in (False, True):
        status, frame = board.submit(str(honest), store_result=store_result)
        assert status.startswith("**Not checked yet:** this server is still counting the token lengths of the SST-2 "
                                 "test set") and status.endswith("try again in a minute") and frame.empty
    assert len(starts) == 2 and store.count() == 31 and used_checks(store, "anonymous") == 0
    assert board.lengths.computed == 0 and board.lengths.tokenizers._loaded == {}
    prepare([tokenizers], data, lengths_folder(store))  # what the job does, in another process
    status, _ = board.submit(str(honest), store_result=False)
    assert "valid submission" in status and used_checks(store, "anonymous") == 1
    status, frame = board.submit(str(honest))
    assert "Stored honest" in status and set(frame["FLOPs"]) == {"consistent"}
    assert board.lengths.computed == 0 and board.lengths.tokenizers._loaded == {} and len(starts) == 2


@pytest.mark.slow  # a subprocess imports transformers
def test_the_start_up_job_counts_in_another_process(server, tmp_path):
    data, tokenizers, honest = server
    store = SQLiteStore(tmp_path / "lb.db")
    board = Leaderboard(store, gold=data, tokenizer_roots=[tokenizers], identities=Identities(allow_anonymous=True))
    assert board.lengths_job.running() or board.lengths_job.process.returncode is not None
    assert board.lengths_job.wait(timeout=300) == 0
    assert "elue-tests/synthetic-wordpiece SST-2: counted" in (lengths_folder(store) / "prepare.log").read_text()
    status, _ = board.submit(str(honest))
    assert "Stored honest" in status and board.lengths.computed == 0 and board.lengths.tokenizers._loaded == {}


def test_the_prepare_command(server, tmp_path, capsys, monkeypatch):
    data, tokenizers, _ = server
    db = tmp_path / "lb.db"
    args = ["leaderboard-prepare", "--db", str(db), "--data-dir", str(data), "--tokenizer-dir", str(tokenizers)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"token lengths in {tmp_path / 'token-lengths'}: 1 counted, 0 already there" in out
    assert main(args) == 0 and ": 0 counted, 1 already there, 0 tokenizer(s) refused" in capsys.readouterr().out
    (tokenizers / "owner--broken").mkdir()
    try:
        assert main(args) == 1  # a folder that is no tokenizer: the operator is told
        assert "owner/broken SST-2: refused" in capsys.readouterr().out
    finally:
        (tokenizers / "owner--broken").rmdir()
    monkeypatch.delenv("ELUE_DATA_DIR", raising=False)
    monkeypatch.delenv("ELUE_TOKENIZER_DIR", raising=False)
    assert main(["leaderboard-prepare", "--db", str(db), "--tokenizer-dir", str(tokenizers)]) == 2
    assert main(["leaderboard-prepare", "--db", str(db), "--data-dir", str(data)]) == 2
    err = capsys.readouterr().err
    assert "give --data-dir" in err and "give --tokenizer-dir" in err and "Traceback" not in err
