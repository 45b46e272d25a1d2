"""Model cards and Space cards for what elue-hf puts on the Hub.

Model cards render the Jinja2 templates in ``model_cards/`` with :func:`huggingface_hub.ModelCard.from_template`; a
card's ``model-index`` carries ELUE results: per task and operating point the metric x100 and the mean MFLOPs per
instance, plus the ELUE task scores and the ELUE score. Space cards are ``SpaceCardData`` YAML + a body (the
model-card template is not used for Spaces). Numbers in cards are either computed (FLOPs and parameters by the ELUE
rules, a submission's scores) or copied from the papers with their source.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..citations import bibtex
from ..elue.flops import encoder_classifier_macs, macs_to_mflops
from ..elue.flops.params import encoder_classifier_params
from ..elue.submission.format import flops_tier_of
from ..elue.tasks import TASKS, ElueTask, get_task

__all__ = [
    "TEMPLATES_ENV",
    "ELASTICBERT_VARIANTS",
    "template_dir",
    "metric_name",
    "eval_results_from_score",
    "eval_results_from_published",
    "results_table",
    "elasticbert_card",
    "variant_from_config",
    "hashee_card",
    "lpt_adapter_card",
    "space_card",
    "leaderboard_space_card",
    "metric_space_card",
    "SPACE_SDK_VERSION",
]

TEMPLATES_ENV = "ELUE_HF_MODEL_CARDS"
SPACE_SDK_VERSION = "6.31.0"
_ELUE_SOURCE = "ELUE (elue-hf)"


@dataclass(frozen=True)
class ElasticBertVariant:
    repo_id: str
    layers: int
    hidden: int
    heads: int
    intermediate: int
    vocab_size: int
    layer_norm_eps: float
    language: str
    published_rows: tuple[str, ...] = ()  # published.json ids of its ELUE test rows
    params_note: str = ""


#: The three released checkpoints (docs/elasticbert.md, "Config fields", "Published numbers").
ELASTICBERT_VARIANTS: dict[str, ElasticBertVariant] = {
    "base": ElasticBertVariant("fnlp/elasticbert-base", 12, 768, 12, 3072, 30522, 1e-8, "en",
                               ("eb-elasticbert-base", "eb-elasticbert-6l"), "109M as a 12-layer classifier"),
    "large": ElasticBertVariant("fnlp/elasticbert-large", 24, 1024, 16, 4096, 30522, 1e-8, "en",
                                ("eb-elasticbert-large", "eb-elasticbert-large-12l"), "335M as a 24-layer classifier"),
    "chinese-base": ElasticBertVariant("fnlp/elasticbert-chinese-base", 12, 768, 12, 3072, 38294, 1e-12, "zh"),
}


def template_dir() -> Path:
    """Folder of the card templates: ``$ELUE_HF_MODEL_CARDS``, the copy packaged in the wheel, or the checkout's
    ``model_cards/``."""
    candidates = [Path(os.environ[TEMPLATES_ENV])] if os.environ.get(TEMPLATES_ENV) else []
    here = Path(__file__).resolve().parent
    candidates += [here / "model_cards", here.parents[2] / "model_cards"]
    for folder in candidates:
        if (folder / "elasticbert.md").is_file():
            return folder
    raise FileNotFoundError(
        f"model card templates not found (looked in {', '.join(map(str, candidates))}); set ${TEMPLATES_ENV} to the "
        "folder holding elasticbert.md, hashee.md and lpt-adapter.md"
    )


# ------------------------------------------------------------------------------------------------ eval results

_METRICS = {"acc": ("accuracy", "Accuracy"), "acc_and_f1": ("acc_and_f1", "(Acc+F1)/2"),
            "corr": ("pearson_spearman", "(Pearson+Spearman)/2")}


def metric_name(task) -> tuple[str, str]:
    """(metric_type, display name) of a task's main ELUE metric (``task``: a name or an :class:`ElueTask`)."""
    return _METRICS[get_task(task).metric]


def _result(t: ElueTask, metric_type: str, value: float, name: str, source: str, url: str | None):
    from huggingface_hub import EvalResult

    return EvalResult(
        task_type="text-classification", task_name="Text Classification", dataset_type="elue",
        dataset_name=f"ELUE {t.name}", dataset_config=t.key, dataset_split="test", metric_type=metric_type,
        metric_value=round(float(value), 4), metric_name=name, source_name=source if url else None,
        source_url=url, verified=False,  # the Hub accepts a source only with its URL
    )


def eval_results_from_score(score, source: str = _ELUE_SOURCE, url: str | None = None) -> list:
    """``EvalResult`` rows from an ELUE core ``SubmissionScore``: per operating point the metric (x100) and its
    mean MFLOPs per instance; per task the ELUE task score; and the ELUE score when all six tasks are there."""
    rows = []
    for key, ts in score.tasks.items():
        task = TASKS[key]  # the score's tasks are ELUE keys
        mtype, mname = _METRICS[task.metric]
        for fs in ts.files:
            rows.append(_result(task, mtype, fs.performance, f"{mname} ({fs.label})", source, url))
            tier = flops_tier_of([fs.flops_source])
            rows.append(_result(task, "flops", fs.mean_mflops, f"MFLOPs per instance ({fs.label}; {tier} FLOPs)",
                                source, url))
        rows.append(_result(task, "elue_score", ts.score, "ELUE task score", source, url))
    if score.elue_score is not None:
        from huggingface_hub import EvalResult

        rows.append(EvalResult(task_type="text-classification", task_name="Text Classification", dataset_type="elue",
                               dataset_name="ELUE", dataset_split="test", metric_type="elue_score",
                               metric_value=round(float(score.elue_score), 4), metric_name="ELUE score",
                               source_name=source if url else None, source_url=url, verified=False))
    return rows


def eval_results_from_published(row_ids: Sequence[str]) -> list:
    """``EvalResult`` rows of published static ELUE test results (``published.json``), with their paper as source."""
    from ..leaderboard.seed import published_data

    doc = published_data()
    rows = {r["id"]: r for r in doc["entries"]}
    out = []
    for row_id in row_ids:
        row = rows[row_id]
        paper = doc["papers"][row["paper"]]
        block = row["static"]
        for key, perf in block["tasks"].items():
            task = TASKS[key]  # published.json uses ELUE keys
            mtype, mname = _METRICS[task.metric]
            out.append(_result(task, mtype, perf, f"{mname} ({row['model']}, static)",
                               f"{paper['short']}, {block['table']}", paper["url"]))
    return out


def results_table(eval_results: Iterable) -> str:
    """A markdown table of ``EvalResult`` rows (task, metric, value, source)."""
    lines = ["| task | metric | value | source |", "|---|---|---|---|"]
    for r in eval_results:
        lines.append(f"| {r.dataset_name} | {r.metric_name or r.metric_type} | {r.metric_value:g} | "
                     f"{r.source_name or ''} |")
    return "\n".join(lines) if len(lines) > 2 else ""


# ------------------------------------------------------------------------------------------------- model cards


def _render(template: str, card_data, **context):
    from huggingface_hub import ModelCard

    return ModelCard.from_template(card_data, template_path=str(template_dir() / template), **context)


def _efficiency(v: ElasticBertVariant, depths: Iterable[int], tokens: int = 128) -> list[dict]:
    rows = []
    for k in depths:
        params = encoder_classifier_params(k, 1, v.hidden, v.intermediate, v.vocab_size)
        mflops = float(macs_to_mflops(encoder_classifier_macs(tokens, v.hidden, v.intermediate, v.heads, k, 2)))
        rows.append({"layers": k, "mparams": f"{params / 1e6:.2f}", "mflops": f"{mflops:,.1f}"})
    return rows


def variant_from_config(config, repo_id: str) -> ElasticBertVariant:
    """The card facts of a model's own config (a fine-tuned or converted ElasticBERT); no published results."""
    vocab = int(config.vocab_size)
    language = next((v.language for v in ELASTICBERT_VARIANTS.values() if v.vocab_size == vocab), "en")
    return ElasticBertVariant(repo_id, int(config.num_hidden_layers), int(config.hidden_size),
                              int(config.num_attention_heads), int(config.intermediate_size), vocab,
                              float(config.layer_norm_eps), language)


def elasticbert_card(variant: str | None = "base", repo_id: str | None = None, model_name: str | None = None,
                     eval_results: Sequence | None = None, summary: str | None = None, remote_code: bool = False,
                     base_model: str | None = None, license: str = "apache-2.0", datasets: Sequence[str] = (),
                     config=None):
    """A model card for an ElasticBERT checkpoint: a released ``variant`` (base / large / chinese-base) or, with
    ``config``, a model of any size (its own dimensions; ``variant`` then only names it).

    ``eval_results`` default: the published ELUE test results of the released checkpoint (none for chinese-base or a
    ``config``). ``remote_code``: the repository carries the model code and ``auto_map`` (:func:`push_elasticbert`).
    """
    from huggingface_hub import ModelCardData

    if config is None and variant not in ELASTICBERT_VARIANTS:
        raise ValueError(f"unknown ElasticBERT variant {variant!r}; choose from {', '.join(ELASTICBERT_VARIANTS)}")
    if config is not None:
        if repo_id is None:
            raise ValueError("a card built from a config needs the repo_id it will live at")
        v = variant_from_config(config, repo_id)
        variant = variant or f"{v.layers}L-{v.hidden}"
    else:
        v = ELASTICBERT_VARIANTS[variant]
    repo_id = repo_id or v.repo_id
    results = list(eval_results) if eval_results is not None else eval_results_from_published(v.published_rows)
    name = model_name or repo_id.split("/")[-1]
    data = ModelCardData(
        language=v.language, license=license, library_name="transformers", pipeline_tag="text-classification",
        tags=["elasticbert", "early-exit", "multi-exit", "efficient-nlp", "elue", "elue-hf"],
        base_model=base_model, datasets=list(datasets) or None, model_name=name, eval_results=results or None,
    )
    depths = sorted({k for k in (1, v.layers // 4, v.layers // 2, v.layers) if k >= 1})
    return _render(
        "elasticbert.md", data, model_name=name, repo_id=repo_id, layers=v.layers, hidden=v.hidden, heads=v.heads,
        intermediate=v.intermediate, vocab_size=v.vocab_size, layer_norm_eps=v.layer_norm_eps, language=v.language,
        params_note=v.params_note, remote_code=remote_code, efficiency=_efficiency(v, depths),
        summary=summary or f"ElasticBERT-{variant}: a multi-exit BERT, loadable with `AutoModel*` via elue-hf.",
        results_table=results_table(results), citation=bibtex("elue"),
    )


def hashee_card(repo_id: str, base_model: str, hash_function: str = "frequency", num_layers: int = 6,
                num_buckets: int = 6, eval_results: Sequence | None = None, summary: str | None = None,
                language: str = "en", license: str = "apache-2.0"):
    """A model card for a model fine-tuned with a HashEE exit table."""
    from huggingface_hub import ModelCardData

    results = list(eval_results or [])
    name = repo_id.split("/")[-1]
    data = ModelCardData(language=language, license=license, library_name="transformers",
                         base_model=base_model if _is_hub_id(base_model) else None,
                         pipeline_tag="text-classification", model_name=name, eval_results=results or None,
                         tags=["hashee", "early-exit", "token-level-early-exit", "efficient-nlp", "elue-hf"])
    return _render("hashee.md", data, model_name=name, repo_id=repo_id, base_model=base_model,
                   hash_function=hash_function, num_layers=num_layers, num_buckets=num_buckets,
                   summary=summary or f"{base_model} with HashEE token-level early exit.",
                   results_table=results_table(results), citation=bibtex("hashee", "elue"))


def _is_hub_id(name) -> bool:
    """A Hub repo id (``owner/name``) rather than a local path: only those belong in ``base_model`` metadata."""
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.\-]*/[\w.\-]+", str(name))) and not Path(str(name)).exists()


def _config_value(config, key: str, default=None):
    return config.get(key, default) if isinstance(config, Mapping) else getattr(config, key, default)


def lpt_adapter_card(repo_id: str, peft_config, eval_results: Sequence | None = None, num_labels: int = 2,
                     trainable_params: int | None = None, summary: str | None = None, language: str = "en",
                     license: str = "apache-2.0"):
    """A model card for an LPT adapter (``peft_config``: the ``LPTConfig`` or its dict)."""
    from huggingface_hub import ModelCardData

    base_model = _config_value(peft_config, "base_model_name_or_path") or "<base model>"
    prompt_layer = _config_value(peft_config, "prompt_layer")
    results = list(eval_results or [])
    name = repo_id.split("/")[-1]
    data = ModelCardData(language=language, license=license, library_name="peft", pipeline_tag="text-classification",
                         base_model=base_model if _is_hub_id(base_model) else None,
                         model_name=name, eval_results=results or None,
                         tags=["peft", "lpt", "late-prompt-tuning", "prompt-tuning", "elue-hf"])
    return _render(
        "lpt-adapter.md", data, model_name=name, repo_id=repo_id, base_model=base_model,
        generator=_config_value(peft_config, "generator", "npg"),
        num_prompt_tokens=_config_value(peft_config, "num_prompt_tokens"),
        prompt_layer=prompt_layer, prompt_layer_paper=None if prompt_layer is None else int(prompt_layer) + 1,
        head_mode=_config_value(peft_config, "head_mode", "cls"), num_labels=num_labels,
        trainable_params=f"{trainable_params:,}" if trainable_params else None,
        summary=summary or f"A Late Prompt Tuning adapter for {base_model}.",
        results_table=results_table(results), citation=bibtex("lpt", "elue"),
    )


# ------------------------------------------------------------------------------------------------- Space cards


def space_card(title: str, body: str, emoji: str = "⚡", color_from: str = "blue", color_to: str = "green",
               app_file: str = "app.py", license: str = "apache-2.0", tags: Sequence[str] = (),
               short_description: str | None = None, models: Sequence[str] = (), datasets: Sequence[str] = (),
               extra: Mapping[str, Any] | None = None):
    """A Space card (YAML header from ``SpaceCardData`` + ``body``) for a gradio Space on the pinned gradio."""
    from huggingface_hub import SpaceCard, SpaceCardData

    data = SpaceCardData(
        title=title, sdk="gradio", sdk_version=SPACE_SDK_VERSION, python_version="3.11", app_file=app_file,
        license=license, tags=list(tags) or None, models=list(models) or None, datasets=list(datasets) or None,
        emoji=emoji, colorFrom=color_from, colorTo=color_to, pinned=False, short_description=short_description,
        **dict(extra or {}),
    )
    return SpaceCard("---\n" + data.to_yaml() + "\n---\n\n" + body.strip() + "\n")


_LEADERBOARD_BODY = """\
# ELUE leaderboard

Efficient Language Understanding Evaluation (ELUE): quality **and** FLOPs on SST-2, IMDb, MRPC, STS-B, SNLI and
SciTail. Rankings by ELUE score and in four parameter tracks (40M / 55M / 70M / 110M), a Pareto page per task
(accuracy vs FLOPs or parameters, frontier and ElasticBERT reference curve), and a Submit tab that validates, scores
and stores a submission zip in seconds. Uploaded files are parsed as JSON and TSV only; no submitted code is run.
Every point's FLOPs carry a tier: `self-reported` (a number), `consistent` (declared per-instance modules agree and
pass the cross-checks) or `verified` (the server re-ran the named model); the About tab states what each proves.

The app is a thin wrapper over the tested package `elue-hf`
(`elue_hf.leaderboard`). Run it locally with `elue-hf leaderboard --db leaderboard.db --data-dir ELUE/`.

## Configuration (Space variables and secrets)

| name | meaning |
|---|---|
| `ELUE_RESULTS_REPO` | Hub dataset repo keeping the results, one JSON file per entry (unset: local SQLite) |
| `HF_TOKEN` (secret) | write token for that dataset repo |
| `ELUE_LEADERBOARD_DB` | SQLite path, or the Hub store's local cache (e.g. `/data/leaderboard.db`) |
| `ELUE_DATA_DIR` | ELUE data with `<Task>/test_full.tsv`: the gold labels (unset: submissions closed) |
| `ELUE_HF_REFERENCE` | optional reference-curve JSON (e.g. with recomputed IMDb FLOPs) |
| `ELUE_TOKENIZER_DIR` | tokenizers by Hub id (`owner--name`) for the token-length check, tried before the Hub |
| `ELUE_VERIFY_DIR` | where submissions naming their model are kept and re-run by a background worker (unset: none) |
| `ELUE_MODEL_DIR` | models by Hub id, tried before the Hub when re-running |
| `ELUE_SUBMIT_TOKENS` (secret) | optional `name:token,...` submit tokens, besides the Hub login (`hf_oauth`) |
| `ELUE_ALLOW_ANONYMOUS` | `1` lets visitors submit without signing in (one shared daily limit); off by default |

Uploads need an identity: the Hub's "Sign in" button (or a submit token). The daily limits (3 stored entries, 20
uploads checked, 12 operating points per task per submission) count per identity, so stored scores cannot serve as a
label oracle; only submissions the server re-ran (`verified`) are ranked, the others are listed apart.

Published rows are copied from the papers and marked so; they are never rescored.

## Citation

```bibtex
{citation}
```
"""

_METRIC_BODY = """\
# ELUE metric

An [`evaluate`](https://huggingface.co/docs/evaluate) metric for ELUE: for one task it returns the task metric
(x100: accuracy; (acc+F1)/2 for MRPC; (Pearson+Spearman)/2 for STS-B), the mean MFLOPs per instance and the residual
against the ElasticBERT-base reference curve (piecewise-linear in FLOPs, linear extrapolation outside); given a whole
submission (directory or zip) and gold labels, the per-task scores, the ELUE score and the parameter tracks.

```python
import evaluate

elue = evaluate.load("<this Space's id>")  # the module imports elue_hf: install elue-hf first
elue.compute(predictions=[0, 1, 1], references=[0, 1, 0], flops=[1010.2, 1100.0, 980.5], task="sst-2")
```

Offline, with elue-hf installed: `evaluate.load(elue_hf.metrics.METRIC_PATH)`, or `elue_hf.metrics.install_metric()`
once and then `evaluate.load("elue")` from any directory.

`elue.py` here re-exports the metric class shipped in `elue_hf.metrics`, so the Space and the package cannot drift
apart. FLOPs follow the ELUE rules (2 x multiply-accumulates of linear layers, self-attention and LayerNorms, per
instance at its true length). IMDb scores are provisional until the IMDb reference FLOPs are recomputed
(`elue-hf recompute-imdb-flops`).

## Citation

```bibtex
{citation}
```
"""


def leaderboard_space_card():
    """The README of ``spaces/leaderboard`` (regenerate with ``elue-hf space-card leaderboard``)."""
    return space_card(
        "ELUE leaderboard", _LEADERBOARD_BODY.format(citation=bibtex()), emoji="🏁", color_from="indigo",
        color_to="green", tags=["leaderboard", "elue", "efficient-nlp", "early-exit"],
        short_description="Efficient NLP leaderboard: quality and FLOPs (ELUE)", extra={"hf_oauth": True},
    )


def metric_space_card():
    """The README of ``spaces/elue-metric`` (regenerate with ``elue-hf space-card metric``)."""
    return space_card(
        "ELUE", _METRIC_BODY.format(citation=bibtex("elue")), emoji="⚡", color_from="blue", color_to="green",
        tags=["evaluate", "metric", "efficiency", "flops"],
        short_description="ELUE: task metric plus FLOPs vs the ElasticBERT curve",
        extra={"description": "ELUE (Efficient Language Understanding Evaluation): task metric plus FLOPs, "
                              "scored against the ElasticBERT-base reference curve."},
    )
