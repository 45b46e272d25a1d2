"""``--task``: the one place the command line turns a task name into an :class:`~elue_hf.elue.tasks.ElueTask`.

Commands receive the resolved task in ``args.task`` and pass it inward; nothing below the command line parses a
task name again.
"""

from __future__ import annotations

import argparse

__all__ = ["task_arg"]


def task_arg(name: str):
    """argparse ``type=``: the :class:`ElueTask` named ``name`` (key, display name, folder name or alias)."""
    from ..elue.tasks import get_task

    try:
        return get_task(name)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
