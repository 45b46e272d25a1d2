"""Submit a zip to the leaderboard: size check -> validate (ELUE core, no code executed) -> score -> store -> rank.

The ELUE core reads the zip with hard limits (entries, sizes, compression ratio, path traversal, symlinks); FLOPs are
recomputed from each instance's ``modules`` column and the declarative module spec. An entry is stored in one
transaction or not at all; the same results submitted twice are recognised and not stored again.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..elue.score import SubmissionScore, score_submission
from ..elue.submission import SubmissionError, SubmissionLimits, read_submission
from .ranking import RankInfo, rank_of
from .records import EntryRecord, RecordError, entry_from_score, submission_digest
from .store import DuplicateEntryError, StoreError

__all__ = ["UploadLimits", "SubmitError", "SubmitOutcome", "submit_file", "DEFAULT_UPLOAD_LIMITS"]


@dataclass(frozen=True)
class UploadLimits:
    """What an upload may be: the zip's own size, and the limits the ELUE core applies while reading it."""

    max_upload_bytes: int = 32 * 2**20
    reading: SubmissionLimits = SubmissionLimits(
        max_archive_bytes=32 * 2**20, max_file_bytes=128 * 2**20, max_total_bytes=512 * 2**20,
        max_entries=256, max_files=128,
    )

    def submission_limits(self) -> SubmissionLimits:
        return replace(self.reading, max_archive_bytes=min(self.reading.max_archive_bytes, self.max_upload_bytes))


DEFAULT_UPLOAD_LIMITS = UploadLimits()


class SubmitError(ValueError):
    """The upload was refused; the message says why in plain words. Nothing was stored."""


@dataclass
class SubmitOutcome:
    entry: EntryRecord
    score: SubmissionScore | None  # None for a duplicate (the stored entry is returned as it was)
    rank: RankInfo | None  # None when only validated
    stored: bool
    duplicate: bool = False

    def summary(self) -> str:
        e = self.entry
        if self.duplicate:
            head = f"Already on the leaderboard as entry {e.entry_id} ({e.model_name}); nothing new was stored."
        elif self.stored:
            head = f"Stored {e.model_name} as entry {e.entry_id}."
        else:
            head = f"{e.model_name}: valid submission (validated and scored only; not stored)."
        elue = "-" if e.elue_score is None else f"{e.elue_score:+.2f}"
        lines = [head, f"ELUE score: {elue}" + (" (provisional IMDb FLOPs)" if e.provisional else "")]
        if e.elue_score is None and e.partial_elue_score is not None:
            lines.append(f"Partial: {len(e.task_scores)}/6 tasks, mean {e.partial_elue_score:+.2f}")
        flops = "verified from modules + module spec" if e.verified else "self-reported (some files)"
        lines.append(f"FLOPs: {flops}")
        if self.rank is not None:
            lines.append("Rank: " + self.rank.describe())
        return "\n".join(lines)


def _check_upload(path: Path, limits: UploadLimits) -> None:
    if not path.exists():
        raise SubmitError(f"no file at {path}")
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


def submit_file(store, path, gold, *, reference=None, limits: UploadLimits = DEFAULT_UPLOAD_LIMITS,
                submitter: str = "", store_result: bool = True) -> SubmitOutcome:
    """Validate, score and (unless ``store_result=False``) store the submission at ``path`` (a zip, or a directory).

    ``gold``: gold test labels as the ELUE core takes them (task -> labels, or an ELUE data directory); None refuses
    the upload (this leaderboard cannot score). Raises :class:`SubmitError` with a plain message for anything wrong.
    """
    if gold is None:
        raise SubmitError("this leaderboard has no gold test labels configured, so it cannot score submissions "
                          "(start it with --data-dir pointing at the ELUE data with <Task>/test_full.tsv)")
    path = Path(path)
    _check_upload(path, limits)
    try:
        submission = read_submission(path, limits.submission_limits())
        digest = submission_digest(submission)
        existing = store.find_digest(digest)
        if existing is not None:
            return SubmitOutcome(existing, None, rank_of(store.entries(), existing.entry_id), stored=False,
                                 duplicate=True)
        score = score_submission(submission, gold, reference)
        entry = entry_from_score(score, submission, digest=digest, submitter=submitter.strip())
    except (SubmissionError, RecordError) as err:
        raise SubmitError(str(err)) from None
    except zipfile.BadZipFile as err:
        raise SubmitError(f"the zip is damaged: {err}") from None
    except (ValueError, KeyError) as err:  # e.g. gold labels missing for a task, metric undefined
        raise SubmitError(f"could not score the submission: {err}") from None
    if not store_result:
        return SubmitOutcome(entry, score, None, stored=False)
    try:
        store.add_entry(entry)
    except DuplicateEntryError as err:  # a concurrent upload of the same results won the race
        existing = store.get_entry(err.existing_id)
        return SubmitOutcome(existing, None, rank_of(store.entries(), existing.entry_id), stored=False,
                             duplicate=True)
    except StoreError as err:
        raise SubmitError(f"the submission is valid but could not be stored: {err}") from None
    return SubmitOutcome(entry, score, rank_of(store.entries(), entry.entry_id), stored=True)
