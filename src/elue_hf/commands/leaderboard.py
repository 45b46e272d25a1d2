"""``elue-hf leaderboard`` (launch the app locally), ``elue-hf leaderboard-submit`` and ``elue-hf leaderboard-prepare``
(registered by elue_hf.cli)."""

from __future__ import annotations

import argparse
import os
import shlex

__all__ = ["register", "cmd_leaderboard", "cmd_submit", "cmd_prepare", "open_command", "check_port"]

_STORE_HELP = "SQLite database (default $ELUE_LEADERBOARD_DB or elue_hf_outputs/leaderboard/leaderboard.db)"
_REPO_HELP = "Hub dataset repo holding the results instead of SQLite (default $ELUE_RESULTS_REPO; --db is its cache)"
_GOLD_HELP = "ELUE data directory with <Task>/test_full.tsv: the gold test labels (default $ELUE_DATA_DIR)"


def _store_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=None, help=_STORE_HELP)
    parser.add_argument("--results-repo", default=None, help=_REPO_HELP)
    parser.add_argument("--data-dir", default=None, help=_GOLD_HELP)
    parser.add_argument("--reference", default=None,
                        help="reference-curve JSON (default: shipped / $ELUE_HF_REFERENCE)")
    parser.add_argument("--tokenizer-dir", default=None,
                        help="folder of tokenizers by Hub id (owner--name) for the token-length check, tried before "
                             "the Hub (default $ELUE_TOKENIZER_DIR)")
    parser.add_argument("--verify-dir", default=None,
                        help="keep stored submissions that name their model here and queue their re-run "
                             "(elue-hf verify-worker runs the queue; default $ELUE_VERIFY_DIR)")


def register(subparsers) -> None:
    lb = subparsers.add_parser(
        "leaderboard", help="launch the ELUE leaderboard web app locally",
        description="Serve the ELUE leaderboard (rankings, parameter tracks, Pareto plots per task, submissions) "
        "with gradio. Without gold labels (--data-dir) the Submit tab refuses uploads.",
    )
    lb.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    lb.add_argument("--port", type=int, default=7860, help="port")
    lb.add_argument("--identity-header", default=None,
                    help="header a trusted reverse proxy sets to the signed-in user (e.g. X-Forwarded-User): the "
                         "identity the daily submit limits count against (default $ELUE_IDENTITY_HEADER); submit "
                         "tokens come from $ELUE_SUBMIT_TOKENS ('name:token,...')")
    lb.add_argument("--allow-anonymous", action="store_true",
                    help="let uploads without an identity through (all anonymous visitors share one daily limit; "
                         "default off, or $ELUE_ALLOW_ANONYMOUS=1)")
    _store_args(lb)
    lb.set_defaults(func=cmd_leaderboard)

    sub = subparsers.add_parser(
        "leaderboard-submit", help="validate, score and store a submission zip in the leaderboard store",
        description="What the Submit tab does, from the command line: validate (no code is executed), score "
        "against the gold labels, store in one transaction, print the rank.",
    )
    sub.add_argument("submission", help="submission zip (or directory)")
    _store_args(sub)
    sub.add_argument("--submitter", default="", help="who submits (shown on the leaderboard)")
    sub.add_argument("--validate-only", action="store_true",
                     help="check format and FLOPs consistency only (no score: scores exist only for stored entries)")
    sub.set_defaults(func=cmd_submit)

    prep = subparsers.add_parser(
        "leaderboard-prepare", help="count the token lengths the leaderboard's length check needs (before serving)",
        description="Tokenise every test set in --data-dir with every tokenizer in --tokenizer-dir once and keep the "
        "token lengths next to the store (token-lengths/, keyed by a hash of the tokenizer's files and of the test "
        "set), so the web app only reads them. The app runs this in a separate process at start-up; running it "
        "before is the same. What is already counted is kept. Exit code 0: all counted, 1: a tokenizer was refused.")
    prep.add_argument("--db", default=None, help=_STORE_HELP + "; the lengths go next to it")
    prep.add_argument("--lengths-dir", default=None, help="where the lengths go (default: token-lengths/ next to --db)")
    prep.add_argument("--data-dir", default=None, help=_GOLD_HELP)
    prep.add_argument("--tokenizer-dir", action="append", default=None,
                      help="folder of tokenizers by Hub id (owner--name), repeatable (default $ELUE_TOKENIZER_DIR)")
    prep.set_defaults(func=cmd_prepare)


def _open(args):
    from ..leaderboard.store import open_store

    return open_store(args.db, args.results_repo)


def _gold(args):
    return args.data_dir or os.environ.get("ELUE_DATA_DIR") or None


def _tokenizer_roots(args) -> list[str]:
    root = args.tokenizer_dir or os.environ.get("ELUE_TOKENIZER_DIR")
    return [root] if root else []


def _verify_dir(args):
    return args.verify_dir or os.environ.get("ELUE_VERIFY_DIR") or None


def open_command(store, port: int = 7860, data_dir=None, tokenizer_dir=None, verify_dir=None) -> str:
    """The shell command that opens the leaderboard on ``store`` (a SQLite or Hub store), with the tokenizer and
    verification folders the submission used, so the server runs the same checks."""
    if getattr(store, "kind", None) == "hub":
        parts = ["elue-hf", "leaderboard", "--results-repo", store.repo_id, "--db", str(store.cache.path)]
    else:
        parts = ["elue-hf", "leaderboard", "--db", str(store.path)]
    parts += ["--port", str(port)]
    for flag, value in (("--data-dir", data_dir), ("--tokenizer-dir", tokenizer_dir), ("--verify-dir", verify_dir)):
        if value:
            parts += [flag, shlex.quote(str(value))]
    return " ".join(parts)


def check_port(host: str, port: int) -> None:
    """Raise ``ValueError`` if ``host:port`` cannot be listened on (busy, or not an address of this machine)."""
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server does: TIME_WAIT is fine
        try:
            sock.bind((host, port))
        except OSError as err:
            raise ValueError(f"cannot listen on {host}:{port} ({err.strerror or err}); pass --port with a free "
                             "port") from None


def cmd_leaderboard(args) -> int:
    from ..leaderboard.store import StoreError
    from ..spaces.leaderboard.app import build_app, launch
    from ..spaces.leaderboard.identity import Identities

    check_port(args.host, args.port)
    env = {**os.environ, "SPACE_ID": ""}  # the Hub's OAuth login exists only in a Space
    if args.identity_header:
        env["ELUE_IDENTITY_HEADER"] = args.identity_header
    if args.allow_anonymous:
        env["ELUE_ALLOW_ANONYMOUS"] = "1"
    identities = Identities.from_env(env)  # IdentityError (a ValueError) for malformed tokens: exit code 2
    try:
        store = _open(args)
    except StoreError as err:
        raise ValueError(str(err)) from None
    app = build_app(store, gold=_gold(args), reference=args.reference, tokenizer_roots=_tokenizer_roots(args),
                    verify_dir=_verify_dir(args), identities=identities)
    print(f"ELUE leaderboard on http://{args.host}:{args.port}/ ({store.describe()}). {identities.describe()}")
    try:
        launch(app, host=args.host, port=args.port, block=True)
    except OSError as err:  # the port was taken between the check and the launch
        raise ValueError(f"cannot serve on {args.host}:{args.port}: {err}") from None
    return 0


def cmd_submit(args) -> int:
    from ..leaderboard.seed import seed_store
    from ..leaderboard.store import StoreError
    from ..leaderboard.submit import submit_file

    try:
        store = _open(args)
    except StoreError as err:
        raise ValueError(str(err)) from None
    seed_store(store, args.reference)
    gold = _gold(args)
    if gold is None:
        raise ValueError("give --data-dir (or set ELUE_DATA_DIR): scoring needs the gold test labels")
    try:
        outcome = submit_file(store, args.submission, gold, reference=args.reference, submitter=args.submitter,
                              store_result=not args.validate_only, tokenizer_roots=_tokenizer_roots(args),
                              verify_dir=_verify_dir(args))
    except StoreError as err:
        raise ValueError(str(err)) from None
    print(outcome.summary())
    if outcome.stored or outcome.duplicate:
        again = open_command(store, data_dir=gold, tokenizer_dir=args.tokenizer_dir, verify_dir=args.verify_dir)
        print(f"open it with: {again}")
    return 0


def cmd_prepare(args) -> int:
    from ..elue.submission.lengths import prepare
    from ..leaderboard.lengths_job import folder_for_db
    from ..leaderboard.store import default_db_path

    data = _gold(args)
    if data is None or not os.path.isdir(data):
        raise ValueError("give --data-dir (or set ELUE_DATA_DIR) with the ELUE data (<Task>/test_full.tsv)")
    roots = args.tokenizer_dir or ([os.environ["ELUE_TOKENIZER_DIR"]] if os.environ.get("ELUE_TOKENIZER_DIR") else [])
    if not roots:
        raise ValueError("give --tokenizer-dir (or set ELUE_TOKENIZER_DIR): the folder of the allowed tokenizers")
    folder = args.lengths_dir or folder_for_db(args.db or default_db_path())
    rows = prepare(roots, data, folder, log=lambda line: print(line, flush=True))
    done = {status: sum(r["status"] == status for r in rows) for status in ("counted", "cached", "refused")}
    print(f"token lengths in {folder}: {done['counted']} counted, {done['cached']} already there, "
          f"{done['refused']} tokenizer(s) refused")
    return 1 if done["refused"] else 0
