"""Text shown by the leaderboard (About tab, Submit tab help)."""

from __future__ import annotations

from ...citations import bibtex

__all__ = ["about_markdown", "SUBMIT_HELP"]

SUBMIT_HELP = """\
Upload **one zip** made with `elue_hf.elue.submission.write_submission` + `zip_submission` (or `elue-hf evaluate`):
`submission.json` (model name, parameter count, declarative module spec) and one TSV per operating point,
`<task>/<point>.tsv` with columns `index  pred  modules`. FLOPs are **recomputed** from each instance's `modules`
column and the module spec ("verified"); files that carry only a `flops` column are marked "self-reported".
No uploaded code is ever run: there is no model file, only JSON and TSV. Limits: zip size, number of files, size
after unpacking, compression ratio. **Submit** scores and stores the entry; **Validate only** scores without storing.
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

**Published rows** are copied from the papers' tables and marked "from the paper"; they are never rescored. HashEE
Tab. 2 reports speed-ups over BERT-base; their MFLOPs are the 12-layer reference MFLOPs divided by that speed-up
(marked "derived").

### Citation

```bibtex
{bibtex()}
```
"""
