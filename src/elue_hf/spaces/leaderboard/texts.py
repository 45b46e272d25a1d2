"""Text shown by the leaderboard (About tab, Submit tab help)."""

from __future__ import annotations

import html
import re

from ...citations import bibtex

__all__ = ["about_markdown", "SUBMIT_HELP", "UNRANKED_HELP", "escape_markdown", "THREAT_MODEL"]

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]#|~!:])")  # ":" breaks autolinks
_LINE_START = re.compile(r"^(\s*[0-9]*)([.)\-+=])", re.MULTILINE)  # list markers / setext underlines


def escape_markdown(text: str) -> str:
    """``text`` shown literally in a gr.Markdown: HTML entities escaped, Markdown punctuation backslash-escaped
    (emphasis, links, images, code, headings, tables, list markers at a line start)."""
    escaped = html.escape(_MARKDOWN_SPECIAL.sub(r"\\\1", str(text)), quote=False)
    return _LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), escaped)


SUBMIT_HELP = """\
Upload **one zip** made with `elue_hf.elue.submission.write_submission` + `zip_submission` (or `elue-hf evaluate`):
`submission.json` (model name, parameter count, declarative module spec) and one TSV per operating point,
`<task>/<point>.tsv` with columns `index  pred  modules`. FLOPs are **recomputed** from each instance's declared
`modules` column and the module spec (tier "consistent"); files that carry only a `flops` column are
"self-reported"; "verified" needs a server re-run of the model (see About). No uploaded code is ever run: there is
no model file, only JSON and TSV. Limits: zip size, rows per file (the test-set size), bytes per row, number of
files, compression ratio, 12 operating points per task; per identity and day 20 uploads checked and 3 entries stored.
**Validate only** checks the format and the FLOPs consistency and stores nothing; it computes nothing from the gold
labels (it counts towards the 20). **Submit** scores and stores the entry; it is ranked once a re-run verifies it.
"""

UNRANKED_HELP = """\
**Not ranked.** The rankings hold only what was checked: the published rows, the reference curve, and submissions
the server re-ran (**verified**) on the ELUE test set. A submission whose FLOPs are only *consistent* or
*self-reported* waits here until a re-run verifies it; one scored on other data (not the ELUE test set, e.g. a
local leaderboard's own test set or a subset) stays here. Their scores are shown, never ranked.
"""

THREAT_MODEL = """\
### Threat model: what each FLOPs tier proves

- **self-reported**: a FLOPs number per instance, finite and positive. Checked: nothing else. The submitter can
  misstate anything about cost.
- **consistent**: each instance declares the modules it ran (`modules` column) and the module spec gives their
  shapes. Checked: the recomputed mean FLOPs match the claim within 1%; the declared token length of every instance
  equals the length the server's copy of the named tokenizer gives for that test text; the declared `params` equal
  the count the module spec implies; every row runs the embedding, then layers contiguously from the first, and
  stops at an exit after its last layer. Still possible to misstate: *which* exit an instance really took (a deeper
  run declared as a shallower one) and whether the declared modules are the model's real sizes.
- **verified**: the server fetched the named model (safetensors only, never remote code), re-ran it on the test set
  with the declared exit settings in a sandboxed subprocess, and got the same predictions on at least 99.5% of the
  instances and every point's mean FLOPs within 1%. Models it can re-run: ElasticBERT, BERT and RoBERTa
  classifiers, plain (static, entropy or patience exits), with a HashEE table, or under an LPT adapter on such a base.
  Still possible: a model trained on the test set.

**Only verified submissions are ranked** (with the published rows and the reference curve); the others are listed
under "Not ranked", and on the task pages their points are drawn apart and never join the Pareto frontier. A
verified entry shows the re-run's metrics, FLOPs and parameters, never the submitter's. The **verified FLOPs only**
filter hides the unranked submissions from the task pages too.
Gold labels never leave the server: validation reports format and cost only, and scores exist only for stored
entries, rounded to 0.1 points. Each signed-in identity may check 20 uploads and store 3 entries a day, with at most
12 operating points per task: a stored file tells at most 10 bits about the gold labels, so one identity can learn
at most 3 x 12 x 10 = 360 binary labels per task a day, and in practice far fewer.
Uploads are parsed as JSON and text with hard limits, never executed, and deleted after processing.
"""


def about_markdown() -> str:
    return f"""\
## ELUE: Efficient Language Understanding Evaluation

ELUE scores quality **and** cost. Each submission gives, for each of the six tasks (SST-2, IMDb, MRPC, STS-B, SNLI,
SciTail), one or more operating points: test-set predictions plus the FLOPs each instance used.

**Cost.** Two numbers only: parameters (every parameter the model can use, shared tensors once, all exits included)
and FLOPs (2 x multiply-accumulates of linear layers, self-attention and LayerNorm, per instance at its true
length, averaged over the test set; MFLOPs). Wall-clock time is not a metric.

**ELUE score.** ElasticBERT-base evaluated statically at the published depths gives a reference curve
p_EB(f) per task: piecewise-linear in FLOPs between its points, extended linearly with the end segments. A
submission with n points (p_i, f_i) on a task scores

    score_task = (1/n) * sum_i [ p_i - p_EB(f_i) ]          (metric points, x100)

and the ELUE score is the unweighted mean of the six task scores ("-" when a task is missing; the mean over the
tasks present is then shown as partial). ElasticBERT's own reference points score exactly 0.00. IMDb results are
provisional until the IMDb reference FLOPs are recomputed from the IMDb test set (`elue-hf recompute-imdb-flops`).

**Parameter tracks.** Besides the ELUE-score ranking, operating points with at most 40M, 55M, 70M and 110M
parameters (inclusive) are ranked by their **average performance** over the tasks; points covering all six tasks
are ranked, partial ones listed below.

**Task pages.** Performance against FLOPs (or parameters) for every operating point, the Pareto frontier in red,
the ElasticBERT-base reference curve in grey (on the FLOPs axis drawn as the score interpolates and extrapolates it).
Published rows without per-task FLOPs appear on the parameter axis only.

{THREAT_MODEL}
**Published rows** are copied from the papers' tables and marked "from the paper"; they are never rescored. HashEE
Tab. 2 reports speed-ups over BERT-base; their MFLOPs are the 12-layer reference MFLOPs divided by that speed-up
(marked "derived").

### Citation

```bibtex
{bibtex()}
```
"""
