"""Cross-checks of a declared submission that need no model run (the ``consistent`` FLOPs tier, docs/elue.md
"Threat model"): parameters against the module spec, the structure of every ``modules`` row, and every instance's
declared token length against the server's own tokenisation of the test text.

Parameter rule (:func:`spec_params`), per module kind, biases and LayerNorms included:

=============  =========================================================================
embedding      (vocab + positions + token_types) x d + 2 d   (needs those three sizes)
layer          4 (d^2 + d) + 2 d + (d d_ff + d_ff) + (d_ff d + d) + 2 d
exit           (d^2 + d if pooler) + d x labels + labels
linear         in x out + out
layer_norm     2 d
=============  =========================================================================

A file's ``params`` must equal the count of its whole module spec (every exit included: what the model holds), or,
when every row runs the same modules (a static operating point), the count of those modules.

Structure rule (:func:`check_structure`): a row starts with an embedding entry; its layer entries are the spec's
layers in spec order from the first, each once, with one token count n shared with the embedding; it ends with an exit
entry; an exit named ``<x>_<j>`` comes right after the layer named ``<y>_<j>`` when the spec numbers them so.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

import numpy as np

from ..flops.module_spec import ModulesError, parse_modules
from ..tasks import TASKS
from .format import Submission, SubmissionError, SubmissionFile, params_disagreement
from .lengths import TokenLengthCache
from .tokenizers import TokenizerAllowList

__all__ = ["spec_params", "check_params", "check_model_params", "check_structure", "declared_lengths",
           "check_token_lengths", "load_tokenizer", "cross_check"]

_NUMBERED = re.compile(r".*?_([0-9]+)")
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.\-]{0,95}(/[A-Za-z0-9][\w.\-]{0,95})?")


def _module_params(module: Mapping, name: str) -> int:
    kind, d = module["kind"], module.get("d")
    if kind == "embedding":
        sizes = [module.get(k) for k in ("vocab", "positions", "token_types")]
        if any(s is None for s in sizes):
            raise SubmissionError(f"module_spec: embedding {name!r} must give vocab, positions and token_types so "
                                  "that params can be checked")
        return sum(sizes) * d + 2 * d
    if kind == "layer":
        f = module["d_ff"]
        return 4 * (d * d + d) + 2 * d + (d * f + f) + (f * d + d) + 2 * d
    if kind == "exit":
        labels = module["labels"]
        return (d * d + d if module["pooler"] else 0) + d * labels + labels
    if kind == "linear":
        return module["in"] * module["out"] + module["out"]
    return 2 * d  # layer_norm


def spec_params(spec: Mapping[str, Mapping], names=None) -> int:
    """Parameters of the modules ``names`` (default: all) of a validated spec, by the rule in the module docstring."""
    names = list(spec) if names is None else list(names)
    return sum(_module_params(spec[n], n) for n in names)


def _row_names(file: SubmissionFile) -> list[frozenset]:
    distinct = dict.fromkeys(file.modules)
    return [frozenset(name for name, _ in parse_modules(_text(raw))) for raw in distinct]


def _text(raw) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else raw


#: Module options the parameter rule does not model yet (their files' params are reported as unchecked).
_UNRULED = {"layer": {"glu": False, "rel_positions": 0, "c2p": False, "p2c": False, "share_att_key": False,
                      "norms": 2},
            "exit": {"norm": False}}


def params_rule_gap(spec: Mapping[str, Mapping]) -> str | None:
    """Why the parameter rule cannot check ``spec`` (a kind or option it does not model), or None."""
    for name, module in spec.items():
        if module["kind"] not in ("embedding", "layer", "exit", "linear", "layer_norm"):
            return f"module {name!r} of kind {module['kind']!r}"
        for option, plain in _UNRULED.get(module["kind"], {}).items():
            if module.get(option, plain) != plain:
                return f"module {name!r} option {option!r}"
    return None


def check_params(file: SubmissionFile) -> None:
    """Raise :class:`SubmissionError` unless ``file.params`` follows the parameter rule (see the module docstring);
    specs the rule does not cover (:func:`params_rule_gap`) are left to :func:`cross_check`'s report."""
    if file.modules is None or file.module_spec is None or params_rule_gap(file.module_spec):
        return
    whole = spec_params(file.module_spec)
    allowed = {whole}
    used = set(_row_names(file))
    if len(used) == 1:
        allowed.add(spec_params(file.module_spec, next(iter(used))))
    if file.params not in allowed:
        raise SubmissionError(
            f"{file.path}: params {file.params:,} disagree with the module spec, which implies "
            f"{' or '.join(f'{p:,}' for p in sorted(allowed))} (the whole spec, or the modules every row runs)")


def check_model_params(submission: Submission) -> None:
    """Raise :class:`SubmissionError` unless the manifest's top-level ``params`` (the model's size, shown on the
    leaderboard) is at least every file's ``params`` and, where the files' module specs follow the parameter rule,
    within :data:`~.format.PARAMS_TOLERANCE` of the largest whole-spec count."""
    biggest = max(submission.files, key=lambda f: f.params)
    if submission.params < biggest.params:
        raise SubmissionError(f"submission.json declares params {submission.params:,} but {biggest.path} uses "
                              f"{biggest.params:,}: a point cannot use more parameters than the model holds")
    specs = [f.module_spec for f in submission.files
             if f.modules is not None and f.module_spec is not None and not params_rule_gap(f.module_spec)]
    if specs:
        why = params_disagreement(submission.params, max(spec_params(s) for s in specs), "its module spec")
        if why:
            raise SubmissionError(why)


def _number(name: str) -> int | None:
    match = _NUMBERED.fullmatch(name)
    return int(match.group(1)) if match else None


def _check_row(entries, spec: Mapping[str, Mapping], layers: list[str]) -> str | None:
    """Why a parsed row breaks the structure rule, or None."""
    kinds = [spec[name]["kind"] for name, _ in entries]
    if not kinds or kinds[0] != "embedding":
        return "the row must start with the embedding"
    if kinds[-1] != "exit":
        return "the row must end with an exit"
    n = entries[0][1][0]
    seen: list[str] = []
    for (name, shape), kind in zip(entries, kinds):
        if kind == "embedding" and seen:
            return f"embedding {name!r} after a layer"
        if kind == "layer":
            expected = layers[len(seen)] if len(seen) < len(layers) else None
            if name != expected:
                return f"layer {name!r} where {expected!r} should run next (layers run in order from the first)"
            if (shape[0] if len(shape) == 2 else shape[1]) != n:
                return f"layer {name!r} sees {shape[0] if len(shape) == 2 else shape[1]} tokens, the embedding {n}"
            seen.append(name)
        if kind == "exit":
            j = _number(name)
            if not seen:
                return f"exit {name!r} before any layer"
            if j is not None and _number(seen[-1]) is not None and j != _number(seen[-1]):
                return f"exit {name!r} after layer {seen[-1]!r}: an exit sits right after its own layer"
    return None


def check_structure(file: SubmissionFile) -> None:
    """Raise :class:`SubmissionError` naming the first row that breaks the structure rule."""
    if file.modules is None or file.module_spec is None:
        return
    spec = file.module_spec
    layers = [name for name, m in spec.items() if m["kind"] == "layer"]
    verdicts: dict = {}
    for row, raw in enumerate(file.modules):
        if raw not in verdicts:
            try:
                verdicts[raw] = _check_row(parse_modules(_text(raw)), spec, layers)
            except ModulesError as err:
                verdicts[raw] = str(err)
        if verdicts[raw] is not None:
            raise SubmissionError(f"{file.path} index {row}: {verdicts[raw]}")


def declared_lengths(file: SubmissionFile) -> np.ndarray:
    """The token count each instance declares (the n of its embedding entry), in index order."""
    cache: dict = {}
    out = np.empty(len(file.modules), dtype=np.int64)
    for i, raw in enumerate(file.modules):
        if raw not in cache:
            cache[raw] = parse_modules(_text(raw))[0][1][0]
        out[i] = cache[raw]
    return out


def check_token_lengths(file: SubmissionFile, lengths: np.ndarray) -> None:
    """Raise :class:`SubmissionError` (how many, which) unless every declared length equals the server's."""
    if file.modules is None:
        return
    declared = declared_lengths(file)
    lengths = np.asarray(lengths, dtype=np.int64)
    if declared.shape != lengths.shape:
        raise SubmissionError(f"{file.path}: {declared.size} rows for {lengths.size} test texts")
    wrong = np.flatnonzero(declared != lengths)
    if wrong.size:
        shown = ", ".join(f"index {i}: declared {declared[i]}, tokenizer gives {lengths[i]}" for i in wrong[:5])
        raise SubmissionError(f"{file.path}: {wrong.size} of {declared.size} instances declare a token length that "
                              f"differs from the named tokenizer's ({shown}{', ...' if wrong.size > 5 else ''})")


def load_tokenizer(name: str, local_roots=(), allow_hub: bool = True):
    """A fast tokenizer named by a submission: a Hub id (``owner/name``), looked up first as a folder under one of
    the server's ``local_roots`` (``owner--name`` or ``owner/name``), from the Hub only when ``allow_hub``. Never a
    path the submitter chose, never remote code, fast and not degenerate (:mod:`.tokenizers`)."""
    return TokenizerAllowList(local_roots, allow_hub).load(name)


def cross_check(submission: Submission, texts: Callable[[str], Mapping] | None = None, tokenizer_roots=(),
                allow_hub: bool = False, lengths: TokenLengthCache | None = None) -> dict:
    """Run every cross-check on a declared submission; raise :class:`SubmissionError` on the first failure.

    ``texts(task)``: the test set's text columns (the server's copy), or None to skip the token-length check (then
    reported under ``"skipped"``). The tokenizer the submission names must be one of the server's
    (``tokenizer_roots``; any Hub id only with ``allow_hub``); ``lengths``: a :class:`TokenLengthCache` that counts each
    test set once (default: one for this call; the web app passes one that never counts and refuses with
    :class:`~.lengths.LengthsNotReady` while its background job counts). Returns what was checked."""
    report = {"params": [], "structure": [], "token_lengths": [], "skipped": []}
    declared = [f for f in submission.files if f.modules is not None]
    for f in declared:
        check_structure(f)
        report["structure"].append(f.path)
        gap = params_rule_gap(f.module_spec) if f.module_spec is not None else None
        if gap:
            report["skipped"].append(f"params of {f.path}: the rule does not cover {gap}")
            continue
        check_params(f)
        report["params"].append(f.path)
    check_model_params(submission)
    if not declared:
        return report
    if texts is None:
        report["skipped"].append("token lengths: no test texts on this server")
        return report
    name = submission.manifest.get("tokenizer")
    if name is None:
        raise SubmissionError("submission.json must name its 'tokenizer' (a Hub id) so declared lengths can be checked")
    lengths = lengths or TokenLengthCache(TokenizerAllowList(tokenizer_roots, allow_hub))
    for f in declared:
        check_token_lengths(f, lengths.lengths(name, TASKS[f.task], texts, f.max_seq_length or 512))
        report["token_lengths"].append(f.path)
    return report
