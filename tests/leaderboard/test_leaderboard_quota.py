"""No label oracle through stored entries (issue 18 item 2): per-identity daily limits, atomic under threads and
processes, shared by "Validate only" and submit; points per task capped; identities the app can trust."""

from __future__ import annotations

import multiprocessing
import shutil
import socket
import threading
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from elue_hf.leaderboard.quota import QuotaExceeded, SubmitQuota, quota_path
from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.leaderboard.submit import SubmitError, UploadLimits, submit_file
from elue_hf.spaces.leaderboard.identity import Identities, IdentityError, parse_tokens
from tests.helpers.leaderboard import gold_labels, make_submission

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def gold():
    return gold_labels(("sst-2",))


def _take_in_process(path: str, results) -> None:
    try:
        SubmitQuota(path).take("hf:mallory", "store", 3, NOW)
        results.put(True)
    except QuotaExceeded:
        results.put(False)


def test_the_daily_limit_is_atomic_across_threads(tmp_path):
    quota = SubmitQuota(tmp_path / "q")
    won, barrier = [], threading.Barrier(8)

    def take():
        barrier.wait()
        try:
            quota.take("hf:mallory", "store", 3, NOW)
            won.append(True)
        except QuotaExceeded:
            won.append(False)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(won) == [False] * 5 + [True] * 3
    assert quota.used("hf:mallory", "store", NOW) == 3 and quota.used("hf:alice", "store", NOW) == 0


def test_the_daily_limit_is_atomic_across_processes(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_take_in_process, args=(str(tmp_path / "q"), results)) for _ in range(6)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    assert sorted(outcomes) == [False] * 3 + [True] * 3


def test_slots_expire_after_a_day_and_can_be_given_back(tmp_path):
    quota = SubmitQuota(tmp_path / "q")
    slot = quota.take("token:bob", "check", 1, NOW)
    with pytest.raises(QuotaExceeded, match="bob already had 1 uploads checked in the last 24 hours"):
        quota.take("token:bob", "check", 1, NOW + timedelta(hours=23))
    quota.take("token:bob", "check", 1, NOW + timedelta(hours=24, seconds=1))  # a day later
    quota.release(slot)
    assert quota.take("token:bob", "store", 0, NOW) is None  # 0: no limit, nothing recorded
    assert quota_path(SQLiteStore(tmp_path / "lb.db")) == tmp_path / "lb.db.quota"
    assert quota_path(SimpleNamespace(cache=SimpleNamespace(path=tmp_path / "cache.db"))) == tmp_path / "cache.db.quota"


def test_concurrent_submissions_of_one_identity_store_at_most_the_limit(tmp_path, gold):
    store = SQLiteStore(tmp_path / "lb.db")
    zips = [make_submission(tmp_path, gold, name=f"m{i}", seed=i) for i in range(6)]
    outcomes, barrier = [], threading.Barrier(len(zips))

    def submit(path):
        barrier.wait()
        try:
            outcomes.append(submit_file(store, path, gold, identity="hf:mallory", submitter=f"name {path.stem}"))
        except SubmitError as err:
            outcomes.append(str(err))

    threads = [threading.Thread(target=submit, args=(z,)) for z in zips]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stored = [o for o in outcomes if not isinstance(o, str)]
    refused = [o for o in outcomes if isinstance(o, str)]
    assert len(stored) == 3 and store.count() == 3  # a new submitter name each time does not help
    assert all("mallory already had 3 new entries stored in the last 24 hours" in r for r in refused)
    # another identity is not affected
    assert submit_file(store, make_submission(tmp_path, gold, name="alice", seed=9), gold, identity="hf:alice").stored


def test_validate_only_shares_the_identitys_upload_limit(tmp_path, gold):
    store = SQLiteStore(tmp_path / "lb.db")
    limits = UploadLimits(max_checks_per_day=2)
    zipped = make_submission(tmp_path, gold)
    for _ in range(2):
        submit_file(store, zipped, gold, identity="token:eve", store_result=False, limits=limits, now=NOW)
    with pytest.raises(SubmitError, match="eve already had 2 uploads checked"):
        submit_file(store, zipped, gold, identity="token:eve", limits=limits, now=NOW)
    with pytest.raises(SubmitError, match="eve already had 2 uploads checked"):
        submit_file(store, zipped, gold, identity="token:eve", store_result=False, limits=limits, now=NOW)
    assert store.count() == 0
    assert submit_file(store, zipped, gold, identity="token:eve", limits=limits, now=NOW + timedelta(days=2)).stored


def test_a_duplicate_gives_its_store_slot_back(tmp_path, gold):
    store = SQLiteStore(tmp_path / "lb.db")
    limits = UploadLimits(max_submissions_per_day=1, max_checks_per_day=0)
    zipped = make_submission(tmp_path, gold)
    assert submit_file(store, zipped, gold, identity="token:ann", limits=limits).stored
    assert submit_file(store, zipped, gold, identity="token:ann", limits=limits).duplicate
    other = make_submission(tmp_path, gold, name="other", seed=5)
    with pytest.raises(SubmitError, match="ann already had 1 new entries stored"):
        submit_file(store, other, gold, identity="token:ann", limits=limits)


def test_points_per_task_are_capped(tmp_path, gold):
    store = SQLiteStore(tmp_path / "lb.db")
    many = make_submission(tmp_path, gold, name="many", depths=tuple(range(1, 6)))
    for store_result in (False, True):
        with pytest.raises(SubmitError, match="SST-2 has 5 operating points; this leaderboard takes at most 4 per"):
            submit_file(store, many, gold, identity="token:x", store_result=store_result,
                        limits=UploadLimits(max_points_per_task=4, max_checks_per_day=0))
    assert submit_file(store, many, gold, identity="token:x", limits=UploadLimits()).stored  # default cap 12


def test_identities_the_app_trusts():
    token = "t" * 16
    ids = Identities(oauth=True, header="X-Forwarded-User", tokens={token: "bob"})
    assert ids.resolve(SimpleNamespace(username="alice")) == "hf:alice"
    assert ids.resolve(None, {"x-forwarded-user": "carol"}) == "header:carol"
    assert ids.resolve(None, {}, token) == "token:bob"
    assert ids.resolve(None, {}, "t" * 15) is None and ids.resolve() is None  # anonymous: off by default
    assert Identities(allow_anonymous=True).resolve() == "anonymous"
    assert Identities(oauth=False).resolve(SimpleNamespace(username="alice")) is None  # no OAuth configured
    assert Identities.from_env({"SPACE_ID": "me/elue"}).oauth
    env = Identities.from_env({"ELUE_SUBMIT_TOKENS": f"bob:{token}", "ELUE_ALLOW_ANONYMOUS": "1"})
    assert env.tokens == {token: "bob"} and env.allow_anonymous and not env.oauth
    assert parse_tokens("") == {}
    for bad in ("bob", "bob:short", f"bob:{token},ann:{token}", f"bob:{token},bob:{'u' * 16}"):
        with pytest.raises(IdentityError, match="ELUE_SUBMIT_TOKENS"):
            parse_tokens(bad)


def test_cli_refuses_malformed_submit_tokens(tmp_path, monkeypatch, capsys):
    from elue_hf.cli import main

    monkeypatch.setenv("ELUE_SUBMIT_TOKENS", "bob:short")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["leaderboard", "--db", str(tmp_path / "lb.db"), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert "ELUE_SUBMIT_TOKENS: each item must be name:token" in err and "Traceback" not in err


def _endpoint(app, name: str):
    return next(block.fn for block in app.fns.values() if block.api_name == name)


def _call_as_gradio_does(app, name: str, inputs: list, session: dict):
    """Call an endpoint's function with the arguments gradio injects by annotation (``gr.Request`` and
    ``gr.OAuthProfile | None``) built from a request whose session is ``session`` (what the Hub's OAuth login leaves
    there after "Sign in"; the real Hub cannot be reached from the tests)."""
    from gradio.helpers import special_args

    fn = _endpoint(app, name)
    upload = inputs[0].with_name(f"upload-{len(list(inputs[0].parent.iterdir()))}.zip")
    shutil.copy(inputs[0], upload)  # the app deletes each upload, as gradio's temporary copy
    args, *_ = special_args(fn, [str(upload), *inputs[1:]], SimpleNamespace(headers={}, session=session))
    return fn(*args)


def _as_in_a_space(monkeypatch) -> None:
    """What a Space with ``hf_oauth: true`` sets (gradio reads the OAuth settings when imported), so gradio adds its
    real login routes; the Hub itself is never contacted while the app is built."""
    import gradio.block_function
    import gradio.oauth

    monkeypatch.setattr(gradio.block_function, "spaces", None)  # the ZeroGPU package (here: this repo's spaces/)
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "elue/leaderboard")
    for name, value in (("OAUTH_CLIENT_ID", "client"), ("OAUTH_CLIENT_SECRET", "secret"),
                        ("OAUTH_SCOPES", "openid profile"), ("OPENID_PROVIDER_URL", "https://huggingface.co")):
        monkeypatch.setattr(gradio.oauth, name, value)


def test_the_space_counts_uploads_against_the_hub_login(tmp_path, gold, monkeypatch):
    from elue_hf.spaces.leaderboard.app import build_app
    from elue_hf.spaces.leaderboard.identity import SIGN_IN_NEEDED
    from elue_hf.spaces.leaderboard.texts import escape_markdown

    _as_in_a_space(monkeypatch)
    store = SQLiteStore(tmp_path / "lb.db")
    good = make_submission(tmp_path, gold, name="oauth-model")
    signed_in = {"oauth_info": {"userinfo": {"name": "Alice A.", "preferred_username": "alice",
                                             "profile": "https://huggingface.co/alice", "picture": ""}}}
    app = build_app(store, gold=gold, identities=Identities.from_env({"SPACE_ID": "elue/leaderboard"}))
    status, _ = _call_as_gradio_does(app, "validate", [good, "shown name", ""], signed_in)
    assert "valid submission" in status
    quota = SubmitQuota.for_store(store)
    assert quota.used("hf:alice", "check", datetime.now(timezone.utc)) == 1  # the login, never the typed name
    assert quota.used("local:shown name", "check", datetime.now(timezone.utc)) == 0
    status, _ = _call_as_gradio_does(app, "validate", [good, "alice", ""], {})  # not signed in
    assert status == "**Submission refused:** " + escape_markdown(SIGN_IN_NEEDED)
    open_app = build_app(store, gold=gold, seed=False, identities=Identities(oauth=True, allow_anonymous=True))
    status, _ = _call_as_gradio_does(open_app, "validate", [good, "", ""], {})
    assert "valid submission" in status and quota.used("anonymous", "check", datetime.now(timezone.utc)) == 1
