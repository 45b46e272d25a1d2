"""The runtime needs only onnxruntime, tokenizers and numpy: run a bundle where torch and transformers cannot be
imported (same interpreter, imports blocked) and in a fresh virtual environment that never had them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # exports a bundle; the second test builds a virtual environment

SRC = Path(__file__).resolve().parents[2] / "src"
PINS = ["onnxruntime==1.31.1", "tokenizers==0.23.3", "numpy==2.4.6"]

SCRIPT = r"""
import json, sys
import numpy as np
from elue_hf.deploy.runtime import OnnxElasticBertForSequenceClassification
model = OnnxElasticBertForSequenceClassification.from_pretrained(sys.argv[1], threads=1)
ids, mask = np.load(sys.argv[2])["ids"], np.load(sys.argv[2])["mask"]
options = {"exit_criterion": "entropy", "entropy_threshold": 0.3}
out = model.forward(ids, mask, **options)
results = model._results(out, mask.sum(-1), options)  # labels, scores and ELUE MFLOPs, as predict() returns
assert all(r["mflops"] > 0 for r in results)
heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
print(json.dumps({"exit_layer": out.exit_layer.tolist(), "logits": out.logits.tolist(), "heavy": heavy}))
"""

BLOCKER = r"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "transformers"):
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, _Block())
"""


def _run(python, bundle, arrays, tmp_path, block=False):
    code = (BLOCKER if block else "") + SCRIPT
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run([str(python), "-c", code, str(bundle), str(arrays)], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def case(bundles, tmp_path_factory):
    import torch

    from tests.deploy.conftest import random_batch

    model, bundle = bundles[("cls", 2)]
    ids, mask, _ = random_batch()
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask, exit_criterion="entropy", entropy_threshold=0.3)
    arrays = tmp_path_factory.mktemp("arrays") / "batch.npz"
    np.savez(arrays, ids=ids.numpy(), mask=mask.numpy())
    return bundle, arrays, want


def _check(result, want):
    assert result["heavy"] == []
    assert result["exit_layer"] == want.exit_layer.tolist()
    np.testing.assert_allclose(np.array(result["logits"]), want.logits.numpy(), atol=1e-4, rtol=0)


def test_runtime_runs_with_torch_and_transformers_blocked(case, tmp_path):
    bundle, arrays, want = case
    _check(_run(sys.executable, bundle, arrays, tmp_path, block=True), want)


def test_runtime_in_a_venv_without_torch(case, tmp_path_factory):
    bundle, arrays, want = case
    where = tmp_path_factory.mktemp("notorch")
    venv.create(where / "venv", with_pip=True)
    python = where / "venv" / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *PINS],
                             capture_output=True, text=True, timeout=600)
    if install.returncode != 0:
        pytest.skip(f"no package index reachable to build the torch-free venv: {install.stderr.strip()[-200:]}")
    check = subprocess.run([str(python), "-c", "import importlib.util as u; print(u.find_spec('torch') is None)"],
                           capture_output=True, text=True)
    assert check.stdout.strip() == "True"
    _check(_run(python, bundle, arrays, where), want)
