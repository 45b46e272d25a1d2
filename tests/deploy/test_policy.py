"""The NumPy exit rules (ONNX Runtime path) decide exactly as the torch ExitPolicy; fast, no export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from elue_hf.deploy.policy import NumpyExitPolicy, entropy, resolve_exit_options, trim_padding
from elue_hf.elasticbert import ExitPolicy, prediction_entropy

CONFIG = {"exit_layers": [1, 2, 3, 4], "num_labels": 3,
          "defaults": {"exit_criterion": None, "entropy_threshold": 0.0, "patience": 0, "regression_threshold": 0.0}}


def test_entropy_matches_torch():
    logits = np.random.default_rng(0).normal(0, 3, (50, 3)).astype(np.float32)
    np.testing.assert_allclose(entropy(logits), prediction_entropy(torch.from_numpy(logits)).numpy(), atol=1e-6)


@pytest.mark.parametrize("criterion,kwargs,labels", [
    ("entropy", {"entropy_threshold": 0.7}, 3),
    ("patience", {"patience": 2}, 3),
    ("patience", {"patience": 1, "regression_threshold": 0.3}, 1),
])
def test_numpy_policy_decides_as_torch_policy_with_rows_dropped(criterion, kwargs, labels):
    rng = np.random.default_rng(1)
    all_logits = rng.normal(0, 1.5, (40, 5, labels)).astype(np.float32)
    ours = NumpyExitPolicy(criterion, regression=labels == 1, **kwargs)
    theirs = ExitPolicy(criterion, regression=labels == 1, **kwargs)
    rows = np.arange(40)
    for j in range(5):
        logits = all_logits[rows, j]
        done = ours.step(logits, last=j == 4)
        np.testing.assert_array_equal(done, theirs.step(torch.from_numpy(logits), last=j == 4).numpy())
        keep = ~done
        ours.select(keep)
        theirs.select(torch.from_numpy(keep))
        rows = rows[keep]
    assert rows.size == 0


def test_trim_padding_drops_only_columns_padded_in_every_row():
    hidden = np.zeros((2, 6, 4), dtype=np.float32)
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]])
    h, m = trim_padding(hidden, mask)
    assert h.shape == (2, 4, 4) and m.shape == (2, 4)


def test_options_resolve_over_defaults_and_bad_ones_raise():
    assert resolve_exit_options(CONFIG, exit_criterion="patience", patience=0)[0] is None  # patience 0 = no exit
    assert resolve_exit_options(CONFIG, exit_layer=2)[0] == "static"
    with pytest.raises(ValueError, match="entropy_threshold must be"):
        resolve_exit_options(CONFIG, exit_criterion="entropy", entropy_threshold=-1)
    with pytest.raises(ValueError, match="cannot be combined"):
        resolve_exit_options(CONFIG, exit_criterion="entropy", exit_layer=2)
