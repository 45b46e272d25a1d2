"""Verification by re-running the model (the ``verified`` FLOPs tier, docs/elue.md "Threat model").

A submission may name its model (``"model": {"id": "owner/name", "revision": "..."}`` in ``submission.json``) and
give each file's exit ``"settings"`` (``{"exit": "static", "layers": 3}``, ``{"exit": "entropy", "value": 0.3}``,
``{"exit": "patience", "value": 2}``, ``{"exit": "hashee"}`` for a HashEE model). The model is an ElasticBERT, BERT or
RoBERTa classifier, plain or with a HashEE table, or an LPT adapter on one (docs/elue.md lists exactly what). The
server then fetches the model (safetensors only, never remote code), re-runs
the ELUE test set in a subprocess with time and memory limits, recomputes predictions and per-instance FLOPs, and
marks the entry ``verified`` when the predictions agree on at least 99.5% of the instances and every point's mean
FLOPs lies within 1%.

- :mod:`.request`: what the manifest asks for, type-checked (pure).
- :mod:`.rerun`: the re-run itself and the comparison (runs inside the sandbox).
- :mod:`.adapter`: an LPT adapter folder and the base model it names.
- :mod:`.sandbox`: the subprocess with ``resource.setrlimit`` limits; the machine description.
- :mod:`.worker`: the queue worker over the leaderboard store (one job at a time, resumable).
"""

from __future__ import annotations

from .request import AGREEMENT, FLOPS_TOLERANCE, SETTINGS_KINDS, VerifyError, VerifyRequest, verify_request

__all__ = ["AGREEMENT", "FLOPS_TOLERANCE", "SETTINGS_KINDS", "VerifyError", "VerifyRequest", "verify_request"]
