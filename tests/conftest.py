"""Test-wide settings: never touch the network, keep caches inside the test session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def minilm_dir():
    """The real all-MiniLM-L6-v2 checkpoint installed by `make setup`."""
    from elue_hf.assets import minilm_path

    return minilm_path()

# Slow tests carry `pytest.mark.slow` in their own file (a module's `pytestmark` or a test's decorator);
# `make test-fast` (pytest -m "not slow") skips them.
