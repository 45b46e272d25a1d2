"""ELUE benchmark core: tasks and data, FLOPs and parameters, submissions, the ELUE score.

Sub-modules load on first use (``elue_hf.elue.flops`` needs only NumPy; torch/transformers are imported when a model
is counted):

- :mod:`.tasks` / :mod:`.task_metrics` — the six tasks, metrics x100;
- :mod:`.data` — ELUE TSV layout, Hub copies, tokenisation;
- :mod:`.flops` — analytic ELUE FLOPs and the hooked :class:`~elue_hf.elue.flops.ElueFlopsCounter`;
- :mod:`.params` — parameter counts;
- :mod:`.modules_spec` / :mod:`.submission` — the ``modules`` column, declarative module spec, safe read/write/zip;
- :mod:`.reference` / :mod:`.score` — the ElasticBERT reference curve, ELUE score, parameter tracks;
- :mod:`.plots`, :mod:`.cli`, :mod:`.demo`.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TASKS": "tasks",
    "TASK_KEYS": "tasks",
    "get_task": "tasks",
    "task_metric": "task_metrics",
    "load_elue_task": "data",
    "load_elue_split": "data",
    "load_test_labels": "data",
    "from_hub": "data",
    "load_hub_task": "data",
    "token_lengths": "data",
    "layer_macs": "flops",
    "elasticbert_flops": "flops",
    "bert_classifier_flops": "flops",
    "model_flops": "flops",
    "ElueFlopsCounter": "flops",
    "register_rule": "flops",
    "count_parameters": "params",
    "module_spec_from_config": "modules_spec",
    "encoder_modules": "modules_spec",
    "format_modules": "modules_spec",
    "parse_modules": "modules_spec",
    "PredictionFile": "submission",
    "SubmissionError": "submission",
    "SubmissionLimits": "submission",
    "write_submission": "submission",
    "read_submission": "submission",
    "zip_submission": "submission",
    "load_reference": "reference",
    "ReferenceCurve": "reference",
    "score_submission": "score",
    "score_points": "score",
    "param_track": "score",
}


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
