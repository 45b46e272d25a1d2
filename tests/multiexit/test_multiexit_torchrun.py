"""``torchrun --nproc_per_node 2`` of ``elue-hf train`` on a multi-exit model, on CPU (gloo): two processes train one
model through ``Trainer``'s DDP and save one multi-exit folder (docs/multi-exit.md, "ELUE FLOPs, evaluation,
serving, training")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForSequenceClassification

import elue_hf  # noqa: F401
from tests.helpers.elue_fixtures import write_synthetic_task
from tests.helpers.tiny_families import tiny_classifier
from tests.helpers.tiny_models import synthetic_tokenizer

pytestmark = pytest.mark.slow  # two torch processes: about 20 s on two cores


def test_torchrun_two_processes_train_one_multi_exit_roberta(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    assert torchrun.is_file(), "torchrun is installed with torch next to this interpreter"
    source = tmp_path / "source"
    tiny_classifier("roberta", num_labels=2).save_pretrained(source)
    synthetic_tokenizer().save_pretrained(source)
    write_synthetic_task(tmp_path / "elue", "sst-2")  # 24 training rows
    out = tmp_path / "out"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    run = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "elue_hf.cli", "train", "--model",
         str(source), "--data-dir", str(tmp_path / "elue"), "--task", "sst-2", "--output-dir", str(out),
         "--max-steps", "3", "--batch-size", "4", "--use-cpu"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((out / "eval_results.json").read_text())
    # 3 steps of 4 rows on each of 2 ranks = 24 rows = one epoch of the 24 training rows: the world size was 2
    assert metrics["epoch"] == pytest.approx(1.0)
    assert {f"eval_exit_{k}_acc" for k in (1, 2, 3)} <= set(metrics)
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.model_type == "multiexit" and model.config.backbone_type == "roberta"
    assert list(model.config.exit_layers) == [1, 2, 3]
