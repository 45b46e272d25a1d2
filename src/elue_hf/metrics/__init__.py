"""The ELUE ``evaluate`` metric shipped with elue-hf, and how to load it offline.

- ``evaluate.load(elue_hf.metrics.METRIC_PATH)`` — the metric folder (works from any directory, no network);
- ``elue_hf.metrics.install_metric()`` once, then a bare ``evaluate.load("elue")`` from any directory: it seeds
  evaluate's module cache the way a Hub download would (evaluate has no plugin discovery for installed packages);
  :func:`ensure_metric_installed` does the same without importing evaluate (cheap enough for ``import elue_hf``);
- ``elue_hf.metrics.Elue()`` — direct instantiation.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import shutil
from pathlib import Path

__all__ = ["METRIC_DIR", "METRIC_PATH", "METRIC_SCRIPT", "install_metric", "ensure_metric_installed", "load_metric",
           "quiet_cached_metric_notice"]

METRIC_DIR = Path(__file__).resolve().parent / "elue"
#: what to pass to ``evaluate.load``: the folder holding ``elue.py`` (evaluate resolves ``<folder>/elue.py``)
METRIC_PATH = str(METRIC_DIR)
METRIC_SCRIPT = METRIC_DIR / "elue.py"


def _evaluate_modules_root() -> Path:
    """``<HF_MODULES_CACHE>/evaluate_modules`` as evaluate computes it (without importing evaluate)."""
    env = os.getenv("HF_MODULES_CACHE")
    if env:
        modules = Path(env)
    else:
        home = os.getenv("HF_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "huggingface"))
        modules = Path(os.path.expanduser(home)) / "modules"
    return modules / "evaluate_modules"


def _seed(root: Path) -> Path:
    """Copy the metric into ``<root>/metrics/evaluate-metric--elue/<sha256>/`` (+ ``__init__.py`` files) if needed."""
    code = METRIC_SCRIPT.read_bytes()
    target = root / "metrics" / "evaluate-metric--elue" / hashlib.sha256(code).hexdigest()
    target.mkdir(parents=True, exist_ok=True)
    for folder in (root, root / "metrics", root / "metrics" / "evaluate-metric--elue", target):
        init = folder / "__init__.py"
        if not init.exists():
            init.touch()
    script = target / "elue.py"
    if not script.exists() or script.read_bytes() != code:
        shutil.copyfile(METRIC_SCRIPT, script)
    card = METRIC_DIR / "README.md"
    if card.exists() and not (target / "README.md").exists():
        shutil.copyfile(card, target / "README.md")
    return target


class _QuietCachedElue(logging.Filter):
    """Drops evaluate's "Using the latest cached version of the module ... couldn't be found remotely" notice for the
    ELUE metric only: the cache copy is where elue-hf puts the metric on purpose, so the notice is no news; every other
    module's notice (and every other message) passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("Using the latest cached version of the module")
                    and "evaluate-metric--elue" in message)


def quiet_cached_metric_notice() -> None:
    """Install :class:`_QuietCachedElue` on evaluate's loading logger (no evaluate import; idempotent)."""
    logger = logging.getLogger("evaluate.loading")
    if not any(isinstance(f, _QuietCachedElue) for f in logger.filters):
        logger.addFilter(_QuietCachedElue())


def install_metric(modules_cache: str | Path | None = None) -> Path:
    """Seed evaluate's dynamic-module cache so ``evaluate.load("elue")`` works offline from any directory.

    Copies ``elue.py`` (and its README card) to
    ``<modules cache>/evaluate_modules/metrics/evaluate-metric--elue/<sha256 of elue.py>/`` with the ``__init__.py``
    files evaluate expects; idempotent. ``modules_cache`` defaults to evaluate's (``$HF_MODULES_CACHE``).
    Returns the folder written. The bare name resolves through evaluate's cache fallback, whose "Using the latest
    cached version" notice is dropped for this metric (:func:`quiet_cached_metric_notice`); with
    ``HF_EVALUATE_OFFLINE=1`` no network lookup is tried first.
    """
    from evaluate.loading import init_dynamic_modules

    quiet_cached_metric_notice()
    target = _seed(Path(init_dynamic_modules(hf_modules_cache=modules_cache)))
    (target / "elue.py").touch()  # newest mtime wins in evaluate's cache fallback
    return target


def ensure_metric_installed() -> Path | None:
    """Import-time-safe :func:`install_metric`: no ``evaluate`` import, writes only what is missing, never raises.

    Returns the metric folder, or None when skipped (``ELUE_HF_NO_METRIC_INSTALL=1``) or the cache is not writable.
    """
    if os.getenv("ELUE_HF_NO_METRIC_INSTALL"):
        return None
    quiet_cached_metric_notice()
    try:
        return _seed(_evaluate_modules_root())
    except OSError:
        return None


def load_metric(**kwargs):
    """``evaluate.load`` of the shipped metric folder (no cache seeding, no network)."""
    import evaluate

    return evaluate.load(METRIC_PATH, **kwargs)


@functools.lru_cache(maxsize=1)
def _metric_class():
    import importlib.util

    spec = importlib.util.spec_from_file_location("elue_hf.metrics._elue_metric", METRIC_SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Elue


def __getattr__(name):
    if name == "Elue":
        return _metric_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
