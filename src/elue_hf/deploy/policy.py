"""The exit rules of ``elue_hf.elasticbert.ExitPolicy`` on NumPy arrays (no torch), for the ONNX Runtime model.

The same decisions as the PyTorch policy (docs/elasticbert.md: entropy strictly below the threshold; patience counts
consecutive agreeing exits, argmax or ``|y_i - y_{i-1}| < regression_threshold``; the last exit always exits);
the fidelity tests compare the two on the same models.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["EXIT_CRITERIA", "NumpyExitPolicy", "entropy", "resolve_exit_options", "trim_padding"]

EXIT_CRITERIA = ("entropy", "patience", "static")


def entropy(logits: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of softmax(logits) over the last axis, computed stably in float32 like the torch path."""
    z = logits.astype(np.float32)
    shifted = z - z.max(-1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    return -(np.exp(log_p) * log_p).sum(-1)


class NumpyExitPolicy:
    """Per-row exit decisions fed one exit's logits at a time; :meth:`select` drops rows that left."""

    def __init__(self, criterion, entropy_threshold=0.0, patience=0, regression_threshold=0.0, regression=False):
        self.criterion = criterion
        self.entropy_threshold = entropy_threshold
        self.patience = patience
        self.regression_threshold = regression_threshold
        self.regression = regression
        self.previous = None
        self.streak = None

    def step(self, logits: np.ndarray, last: bool = False) -> np.ndarray:
        if last:
            return np.ones(logits.shape[0], dtype=bool)
        if self.criterion == "entropy":
            return entropy(logits) < self.entropy_threshold
        current = logits[:, 0] if self.regression else logits.argmax(-1)
        if self.previous is None:
            self.streak = np.zeros(current.shape[0], dtype=np.int64)
        else:
            if self.regression:
                agree = np.abs(current - self.previous) < self.regression_threshold
            else:
                agree = current == self.previous
            self.streak = np.where(agree, self.streak + 1, 0)
        self.previous = current
        return self.streak >= self.patience

    def select(self, keep: np.ndarray) -> None:
        if self.previous is not None:
            self.previous, self.streak = self.previous[keep], self.streak[keep]


def _finite_nonneg(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def resolve_exit_options(config: dict, exit_criterion=None, entropy_threshold=None, patience=None,
                         regression_threshold=None, exit_layer=None):
    """Per-call options over the bundle's defaults -> (criterion or None, entropy_threshold, patience,
    regression_threshold, static exit layer or None), checked as the PyTorch model checks them."""
    defaults = config["defaults"]
    exits = config["exit_layers"]
    criterion = defaults.get("exit_criterion") if exit_criterion is None else exit_criterion
    if exit_layer is not None:
        if exit_criterion not in (None, "static"):
            raise ValueError(f"exit_layer={exit_layer} is a static exit; it cannot be combined with "
                             f"exit_criterion={exit_criterion!r}")
        criterion = "static"
    criterion = None if criterion == "none" else criterion
    entropy_threshold = defaults.get("entropy_threshold", 0.0) if entropy_threshold is None else entropy_threshold
    patience = defaults.get("patience", 0) if patience is None else patience
    regression_threshold = (defaults.get("regression_threshold", 0.0) if regression_threshold is None
                            else regression_threshold)
    if criterion not in (None, *EXIT_CRITERIA):
        raise ValueError(f"Unknown exit_criterion {criterion!r}; expected None, 'none' or one of {EXIT_CRITERIA}")
    if criterion == "static":
        if exit_layer not in exits:
            raise ValueError(f"exit_layer must be one of the exit layers {exits} (1-based), got {exit_layer!r}")
    elif criterion is not None and len(exits) == 1:
        raise ValueError(f"exit_criterion={criterion!r} needs a multi-exit model; this bundle has one exit")
    elif criterion == "entropy":
        if config["num_labels"] == 1:
            raise ValueError("Entropy-based early exit is undefined for regression (num_labels=1); use 'patience'")
        _finite_nonneg("entropy_threshold", entropy_threshold)
    elif criterion == "patience":
        if isinstance(patience, bool) or not isinstance(patience, int) or not 0 <= patience < len(exits):
            raise ValueError(f"patience must be an integer between 0 and {len(exits) - 1} (the bundle has "
                             f"{len(exits)} exits), got {patience!r}")
        _finite_nonneg("regression_threshold", regression_threshold)
        if patience == 0:
            criterion = None  # patience 0 = no early exit
    return criterion, entropy_threshold, patience, regression_threshold, exit_layer


def trim_padding(hidden: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop trailing positions that are padding for every remaining row (as the PyTorch batched exit does)."""
    valid = mask.astype(bool).any(0)
    if not valid.any():
        return hidden, mask
    length = int(np.flatnonzero(valid).max()) + 1
    if length == mask.shape[1]:
        return hidden, mask
    return hidden[:, :length], mask[:, :length]
