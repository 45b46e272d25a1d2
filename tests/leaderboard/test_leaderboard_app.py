"""The gradio app (its logic, then served on 127.0.0.1 and driven through gradio_client), the CLI, the Space."""

from __future__ import annotations

import runpy
import socket
from pathlib import Path

import pandas as pd
import pytest

from elue_hf.cli import build_parser, main
from elue_hf.elue.data import load_test_labels
from elue_hf.elue.tasks import TASK_KEYS
from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.spaces.leaderboard.app import Leaderboard, app_from_env, build_app, launch
from elue_hf.spaces.leaderboard.identity import Identities
from tests.helpers.elue_fixtures import write_synthetic_elue
from tests.helpers.leaderboard import (
    TOKENIZER_ID,
    gold_labels,
    make_submission,
    tokenizer_root,
    true_lengths,
    write_zip,
)

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gold():
    return gold_labels()


@pytest.fixture
def board(tmp_path, gold):
    return Leaderboard(SQLiteStore(tmp_path / "lb.db"), gold=gold)


def test_views_cover_every_tab(board):
    views = board.views()
    assert len(views) == 2 + 4 + 1 + 4 * len(TASK_KEYS)
    assert views[0].startswith("# ELUE leaderboard") and "31 entries (0 submissions" in views[0]
    assert all(isinstance(v, pd.DataFrame) for v in views[1:7])
    assert views[6].empty and "Why not ranked" in views[6].columns  # the unranked submissions
    for j in range(len(TASK_KEYS)):
        points, lines, table, caption = views[7 + 4 * j: 11 + 4 * j]
        assert {"x", "performance", "series"} <= set(points.columns) and len(lines) > 0
        assert isinstance(table, pd.DataFrame) and caption.endswith((".", "provisional."))
    assert "IMDb reference FLOPs are provisional" in views[7 + 4 * 1 + 3]


def test_views_filter_and_switch_axis(board):
    only_papers = board.views("albert", ["from the papers"], False, "Parameters")
    assert only_papers[1]["Model"].tolist() == ["ALBERT-3L", "ALBERT-base"]
    sst_points = only_papers[7]
    assert sst_points["model"].tolist() == ["ALBERT-base"]  # ALBERT-3L has no parameter count: table only
    assert "1 point(s) without a value on this axis" in only_papers[10]
    with pytest.raises(ValueError, match="unknown source filter"):
        board.views(sources=["gossip"])
    with pytest.raises(ValueError, match="unknown axis"):
        board.views(axis_label="Seconds")


def test_submit_messages(board, gold, tmp_path):
    status, frame = board.submit(None)
    assert "Nothing uploaded" in status and frame.empty
    bad = write_zip(tmp_path / "bad.zip", {"submission.json": '{"format": "elue-hf-submission/1"}'})
    status, frame = board.submit(str(bad), identity="token:bob")
    assert status.startswith("**Submission refused:**") and "model\\_name" in status and frame.empty
    good = make_submission(tmp_path, gold)
    status, frame = board.submit(str(good), "bob")  # no identity: anonymous uploads are off by default
    assert status.startswith("**Submission refused:** anonymous submissions are off") and frame.empty
    assert board.store.count() == 31
    status, frame = board.submit(str(good), "bob", identity="token:bob")
    assert "Stored tiny-model" in status and "not ranked" in status and "ELUE rank" not in status
    assert len(frame) == 12 and set(frame["FLOPs"]) == {"consistent"}
    views = board.views()
    assert "tiny-model" not in views[1]["Model"].tolist()  # never in the ranking
    assert views[6]["Model"].tolist() == ["tiny-model"]  # listed apart, with why and its description
    assert views[6]["Why not ranked"][0].startswith("scored on this server's SST-2 data")
    assert views[6]["Description"][0] == "test submission tiny-model"
    sst_points = views[7]
    assert set(sst_points[sst_points["model"] == "tiny-model"]["series"]) == {"not ranked: not the ELUE test set"}
    closed = Leaderboard(board.store, gold=None, seed=False)
    assert "no gold test labels configured" in closed.submit(str(good), identity="token:bob")[0]
    assert "Submissions: closed" in closed.views()[0]


def test_served_app_through_gradio_client(tmp_path, gold, monkeypatch):
    from gradio_client import Client, handle_file

    uploads = tmp_path / "gradio-uploads"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    store = SQLiteStore(tmp_path / "lb.db")
    token = "carol-token-0123456789"
    app = build_app(store, gold=gold, identities=Identities(tokens={token: "carol"}))
    port = free_port()
    launch(app, port=port, block=False, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        api = client.view_api(print_info=False, return_format="dict")
        assert {"/refresh", "/submit", "/validate"} <= set(api["named_endpoints"])
        good = make_submission(tmp_path, gold, name="client-model")
        status, _ = client.predict(handle_file(str(good)), "carol", "wrong-token", api_name="/validate")
        assert "anonymous submissions are off" in status
        status, _ = client.predict(handle_file(str(good)), "carol", token, api_name="/validate")
        assert "nothing was scored" in status and store.count() == 31
        everything = ["submissions", "from the papers", "reference curve"]
        result = client.predict(handle_file(str(good)), "carol", token, "", everything, False, "FLOPs",
                                api_name="/submit")
        assert "Stored client-model" in result[0] and store.count() == 32
        assert "client-model" not in [row[1] for row in result[3]["data"]]  # the refreshed ELUE ranking
        assert result[8]["data"][0][0] == "client-model"  # the refreshed table of unranked submissions
        refreshed = client.predict("client", ["submissions"], False, "FLOPs", api_name="/refresh")
        assert refreshed[1]["data"] == [] or not any(refreshed[1]["data"][0])
        assert [row[0] for row in refreshed[6]["data"]] == ["client-model"]
        bad = write_zip(tmp_path / "bad.zip", {"../evil.tsv": "x", "submission.json": "{}"})
        result = client.predict(handle_file(str(bad)), "", token, "", ["submissions"], False, "FLOPs",
                                api_name="/submit")
        assert result[0].startswith("**Submission refused:**") and store.count() == 32
        assert uploads.is_dir() and not list(uploads.rglob("*.zip"))  # every upload deleted after processing
    finally:
        app.close()


def test_app_from_env_and_the_space_entry_point(tmp_path, monkeypatch):
    env = {"ELUE_LEADERBOARD_DB": str(tmp_path / "env.db")}
    app = app_from_env(env)
    assert app.board.store.path == tmp_path / "env.db" and app.board.gold is None
    monkeypatch.setenv("ELUE_LEADERBOARD_DB", str(tmp_path / "space.db"))
    monkeypatch.delenv("ELUE_RESULTS_REPO", raising=False)
    namespace = runpy.run_path(str(REPO / "spaces" / "leaderboard" / "app.py"), run_name="space_app")
    assert namespace["demo"].board.store.path == tmp_path / "space.db"
    assert SQLiteStore(tmp_path / "space.db").count() == 31


# ------------------------------------------------------------------------------------------------------ CLI


def test_cli_registers_leaderboard_commands():
    parser = build_parser()
    args = parser.parse_args(["leaderboard", "--port", "8123", "--db", "x.db"])
    assert args.port == 8123 and args.host == "127.0.0.1" and callable(args.func)
    args = parser.parse_args(["leaderboard-submit", "s.zip", "--data-dir", "d", "--validate-only"])
    assert args.validate_only and args.submission == "s.zip"


def test_cli_submit_against_an_elue_data_dir(tmp_path, capsys):
    data = write_synthetic_elue(tmp_path / "ELUE", tasks=("sst-2", "sts-b"), sizes={"test": 30})
    gold = {t: load_test_labels(data, t) for t in ("sst-2", "sts-b")}
    roots = tokenizer_root(tmp_path / "tokenizers")
    z = make_submission(tmp_path, gold, name="cli-model", lengths=true_lengths(data, gold, roots),
                        tokenizer=TOKENIZER_ID)
    db = tmp_path / "cli.db"
    assert main(["leaderboard-submit", str(z), "--db", str(db), "--data-dir", str(data), "--submitter", "dan",
                 "--tokenizer-dir", str(roots)]) == 0
    out = capsys.readouterr().out
    assert "Stored cli-model" in out and f"elue-hf leaderboard --db {db}" in out
    assert f"--data-dir {data} --tokenizer-dir {roots}" in out  # the hint keeps the server's checks
    assert main(["leaderboard-submit", str(z), "--db", str(db), "--data-dir", str(data), "--tokenizer-dir",
                 str(roots)]) == 0
    assert "nothing new was stored" in capsys.readouterr().out
    assert SQLiteStore(db).count() == 32
    assert main(["leaderboard-submit", str(tmp_path / "missing.zip"), "--db", str(db), "--data-dir", str(data)]) == 2
    assert "no file at" in capsys.readouterr().err


def test_cli_leaderboard_launches_the_app(tmp_path, monkeypatch, capsys):
    seen = {}

    def fake_launch(app, host, port, block):
        seen.update(app=app, host=host, port=port, block=block)

    monkeypatch.setattr("elue_hf.spaces.leaderboard.app.launch", fake_launch)
    assert main(["leaderboard", "--db", str(tmp_path / "l.db"), "--port", "9999"]) == 0
    assert seen["port"] == 9999 and seen["host"] == "127.0.0.1" and seen["block"] is True
    assert seen["app"].board.store.count() == 31
    assert "http://127.0.0.1:9999/" in capsys.readouterr().out
