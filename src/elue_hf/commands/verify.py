"""``elue-hf verify SUBMISSION`` (re-run a submission's model in a sandbox and compare) and ``elue-hf verify-worker``
(run the leaderboard's verification queue); registered by elue_hf.cli. Heavy imports stay inside the commands."""

from __future__ import annotations

import argparse
import json
import os

__all__ = ["register", "cmd_verify", "cmd_worker"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None,
                        help="ELUE data directory with <Task>/test_full.tsv (default $ELUE_DATA_DIR)")
    parser.add_argument("--model-dir", default=None,
                        help="folder of models by Hub id (owner--name), tried before the Hub (default $ELUE_MODEL_DIR)")
    parser.add_argument("--tokenizer-dir", default=None,
                        help="folder of tokenizers by Hub id (default $ELUE_TOKENIZER_DIR)")
    parser.add_argument("--offline", action="store_true", help="never download: server folders only")
    parser.add_argument("--memory-gb", type=float, default=16.0, help="address-space limit of the re-run (GiB)")
    parser.add_argument("--time-limit", type=int, default=4 * 3600, help="CPU and wall-clock limit (seconds)")


def register(subparsers) -> None:
    verify = subparsers.add_parser(
        "verify", help="re-run a submission's model in a sandbox and check its predictions and FLOPs",
        description="Fetch the model the submission names (safetensors only, no remote code), re-run the ELUE test "
        "set in a subprocess with memory and time limits, and compare predictions (>= 99.5% agreement) and every "
        "point's mean FLOPs (within 1%). Exit code 0: verified, 1: contradicted, 2: cannot verify.")
    verify.add_argument("submission", help="submission zip or directory")
    _common(verify)
    verify.add_argument("--json", action="store_true", help="print the full report as JSON")
    verify.set_defaults(func=cmd_verify)

    worker = subparsers.add_parser(
        "verify-worker", help="run the leaderboard's verification queue (one job at a time, resumable)",
        description="Take pending verification jobs from the leaderboard store, re-run each in a sandbox, and mark "
        "agreeing entries verified. Several workers (and the Space's) may share one store: each job is claimed by "
        "one. Safe to stop and restart. Exit code 0: every job it ran verified, 1: a job it ran failed.")
    worker.add_argument("--db", default=None, help="leaderboard SQLite database (default $ELUE_LEADERBOARD_DB)")
    worker.add_argument("--results-repo", default=None,
                        help="Hub dataset repo holding the results and the queue (default $ELUE_RESULTS_REPO; --db is "
                             "its cache)")
    worker.add_argument("--lease-hours", type=float, default=None,
                        help="how long a claimed job stays this worker's before another worker may take it over; "
                             "longer than --time-limit (default $ELUE_VERIFY_LEASE_HOURS, else 6)")
    worker.add_argument("--once", action="store_true", help="stop when the queue is empty")
    _common(worker)
    worker.set_defaults(func=cmd_worker)


def _options(args) -> dict:
    from ..verify.sandbox import SandboxLimits

    data_dir = args.data_dir or os.environ.get("ELUE_DATA_DIR")
    if not data_dir:
        raise ValueError("give --data-dir (or set ELUE_DATA_DIR): a re-run needs the test sets")
    roots = lambda flag, env: [r] if (r := flag or os.environ.get(env)) else []  # noqa: E731
    limits = SandboxLimits(int(args.memory_gb * 2**30), args.time_limit, args.time_limit)
    return {"data_dir": data_dir, "model_roots": roots(args.model_dir, "ELUE_MODEL_DIR"),
            "tokenizer_roots": roots(args.tokenizer_dir, "ELUE_TOKENIZER_DIR"), "allow_hub": not args.offline,
            "limits": limits}


def cmd_verify(args) -> int:
    from ..elue.submission import read_submission
    from ..verify import verify_request
    from ..verify.sandbox import run_sandboxed
    from ..verify.worker import summarize

    options = _options(args)
    verify_request(read_submission(args.submission))  # refuse at once what cannot be verified
    report = run_sandboxed(args.submission, options.pop("data_dir"), **options)
    print(json.dumps(report, indent=1) if args.json else summarize(report))
    if "error" in report:
        return 2
    return 0 if report["verified"] else 1


def cmd_worker(args) -> int:
    from ..leaderboard.store import StoreError, open_store
    from ..verify.worker import run_worker

    options = _options(args)
    try:
        store = open_store(args.db, args.results_repo, lease_hours=args.lease_hours)
    except StoreError as err:  # a bad repo name or lease: one sentence
        raise ValueError(str(err)) from None
    if store.lease.total_seconds() <= args.time_limit:
        raise ValueError(f"the claim lease ({store.lease.total_seconds() / 3600:g} h) must be longer than --time-limit "
                         f"({args.time_limit} s), or another worker takes over a job still running")
    summary = run_worker(store, options.pop("data_dir"), once=args.once, **options)
    pending = len(store.verification_jobs("pending"))
    print(f"{summary.ran} verification job(s) run: {len(summary.verified)} verified, {len(summary.failed)} failed"
          + (f", {len(summary.discarded)} discarded (taken over by another worker)" if summary.discarded else "")
          + f"; {pending} pending")
    for entry_id, why in summary.failed:
        print(f"  {entry_id} failed: {why}")
    return 1 if summary.failed else 0
