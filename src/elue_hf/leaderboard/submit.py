"""Submit a zip to the leaderboard: size check -> validate (ELUE core, no code executed) -> score -> store -> rank.

Validation alone computes nothing from the gold labels (only their count per task is used, to refuse a file with
the wrong number of rows while it is read); a score exists only for a stored entry. What stored entries can reveal
about the gold labels is bounded per identity and day (:class:`UploadLimits`, :mod:`.quota`): at most
``max_points_per_task`` files per task per submission, ``max_submissions_per_day`` stored entries and
``max_checks_per_day`` uploads (validate or submit) per identity, counted atomically, and every metric kept to
0.1 points. docs/elue.md ("Hostile uploads and the label oracle") gives the bound: about 10 bits per stored file,
so at most 3 x 12 x 10 = 360 binary labels per identity, task and day in the worst case.

The ELUE core reads the zip with hard limits (entries, sizes, compression ratio, path traversal, symlinks); FLOPs are
recomputed from each instance's ``modules`` column and the declarative module spec. An entry is stored in one
transaction or not at all; the same results submitted twice are recognised and not stored again.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

from ..elue.score import SubmissionScore, score_submission
from ..elue.submission import Submission, SubmissionError, SubmissionLimits, flops_tier_of, read_submission
from ..elue.submission.checks import cross_check
from ..elue.submission.lengths import LengthsNotReady, ServerTexts, TokenLengthCache, shared_cache
from ..elue.tasks import TASK_KEYS, TASKS, get_task
from ..verify.request import verify_request
from .lengths_job import lengths_folder
from .quota import QuotaExceeded, SubmitQuota
from .ranking import RankInfo, rank_of
from .records import EntryRecord, RecordError, entry_from_score, submission_digest
from .store import DuplicateEntryError, StoreError

__all__ = ["UploadLimits", "SubmitError", "TryAgainLater", "SubmitOutcome", "submit_file", "expected_rows",
           "DEFAULT_UPLOAD_LIMITS", "TIER_MEANING", "server_texts"]


@dataclass(frozen=True)
class UploadLimits:
    """What an upload may be: the zip's own size, the limits the ELUE core applies while reading it, how many
    operating points per task one submission may hold, and how many uploads and new entries one identity may make
    per day (so stored scores are never a cheap label oracle; the bound is in docs/elue.md)."""

    max_upload_bytes: int = 32 * 2**20
    # 256 MiB unpacked: twice a full honest upload (12 points on each of the six tasks with a 12-exit BERT-base
    # spec, about 115 MB) and what keeps the widest valid upload under 500 MB in the web process (docs/benchmarks.md)
    reading: SubmissionLimits = SubmissionLimits(
        max_archive_bytes=32 * 2**20, max_file_bytes=128 * 2**20, max_total_bytes=256 * 2**20,
        max_entries=256, max_files=128,
    )
    max_submissions_per_day: int = 3  # new entries per identity in any 24 hours; 0 disables the limit
    max_checks_per_day: int = 20  # uploads checked (validate or submit) per identity in any 24 hours; 0: no limit
    max_points_per_task: int = 12  # files (operating points) per task in one submission; 0: no limit

    def submission_limits(self) -> SubmissionLimits:
        return replace(self.reading, max_archive_bytes=min(self.reading.max_archive_bytes, self.max_upload_bytes))


DEFAULT_UPLOAD_LIMITS = UploadLimits()
ANONYMOUS = "anonymous"


class SubmitError(ValueError):
    """The upload was refused; the message says why in plain words. Nothing was stored."""


class TryAgainLater(SubmitError):
    """The upload could not be checked yet (the server is still counting the token lengths it needs); it took no
    daily slot."""


@dataclass
class SubmitOutcome:
    entry: EntryRecord | None  # None when only validated (validation computes nothing from the gold labels)
    score: SubmissionScore | None  # None for a duplicate (the stored entry is returned as it was) or a validation
    rank: RankInfo | None  # None when only validated
    stored: bool
    duplicate: bool = False
    submission: Submission | None = None
    queued: bool = False  # a re-run of the named model was queued (the entry becomes verified if it agrees)

    def summary(self) -> str:
        if self.entry is None:
            return _validation_summary(self.submission)
        e = self.entry
        if self.duplicate:
            head = f"Already on the leaderboard as entry {e.entry_id} ({e.model_name}); nothing new was stored."
        else:
            head = f"Stored {e.model_name} as entry {e.entry_id}."
        elue = "-" if e.elue_score is None else f"{e.elue_score:+.2f}"
        lines = [head, f"ELUE score: {elue}" + (" (provisional IMDb FLOPs)" if e.provisional else "")]
        if e.elue_score is None and e.partial_elue_score is not None:
            lines.append(f"Partial: {len(e.task_scores)}/6 tasks, mean {e.partial_elue_score:+.2f}")
        lines.append(f"FLOPs tier: {e.flops_tier} ({TIER_MEANING[e.flops_tier]})")
        if self.queued:
            lines.append("Verification: queued; the server will re-run the named model and mark the entry "
                         "verified if it agrees")
        if self.rank is not None:
            lines.append("Rank: " + self.rank.describe())
        return "\n".join(lines)


#: One line per FLOPs tier, as the CLI, the Space and the docs say it.
TIER_MEANING = {
    "self-reported": "the submitter's own FLOPs numbers, not checked",
    "consistent": "declared per-instance modules agree with the claimed FLOPs and pass the cross-checks; "
                  "the model was not run",
    "verified": "the server re-ran the model and got the same predictions and FLOPs",
}


def _validation_summary(submission: Submission) -> str:
    tasks = submission.by_task()
    lines = [f"{submission.model_name}: valid submission ({len(submission.files)} files, {len(tasks)} tasks). "
             "Nothing was stored and nothing was scored: scores exist only for stored entries.",
             f"FLOPs tier if stored: {flops_tier_of(f.flops_source for f in submission.files)}"]
    for task, files in tasks.items():
        points = ", ".join(f"{f.label} {f.mean_mflops:,.1f} MFLOPs" for f in files)
        lines.append(f"{task}: {points}")
    return "\n".join(lines)


def _check_upload(path: Path, limits: UploadLimits) -> None:
    if not path.exists():
        raise SubmitError(f"no file at {path.name}")
    if path.is_dir():
        return  # a local submission directory (CLI); the core bounds what it reads
    if path.is_symlink() or not path.is_file():
        raise SubmitError(f"{path.name} is not a regular file")
    size = path.stat().st_size
    if size > limits.max_upload_bytes:
        raise SubmitError(f"the upload is {size:,} bytes; the limit is {limits.max_upload_bytes:,} bytes")
    if size == 0:
        raise SubmitError("the upload is empty")
    if not zipfile.is_zipfile(path):
        raise SubmitError(f"{path.name} is not a zip file (zip the folder holding submission.json)")


def expected_rows(gold) -> dict[str, int]:
    """Test-set size per task from the gold labels (a mapping, or an ELUE data directory): only counts leave here."""
    if isinstance(gold, Mapping):
        return {get_task(t).key: len(labels) for t, labels in gold.items()}
    from ..elue.data import load_test_labels

    out = {}
    for task in TASK_KEYS:
        try:
            out[task] = int(len(load_test_labels(gold, task)))
        except (FileNotFoundError, ValueError):
            continue  # no gold for this task: its files are refused when scored
    return out


def other_data(submission: Submission, rows: Mapping[str, int]) -> str:
    """Empty when the submission was scored on the ELUE test set, else a phrase saying on what: the manifest names
    other data (``extra.data_name``, written by ``elue-hf evaluate --data-name``), or the server's gold for one of
    its tasks does not have the ELUE test set's size (a user's own subset, a local leaderboard's own data)."""
    name = (submission.manifest.get("extra") or {}).get("data_name")
    if name:
        return f"scored on {name[:200]}, not the ELUE test set"
    tasks = {f.task for f in submission.files}
    for task in (TASKS[t] for t in TASK_KEYS if t in tasks):
        if rows.get(task.key) != task.test_size:
            return (f"scored on this server's {task.name} data ({rows.get(task.key, 0):,} rows), not the ELUE "
                    f"test set ({task.test_size:,} rows)")
    return ""


def server_texts(gold) -> ServerTexts | None:
    """``task -> text columns`` of the server's test sets when ``gold`` is an ELUE data directory, else None."""
    if gold is None or isinstance(gold, Mapping):
        return None
    return ServerTexts(gold)


def _read(path: Path, gold, rows: Mapping[str, int], limits: UploadLimits, tokenizer_roots=(),
          lengths=None) -> Submission:
    try:
        submission = read_submission(path, limits.submission_limits(), expected_rows=rows)
        lacking = sorted({f.task for f in submission.files} - set(rows))
        if lacking:
            raise SubmissionError(f"this leaderboard holds no gold labels for {', '.join(lacking)}")
        submission.checks = cross_check(submission, server_texts(gold), tokenizer_roots, lengths=lengths)
        if submission.manifest.get("model") is not None:
            verify_request(submission)  # a malformed re-run request is refused now, not after storing
        return submission
    except LengthsNotReady as err:
        raise TryAgainLater(str(err)) from None
    except SubmissionError as err:
        raise SubmitError(str(err)) from None
    except zipfile.BadZipFile as err:
        raise SubmitError(f"the zip is damaged: {err}") from None
    except (RecursionError, OverflowError, MemoryError) as err:  # defence in depth: never a raw error to the user
        raise SubmitError(f"the submission could not be read ({type(err).__name__}); it is refused") from None


def _check_points_per_task(submission: Submission, limits: UploadLimits) -> None:
    cap = limits.max_points_per_task
    counts: dict[str, int] = {}
    for f in submission.files:
        counts[f.task] = counts.get(f.task, 0) + 1
    over = [t for t in TASK_KEYS if counts.get(t, 0) > cap] if cap else []
    if over:
        raise SubmitError(f"{TASKS[over[0]].name} has {counts[over[0]]} operating points; this leaderboard takes "
                          f"at most {cap} per task in one submission (drop some files)")


def _take(quota: SubmitQuota | None, identity: str, action: str, limit: int, now: datetime) -> int | None:
    if quota is None:
        return None
    try:
        return quota.take(identity, action, limit, now)
    except QuotaExceeded as err:
        raise SubmitError(str(err)) from None


def submit_file(store, path, gold, *, reference=None, limits: UploadLimits = DEFAULT_UPLOAD_LIMITS,
                submitter: str = "", store_result: bool = True, now: datetime | None = None,
                tokenizer_roots=(), verify_dir=None, identity: str | None = None,
                quota: SubmitQuota | None = None, lengths: TokenLengthCache | None = None) -> SubmitOutcome:
    """Validate, then (unless ``store_result=False``) score and store the submission at ``path`` (a zip, or a
    directory).

    ``gold``: gold test labels as the ELUE core takes them (task -> labels, or an ELUE data directory); None refuses
    the upload (this leaderboard cannot check it). Validation (``store_result=False``) checks format and FLOPs
    consistency (with the cross-checks of :mod:`elue_hf.elue.submission.checks`; ``tokenizer_roots``: server folders
    holding tokenizers by Hub id) and reports nothing computed from the gold labels. ``verify_dir``: where a stored
    submission that names its model is kept for the verification queue (None: no re-runs on this server).
    ``identity``: who uploads, for the daily limits (the web app passes the signed-in user, a trusted header or a
    token; None: a local caller, counted as ``local:<submitter>``); ``quota``: where the limits are counted (default:
    :meth:`SubmitQuota.for_store`). Both validating and submitting take a ``check`` slot. ``lengths``: where the test
    sets' token lengths come from (default: counted in this process when missing and kept next to the store; the web
    app passes a cache that never counts, and a cold one refuses with :class:`TryAgainLater`, giving the slot back).
    Raises :class:`SubmitError` with a plain message for anything wrong.
    """
    if gold is None:
        raise SubmitError("this leaderboard has no gold test labels configured, so it cannot score submissions "
                          "(start it with --data-dir pointing at the ELUE data with <Task>/test_full.tsv)")
    path = Path(path)
    _check_upload(path, limits)
    who = submitter.strip()[:100]
    identity = identity or f"local:{(who or ANONYMOUS).lower()}"
    now = now or datetime.now(timezone.utc)
    if quota is None and (limits.max_checks_per_day or limits.max_submissions_per_day):
        quota = SubmitQuota.for_store(store)
    check = _take(quota, identity, "check", limits.max_checks_per_day, now)
    rows = expected_rows(gold)
    try:
        submission = _read(path, gold, rows, limits, tokenizer_roots,
                           lengths or shared_cache(tokenizer_roots, lengths_folder(store)))
    except TryAgainLater:
        if quota is not None:
            quota.release(check)  # nothing was checked: the upload does not count
        raise
    _check_points_per_task(submission, limits)
    if not store_result:
        return SubmitOutcome(None, None, None, stored=False, submission=submission)
    slot, stored = None, False
    try:
        digest = submission_digest(submission)
        existing = store.find_digest(digest)
        if existing is not None:
            return SubmitOutcome(existing, None, rank_of(store.entries(), existing.entry_id), stored=False,
                                 duplicate=True, submission=submission)
        slot = _take(quota, identity, "store", limits.max_submissions_per_day, now)
        score = score_submission(submission, gold, reference)
        entry = entry_from_score(score, submission, digest=digest, submitter=who,
                                 created_at=now.replace(microsecond=0).isoformat(),
                                 other_data=other_data(submission, rows))
        store.add_entry(entry)
        stored = True
    except DuplicateEntryError as err:  # a concurrent upload of the same results won the race
        existing = store.get_entry(err.existing_id)
        return SubmitOutcome(existing, None, rank_of(store.entries(), existing.entry_id), stored=False,
                             duplicate=True, submission=submission)
    except StoreError as err:
        raise SubmitError(f"the submission is valid but could not be stored: {err}") from None
    except (SubmissionError, RecordError) as err:
        raise SubmitError(str(err)) from None
    except (ValueError, KeyError) as err:  # e.g. gold labels missing for a task, metric undefined
        if isinstance(err, SubmitError):
            raise
        raise SubmitError(f"could not score the submission: {err}") from None
    finally:
        if not stored and quota is not None:
            quota.release(slot)  # nothing new was stored: the slot goes back
    queued = verify_dir is not None and submission.manifest.get("model") is not None
    if queued:
        _queue_verification(store, entry, path, Path(verify_dir))
    return SubmitOutcome(entry, score, rank_of(store.entries(), entry.entry_id), stored=True, submission=submission,
                         queued=queued)


def _queue_verification(store, entry: EntryRecord, path: Path, verify_dir: Path) -> None:
    """Keep a copy of the submission (the upload itself is deleted) and queue its re-run."""
    from ..elue.submission import submission_bytes

    verify_dir.mkdir(parents=True, exist_ok=True)
    kept = verify_dir / f"{entry.entry_id}.zip"
    kept.write_bytes(submission_bytes(path))
    store.enqueue_verification(entry.entry_id, str(kept), entry.created_at)
