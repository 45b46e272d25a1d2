"""What a submission asks the verifier to re-run: the model and each file's exit settings, type-checked."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..elue.submission.format import Submission, SubmissionError
from ..validators import finite_number, positive_int, require

__all__ = ["AGREEMENT", "FLOPS_TOLERANCE", "SETTINGS_KINDS", "ARCHITECTURES", "VerifyError", "VerifyRequest",
           "model_reference", "valid_revision", "verify_request"]

AGREEMENT = 0.995  # share of instances whose re-run prediction must equal the submitted one
FLOPS_TOLERANCE = 0.01  # relative tolerance on every point's mean FLOPs
SETTINGS_KINDS = ("static", "entropy", "patience", "hashee")  # "hashee": the token-level exits of its table
ARCHITECTURES = ("elasticbert", "multiexit", "bert", "roberta")  # multiexit: elue_hf.multiexit (any family)
_MODEL_ID = re.compile(r"[A-Za-z0-9][\w.\-]{0,95}(/[A-Za-z0-9][\w.\-]{0,95})?")
#: A revision is a full commit sha or one plain ref name (a branch or tag without slashes): never a path the Hub client
#: could follow out of ``refs/`` (``..``), never a ref with slashes (``refs/pr/1``, ``feature/x``).
_COMMIT_SHA = re.compile(r"[0-9a-f]{40}")
_REF_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-]*(\.[A-Za-z0-9_\-]+)*")


class VerifyError(SubmissionError):
    """The submission cannot be verified (nothing named, a malformed request, an unsupported model)."""


@dataclass(frozen=True)
class VerifyRequest:
    model_id: str
    revision: str | None
    settings: dict  # file path -> {"exit": ..., "layers" | "value": ...}
    max_length: dict  # file path -> max_seq_length used to tokenise


def _settings(raw, where: str) -> dict:
    require(isinstance(raw, dict), f"{where}: 'settings' must be an object like {{'exit': 'static', 'layers': 3}}",
            VerifyError)
    kind = raw.get("exit")
    require(isinstance(kind, str) and kind in SETTINGS_KINDS, f"{where}: settings 'exit' must be one of "
            f"{SETTINGS_KINDS}", VerifyError)
    if kind == "hashee":
        require(set(raw) == {"exit"}, f"{where}: hashee settings take nothing but 'exit' (the table decides)",
                VerifyError)
        return {"exit": kind}
    if kind == "static":
        require(set(raw) <= {"exit", "layers"}, f"{where}: static settings take only 'layers'", VerifyError)
        return {"exit": kind, "layers": positive_int(raw.get("layers"), f"{where}: 'layers'", VerifyError, 1000)}
    require(set(raw) <= {"exit", "value"}, f"{where}: {kind} settings take only 'value'", VerifyError)
    if kind == "patience":
        return {"exit": kind, "value": positive_int(raw.get("value"), f"{where}: 'value'", VerifyError, 1000)}
    return {"exit": kind, "value": finite_number(raw.get("value"), f"{where}: 'value'", VerifyError, 1e6)}


def valid_revision(revision: str) -> bool:
    """A 40-hex commit sha, or a plain ref name of at most 100 characters (no slash, no ``..``, no leading dot)."""
    return len(revision) <= 100 and bool(_COMMIT_SHA.fullmatch(revision) or _REF_NAME.fullmatch(revision))


def model_reference(model_id, revision, what: str) -> tuple[str, str | None]:
    """A checked Hub id and revision (:class:`VerifyError` naming ``what`` otherwise): nothing else is resolved."""
    require(isinstance(model_id, str) and _MODEL_ID.fullmatch(model_id) is not None,
            f"{what} 'id' must be a Hub id like 'owner/name', got {str(model_id)[:60]!r}", VerifyError)
    require(revision is None or (isinstance(revision, str) and valid_revision(revision)),
            f"{what} 'revision' must be a 40-hex commit sha or a plain branch or tag name (letters, digits, '_', '-', "
            f"single dots; no slashes, no '..'), got {str(revision)[:60]!r}", VerifyError)
    return model_id, revision


def verify_request(submission: Submission) -> VerifyRequest:
    """The re-run a submission asks for; :class:`VerifyError` when it names no model or a setting is malformed."""
    model = submission.manifest.get("model")
    require(isinstance(model, dict), "submission.json names no 'model' ({'id': 'owner/name', 'revision': ...}): "
            "it cannot be verified by a re-run", VerifyError)
    model_id, revision = model_reference(model.get("id"), model.get("revision"), "'model'")
    require(set(model) <= {"id", "revision"}, f"'model' takes only 'id' and 'revision', got {sorted(model)}",
            VerifyError)
    entries = {e["path"]: e for e in submission.manifest["files"]}
    settings, lengths = {}, {}
    for f in submission.files:
        entry = entries[f.path]
        require("settings" in entry, f"{f.path}: no exit 'settings' to re-run", VerifyError)
        settings[f.path] = _settings(entry["settings"], f.path)
        lengths[f.path] = int(f.max_seq_length or 512)
    return VerifyRequest(model_id, revision, settings, lengths)
