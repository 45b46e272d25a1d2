"""ELUE benchmark core: tasks and data, FLOPs and parameters, submissions, the ELUE score.

Sub-modules load on first use (``elue_hf.elue.flops`` needs only NumPy; torch/transformers are imported when a model
is counted):

- :mod:`.tasks` — the six tasks (fields, labels, metrics, sizes, file layouts, Hub sources);
- :mod:`.data` — ELUE TSV layout, Hub copies, tokenisation;
- :mod:`.flops` — ELUE FLOPs (analytic and hooked), the declarative module spec, parameter counts;
- :mod:`.submission` — the submission format, writing, safe reading;
- :mod:`.score` — task metrics x100, the ElasticBERT reference curve, the ELUE score and parameter tracks;
- :mod:`.inference` — run a classifier over a test set and turn its outputs into operating points;
- :mod:`.plots` — the Pareto plot.

Data flows one way: tasks/data -> flops -> submission -> score; inference and plots use them. The command line is in
:mod:`elue_hf.commands`, the leaderboard in :mod:`elue_hf.leaderboard`.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TASKS": "tasks",
    "TASK_KEYS": "tasks",
    "get_task": "tasks",
    "task_metric": "score.metrics",
    "load_elue_task": "data",
    "load_elue_split": "data",
    "load_test_labels": "data",
    "write_elue_task": "data",
    "from_hub": "data",
    "load_hub_task": "data",
    "token_lengths": "data",
    "layer_macs": "flops",
    "elasticbert_flops": "flops",
    "bert_classifier_flops": "flops",
    "model_flops": "flops",
    "ElueFlopsCounter": "flops",
    "register_rule": "flops",
    "count_parameters": "flops",
    "module_spec_from_config": "flops",
    "encoder_modules": "flops",
    "format_modules": "flops",
    "parse_modules": "flops",
    "PredictionFile": "submission",
    "SubmissionError": "submission",
    "SubmissionLimits": "submission",
    "write_submission": "submission",
    "read_submission": "submission",
    "zip_submission": "submission",
    "load_reference": "score",
    "ReferenceCurve": "score",
    "score_submission": "score",
    "score_points": "score",
    "param_track": "score",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
