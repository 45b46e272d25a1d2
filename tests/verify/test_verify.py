"""Verification by re-running the model, end to end and offline: a tiny ElasticBERT folder (safetensors), synthetic
ELUE test sets, the sandboxed subprocess, the leaderboard queue, and submissions whose claims the re-run contradicts."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from elue_hf import ElasticBertForSequenceClassification
from elue_hf.cli import main
from elue_hf.elue.data import load_test_labels
from elue_hf.elue.flops import dims_from_config
from elue_hf.elue.flops.params import count_parameters
from elue_hf.elue.inference import point_params, run_operating_points, submission_spec, to_prediction_file
from elue_hf.elue.score.metrics import task_metric
from elue_hf.elue.submission import read_submission, write_submission, zip_submission
from elue_hf.elue.submission.checks import load_tokenizer
from elue_hf.elue.tasks import TASKS, get_task
from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.leaderboard.submit import SubmitError, submit_file
from elue_hf.verify import VerifyError, verify_request
from elue_hf.verify.rerun import _dataset, _setting_of, rerun
from elue_hf.verify.sandbox import SandboxLimits, run_sandboxed
from elue_hf.verify.worker import run_worker
from tests.helpers.elasticbert import tiny_config
from tests.helpers.elue_fixtures import synthetic_vocab, write_synthetic_elue
from tests.helpers.leaderboard import TOKENIZER_ID, tokenizer_root

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module

MODEL_ID = "me/tiny-elasticbert"
LIMITS = SandboxLimits(memory_bytes=6 * 2**30, cpu_seconds=600, wall_seconds=600)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """What the server holds: test sets, tokenizers and models by Hub id."""
    root = tmp_path_factory.mktemp("server")
    data = write_synthetic_elue(root / "ELUE", tasks=("sst-2",), sizes={"test": 48})
    tokenizers = tokenizer_root(root / "tokenizers")
    torch.manual_seed(0)
    model = ElasticBertForSequenceClassification(tiny_config(vocab_size=len(synthetic_vocab()), num_labels=2))
    model.save_pretrained(root / "models" / MODEL_ID.replace("/", "--"))
    return {"data": data, "tokenizers": tokenizers, "models": root / "models", "model": model.eval()}


def outputs(server, sweep_static=(1, 3), entropy=(0.5,)):
    model = server["model"]
    tokenizer = load_tokenizer(TOKENIZER_ID, [server["tokenizers"]], allow_hub=False)
    task = get_task("sst-2")
    dataset = _dataset(server["data"], task)
    points = run_operating_points(model, tokenizer, dataset, task, "static", list(sweep_static), 128)
    if entropy:
        points += run_operating_points(model, tokenizer, dataset, task, "entropy", list(entropy), 128)
    return points


def write(server, folder: Path, points, name="tiny", model=MODEL_ID, settings=None, params=None) -> Path:
    """A submission as a user writes it with the package (inference -> prediction files -> zip)."""
    m = server["model"]
    dims = dims_from_config(m.config)
    files = {}
    for p in points:
        pf = to_prediction_file(p, TASKS["sst-2"], dims, (params or {}).get(p.label) or point_params(m, p), 128)
        pf.settings = (settings or {}).get(p.label, _setting_of(p))
        files[p.label] = pf
    sub = write_submission(folder / name, name, "verification test", count_parameters(m), files,
                           module_spec=submission_spec(m), tokenizer=TOKENIZER_ID,
                           model=None if model is None else {"id": model})
    return zip_submission(sub, folder / f"{name}.zip")


def run(server, path):
    return rerun(path, server["data"], [server["models"]], [server["tokenizers"]], allow_hub=False)


def test_an_honest_submission_is_verified_in_the_sandbox(server, tmp_path):
    honest = write(server, tmp_path, outputs(server))
    report = run_sandboxed(honest, server["data"], model_roots=[server["models"]],
                           tokenizer_roots=[server["tokenizers"]], allow_hub=False, limits=LIMITS)
    assert report["verified"] is True, report
    assert set(report["files"]) == {"sst-2/static_k=1.tsv", "sst-2/static_k=3.tsv", "sst-2/entropy_0.50.tsv"}
    assert all(r["agreement"] == 1.0 and r["flops_diff"] == 0.0 for r in report["files"].values())
    assert set(report["throughput"]) == {"batch_1", "batch_32"} and min(report["throughput"].values()) > 0
    assert report["machine"]["threads"] >= 1 and report["machine"]["cpu"]
    assert report["model"] == {"id": MODEL_ID, "revision": None, "architecture": "elasticbert",
                               "params": count_parameters(server["model"])}
    gold = load_test_labels(server["data"], "sst-2")
    for path, row in report["files"].items():  # the figures the leaderboard shows for a verified entry
        preds = read_submission(honest).files[[f.path for f in read_submission(honest).files].index(path)].predictions
        assert row["rerun_metrics"] == pytest.approx(task_metric("sst-2", preds, gold))
        assert row["task"] == "sst-2" and row["label"] in {"static k=1", "static k=3", "entropy 0.50"}
        assert row["rerun_params"] > 0


def test_relative_paths_work_although_the_rerun_runs_elsewhere(server, tmp_path, monkeypatch):
    """The sandbox runs in a temporary folder: paths given relative to the caller's folder must still resolve."""
    honest = write(server, tmp_path, outputs(server, sweep_static=(2,), entropy=()), name="relative")
    monkeypatch.chdir(tmp_path)
    report = run_sandboxed(os.path.relpath(honest), os.path.relpath(server["data"]),
                           model_roots=[os.path.relpath(server["models"])],
                           tokenizer_roots=[os.path.relpath(server["tokenizers"])], allow_hub=False, limits=LIMITS)
    assert report["verified"] is True, report


def test_claims_the_rerun_contradicts(server, tmp_path):
    points = outputs(server)
    deep = next(p for p in points if p.label == "static k=3")
    # 1) 3-layer predictions whose modules declare 1 layer (the attack): FLOPs are 3x off on re-run
    shallow = replace(deep, exit_layers=[1] * len(deep.exit_layers))
    report = run(server, write(server, tmp_path, [shallow], name="shallow",
                               settings={"static k=3": {"exit": "static", "layers": 3}}))
    row = report["files"]["sst-2/static_k=3.tsv"]
    assert report["verified"] is False and row["agreement"] == 1.0 and "mean FLOPs" in row["why"]
    # 2) predictions edited after the run: 3 of 48 changed (93.75% agreement)
    edited = list(deep.predictions)
    for i in (0, 5, 9):
        edited[i] = 1 - edited[i]
    report = run(server, write(server, tmp_path, [replace(deep, predictions=edited)], name="edited"))
    row = report["files"]["sst-2/static_k=3.tsv"]
    assert not report["verified"] and row["agreement"] == pytest.approx(45 / 48) and "93.75%" in row["why"]
    # 3) an exit setting the predictions did not come from
    report = run(server, write(server, tmp_path, [deep], name="wrong-setting",
                               settings={"static k=3": {"exit": "static", "layers": 2}}))
    assert not report["verified"]


def test_what_cannot_be_rerun_is_refused(server, tmp_path):
    points = outputs(server, sweep_static=(3,), entropy=())
    with pytest.raises(VerifyError, match="names no 'model'"):
        verify_request(read_submission(write(server, tmp_path, points, name="anon", model=None)))
    with pytest.raises(VerifyError, match="'model' 'id' must be a Hub id"):
        verify_request(read_submission(write(server, tmp_path, points, name="path", model="/etc/passwd")))
    with pytest.raises(VerifyError, match="settings 'exit' must be one of"):
        verify_request(read_submission(write(server, tmp_path, points, name="bad",
                                             settings={"static k=3": {"exit": "magic"}})))
    pickled = server["models"] / "me--pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text((server["models"] / "me--tiny-elasticbert" / "config.json").read_text())
    torch.save(server["model"].state_dict(), pickled / "pytorch_model.bin")
    report = run_sandboxed(write(server, tmp_path, points, name="pickle", model="me/pickled"), server["data"],
                           model_roots=[server["models"]], tokenizer_roots=[server["tokenizers"]], allow_hub=False,
                           limits=LIMITS)
    assert report["verified"] is False and "holds no .safetensors weights" in report["error"]
    small = run_sandboxed(write(server, tmp_path, points, name="small"), server["data"],
                          model_roots=[server["models"]], tokenizer_roots=[server["tokenizers"]], allow_hub=False,
                          limits=SandboxLimits(memory_bytes=200 * 2**20, cpu_seconds=60, wall_seconds=120))
    assert small["verified"] is False and small["error"].startswith("the re-run failed")


def test_queue_end_to_end_with_resume(server, tmp_path):
    store = SQLiteStore(tmp_path / "lb.db")
    gold = server["data"]
    points = outputs(server)
    honest = write(server, tmp_path, points, name="honest")
    deep = next(p for p in points if p.label == "static k=3")
    shallow = replace(deep, exit_layers=[1] * len(deep.exit_layers))
    one_layer = next(p for p in points if p.label == "static k=1")  # params made consistent with the 1-layer rows
    lying = write(server, tmp_path, [shallow], name="lying", settings={"static k=3": {"exit": "static", "layers": 3}},
                  params={"static k=3": point_params(server["model"], one_layer)})
    kept = tmp_path / "kept"
    kw = {"tokenizer_roots": [server["tokenizers"]], "verify_dir": kept}
    a = submit_file(store, honest, gold, submitter="a", **kw)
    b = submit_file(store, lying, gold, submitter="b", **kw)
    assert a.queued and b.queued and "Verification: queued" in a.summary()
    assert {j.state for j in store.verification_jobs()} == {"pending"}
    assert store.get_entry(a.entry.entry_id).flops_tier == "consistent"
    assert not store.enqueue_verification(a.entry.entry_id, "elsewhere", "now")  # idempotent
    # a worker claims the first job and dies: once its lease ran out, the next worker takes it again
    claimed = store.claim_verification("2020-01-01T00:00:00+00:00")
    assert claimed.entry_id in (a.entry.entry_id, b.entry.entry_id) and (claimed.state, claimed.attempts) == (
        "running", 1)
    done = run_worker(store, gold, once=True, model_roots=[server["models"]],
                      tokenizer_roots=[server["tokenizers"]], allow_hub=False, limits=LIMITS)
    assert done.verified == [a.entry.entry_id] and [e for e, _ in done.failed] == [b.entry.entry_id]
    jobs = {j.entry_id: j for j in store.verification_jobs()}
    assert jobs[a.entry.entry_id].state == "verified" and jobs[claimed.entry_id].attempts == 2
    assert jobs[b.entry.entry_id].state == "failed" and "mean FLOPs" in json.dumps(jobs[b.entry.entry_id].report)
    verified = store.get_entry(a.entry.entry_id)
    assert verified.verified and {p.flops_tier for p in verified.points} == {"verified"}
    rerun_rows = {(r["task"], r["label"]): r for r in jobs[a.entry.entry_id].report["files"].values()}
    for p in verified.points:  # the re-run's figures, not the submitter's (here they agree)
        row = rerun_rows[(p.task, p.label)]
        assert p.mflops == row["rerun_mflops"] and p.params == row["rerun_params"]
        assert p.performance == round(row["rerun_metrics"]["score"], 1)
    assert verified.params == count_parameters(server["model"]) and "submitted" in verified.extra
    recorded = verified.extra["verification"]  # where the throughput was measured travels with the entry
    assert set(recorded["throughput"]) == {"batch_1", "batch_32"} and recorded["machine"]["cpu"]
    assert store.get_entry(b.entry.entry_id).flops_tier == "consistent"
    assert run_worker(store, gold, once=True).ran == 0  # nothing left; idempotent
    with sqlite3.connect(store.path) as conn:  # the tier change and the job state were one transaction
        assert conn.execute("SELECT COUNT(*) FROM points WHERE entry_id = ? AND flops_tier != 'verified'",
                            (a.entry.entry_id,)).fetchone()[0] == 0
    from elue_hf.leaderboard.ranking import Filters

    shown = [e.entry_id for e in store.entries() if Filters(sources={"submission"}, verified_only=True).accepts(e)]
    assert shown == [a.entry.entry_id]  # "verified FLOPs only" means re-run entries


def test_a_malformed_rerun_request_is_refused_before_storing(server, tmp_path):
    store = SQLiteStore(tmp_path / "lb.db")
    points = outputs(server, sweep_static=(3,), entropy=())
    bad = write(server, tmp_path, points, name="bad", settings={"static k=3": {"exit": "static", "layers": "3"}})
    with pytest.raises(SubmitError, match="'layers' must be a positive integer"):
        submit_file(store, bad, server["data"], tokenizer_roots=[server["tokenizers"]], verify_dir=tmp_path)
    assert store.count() == 0


def test_cli_verify_exit_codes(server, tmp_path, capsys):
    points = outputs(server, sweep_static=(3,), entropy=())
    honest = write(server, tmp_path, points, name="honest")
    common = ["--data-dir", str(server["data"]), "--model-dir", str(server["models"]), "--tokenizer-dir",
              str(server["tokenizers"]), "--offline", "--memory-gb", "6", "--time-limit", "600"]
    assert main(["verify", str(honest), *common]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"VERIFIED: {MODEL_ID} (elasticbert)") and "batch 32" in out and "machine:" in out
    anon = write(server, tmp_path, points, name="anon", model=None)
    assert main(["verify", str(anon), *common]) == 2
    assert "names no 'model'" in capsys.readouterr().err
    labels = load_test_labels(server["data"], "sst-2")
    assert np.asarray(labels).size == 48
