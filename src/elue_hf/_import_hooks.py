"""Run a callback right after a module is imported (or at once if it already is): lazy registration.

``import elue_hf`` must register ElasticBERT with transformers and LPT with PEFT, yet stay cheap for the command
line (``elue-hf --help`` imports neither torch nor transformers). :func:`when_imported` defers each registration to
the moment its library is imported -- before any model can be loaded through it.

Why a meta-path finder stays (checked on transformers 5.23, peft 0.21.2, evaluate 0.4.6): none of them discovers
plug-ins (no entry points), so something must run our registration before their loaders look a name up. The other
ways were weighed: an eager ``import transformers`` in ``elue_hf/__init__`` costs torch + transformers on every
``elue-hf --help``; registering on first use of elue-hf's own classes misses the cases that matter
(``AutoModel.from_pretrained(<ElasticBERT folder>)``, ``PeftModel.from_pretrained(<LPT adapter>)``,
``evaluate.load("elue")`` after a bare ``import elue_hf``); ``auto_map`` remote code needs ``trust_remote_code=True``.
The finder is narrow: it watches only the module names given to :func:`when_imported`, keeps the real loader on the
module, and leaves ``sys.meta_path`` once every watched module has been imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading
import warnings
from typing import Callable

__all__ = ["when_imported"]

_lock = threading.RLock()


def when_imported(name: str, callback: Callable[[], None]) -> None:
    """Call ``callback()`` once ``name`` (a top-level module) has been imported: now if it already is, else right
    after its import finishes. A failing callback warns instead of breaking the import."""
    with _lock:
        if name not in sys.modules:
            _finder().callbacks.setdefault(name, []).append(callback)
            return
    _call(name, callback)


def _call(name: str, callback: Callable[[], None]) -> None:
    try:
        callback()
    except Exception as err:  # noqa: BLE001 -- registration must never break someone else's import
        warnings.warn(f"elue_hf: registration after importing {name} failed: {err!r}", RuntimeWarning, stacklevel=2)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """A meta-path finder that wraps the loader of watched modules to run callbacks after ``exec_module``."""

    def __init__(self):
        self.callbacks: dict[str, list[Callable[[], None]]] = {}
        self._busy: set[str] = set()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.callbacks or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _HookedLoader(spec.loader, fullname, self)
        return spec


class _HookedLoader(importlib.abc.Loader):
    def __init__(self, loader, name: str, finder: _PostImportFinder):
        self._loader, self._name, self._finder = loader, name, finder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        # the module keeps the real loader (importlib.resources and friends look at it)
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        with _lock:
            callbacks = self._finder.callbacks.pop(self._name, [])
            if not self._finder.callbacks and self._finder in sys.meta_path:
                sys.meta_path.remove(self._finder)  # nothing left to watch
        for callback in callbacks:
            _call(self._name, callback)

    def __getattr__(self, attr):
        return getattr(self._loader, attr)


_FINDER: _PostImportFinder | None = None


def _finder() -> _PostImportFinder:
    global _FINDER
    if _FINDER is None or _FINDER not in sys.meta_path:
        _FINDER = _FINDER or _PostImportFinder()
        sys.meta_path.insert(0, _FINDER)
    return _FINDER
