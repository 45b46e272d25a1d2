"""The ELUE metric Space: a gradio widget around ``evaluate.load("elue")`` (:func:`~.app.build_metric_app`)."""

from __future__ import annotations

from .app import build_metric_app

__all__ = ["build_metric_app"]
