"""``make demo`` / ``elue-hf demo``: the main job on the embedded real assets, built only on the public API.

:mod:`.runner` converts the embedded MiniLM into ElasticBERT, fine-tunes its exits and sweeps early exit; each of
:mod:`.elue`, :mod:`.leaderboard`, :mod:`.hashee`, :mod:`.lpt` and :mod:`.deploy` adds one section (a ``run(ctx)``
function) that reads and extends the shared :class:`~.context.DemoContext`.
"""

from __future__ import annotations

from .context import DemoContext, OperatingPoint
from .runner import main, register

__all__ = ["DemoContext", "OperatingPoint", "main", "register"]
