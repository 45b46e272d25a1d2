"""The ELUE leaderboard Space: :class:`~.app.Leaderboard` (plain, unit-tested methods), :func:`~.app.build_app` (the
gradio Blocks), :func:`~.app.app_from_env` (what the Space runs). gradio and pandas load on first use.

>>> from elue_hf.spaces.leaderboard import build_app
>>> build_app(store, gold="path/to/ELUE").launch()        # or: elue-hf leaderboard --db ...
"""

from __future__ import annotations

_APP = ("Leaderboard", "build_app", "app_from_env", "launch")


def __getattr__(name):
    if name in _APP:
        from . import app

        return getattr(app, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_APP)
