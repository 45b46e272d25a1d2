"""Verification by re-running HashEE classifiers and LPT adapters, end to end and offline: tiny random models saved
to a server folder (safetensors), synthetic ELUE test sets, submissions written with the package's own helpers, and
submissions whose claims the re-run contradicts."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from peft import get_peft_model
from transformers import AutoModelForSequenceClassification, DistilBertConfig, DistilBertForSequenceClassification

from elue_hf import ElasticBertForSequenceClassification
from elue_hf.cli import main
from elue_hf.elue.flops.params import count_parameters
from elue_hf.elue.inference import ExitSetting, run_operating_points
from elue_hf.elue.submission import read_submission, write_submission, zip_submission
from elue_hf.elue.submission.checks import check_params, check_structure, load_tokenizer
from elue_hf.elue.tasks import TASKS, get_task
from elue_hf.hashee import apply_hashee, hashee_config_for, random_cons_table
from elue_hf.lpt import LPTConfig
from elue_hf.methods.hashee_points import hashee_prediction_file, hashee_spec, run_hashee
from elue_hf.methods.lpt_points import lpt_params, lpt_prediction_file
from elue_hf.verify import VerifyError, verify_request
from elue_hf.verify.rerun import _dataset, rerun
from elue_hf.verify.sandbox import SandboxLimits, run_sandboxed
from tests.helpers.elasticbert import tiny_config
from tests.helpers.elue_fixtures import synthetic_vocab, write_synthetic_elue
from tests.helpers.leaderboard import TOKENIZER_ID, tokenizer_root
from tests.helpers.tiny_models import save_tiny_bert, synthetic_tokenizer

LIMITS = SandboxLimits(memory_bytes=6 * 2**30, cpu_seconds=600, wall_seconds=600)
HASHEE_FILE, LPT_FILE = "sst-2/hashee.tsv", "sst-2/LPT_static_k=3.tsv"


def _hashee_model(folder: Path):
    torch.manual_seed(1)
    model = ElasticBertForSequenceClassification(tiny_config(vocab_size=len(synthetic_vocab()), num_labels=2,
                                                             num_output_layers=1))
    config = hashee_config_for(model, synthetic_tokenizer(), hash_function="random-cons", seed=3)
    apply_hashee(model, random_cons_table(config))
    model.save_pretrained(folder)
    synthetic_tokenizer().save_pretrained(folder)  # published with its tokenizer (save_hashee_model does so)
    return model.eval()


def _lpt_model(models: Path):
    save_tiny_bert(models / "me--base", with_tokenizer=False)
    base = AutoModelForSequenceClassification.from_pretrained(models / "me--base")
    torch.manual_seed(2)
    model = get_peft_model(base, LPTConfig(task_type="SEQ_CLS", num_prompt_tokens=3, bottleneck_size=8,
                                           prompt_layer=1, generator="appg"))
    model.peft_config["default"].base_model_name_or_path = "me/base"  # published next to its base model
    model.save_pretrained(models / "me--lpt")
    synthetic_tokenizer().save_pretrained(models / "me--lpt")  # as save_lpt_adapter does
    return model.eval()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """What the server holds: the sst-2 test set, a tokenizer, and the models by Hub id."""
    root = tmp_path_factory.mktemp("server")
    models = root / "models"
    server = {"data": write_synthetic_elue(root / "ELUE", tasks=("sst-2",), sizes={"test": 48}),
              "tokenizers": tokenizer_root(root / "tokenizers"), "models": models,
              "hashee": _hashee_model(models / "me--hashee"), "lpt": _lpt_model(models)}
    server["tokenizer"] = load_tokenizer(TOKENIZER_ID, [server["tokenizers"]], allow_hub=False)
    server["dataset"] = _dataset(server["data"], get_task("sst-2"))
    return server


def _write(folder: Path, name: str, model_id: str, files: dict, params: int, spec=None) -> Path:
    sub = write_submission(folder / name, name, "verification test", params, files, module_spec=spec,
                           tokenizer=TOKENIZER_ID, model={"id": model_id})
    return zip_submission(sub, folder / f"{name}.zip")


def hashee_submission(server, folder, name="hashee", model_id="me/hashee", edit=None, model=None):
    """As ``elue-hf evaluate`` writes it for a HashEE folder; ``edit`` changes the outputs before writing."""
    model = model or server["hashee"]
    out = run_hashee(model, server["tokenizer"], server["dataset"], TASKS["sst-2"], 128)
    out = edit(out) if edit else out
    files = {"hashee": hashee_prediction_file(out, TASKS["sst-2"], model.config, max_seq_length=128)}
    return _write(folder, name, model_id, files, count_parameters(model), hashee_spec(model))


def lpt_point(server):
    model = server["lpt"]
    return run_operating_points(model, server["tokenizer"], server["dataset"], TASKS["sst-2"], max_length=128,
                                settings=[ExitSetting("static", 3)])[0]


def lpt_submission(server, folder, name="lpt", model_id="me/lpt", point=None, flops_scale=1.0):
    model = server["lpt"]
    pf = lpt_prediction_file(model, point or lpt_point(server), TASKS["sst-2"], 128)
    pf.flops = [v * flops_scale for v in pf.flops]
    return _write(folder, name, model_id, {pf.label: pf}, lpt_params(model))


def run(server, path):
    return rerun(path, server["data"], [server["models"]], [server["tokenizers"], server["models"]], allow_hub=False)


def sandboxed(server, path):
    return run_sandboxed(path, server["data"], model_roots=[server["models"]], tokenizer_roots=[server["tokenizers"]],
                         allow_hub=False, limits=LIMITS)


def flipped(predictions, rows=(0, 5, 9)):
    out = list(predictions)
    for i in rows:
        out[i] = 1 - out[i]
    return out


# ------------------------------------------------------------------------------------------------------- HashEE


def test_an_honest_hashee_submission_is_verified_in_the_sandbox(server, tmp_path):
    path = hashee_submission(server, tmp_path)
    entry = read_submission(path).manifest["files"][0]
    assert entry["settings"] == {"exit": "hashee"} and entry["path"] == HASHEE_FILE
    assert verify_request(read_submission(path)).settings == {HASHEE_FILE: {"exit": "hashee"}}
    report = sandboxed(server, path)
    assert report["verified"] is True, report
    row = report["files"][HASHEE_FILE]
    assert row["agreement"] == 1.0 and row["flops_diff"] == 0.0
    assert report["model"]["architecture"] == "hashee_elasticbert"
    counts = run_hashee(server["hashee"], server["tokenizer"], server["dataset"], TASKS["sst-2"], 128).counts
    lengths = server["dataset"].num_rows
    assert counts.shape == (lengths, 4) and (counts[:, -1] < counts[:, 0]).any()  # tokens really left early


def test_a_hashee_bert_is_verified_too(server, tmp_path):
    plain = AutoModelForSequenceClassification.from_pretrained(save_tiny_bert(tmp_path / "bert"))
    apply_hashee(plain, random_cons_table(hashee_config_for(plain, synthetic_tokenizer(), hash_function="random-cons",
                                                            seed=4)))
    plain.save_pretrained(server["models"] / "me--hashee-bert")
    report = run(server, hashee_submission(server, tmp_path, "bert", model_id="me/hashee-bert", model=plain.eval()))
    assert report["verified"] is True and report["model"]["architecture"] == "hashee_bert", report


def test_hashee_claims_the_rerun_contradicts(server, tmp_path):
    def fewer_tokens(out):  # FLOPs understated: the modules column says half the tokens went on at every layer
        return replace(out, counts=np.maximum(out.counts // 2, 1))

    report = run(server, hashee_submission(server, tmp_path, "cheap", edit=fewer_tokens))
    row = report["files"][HASHEE_FILE]
    assert report["verified"] is False and row["agreement"] == 1.0 and "mean FLOPs" in row["why"]
    assert row["claimed_mflops"] < row["rerun_mflops"]
    report = run(server, hashee_submission(server, tmp_path, "edited",
                                           edit=lambda out: replace(out, predictions=flipped(out.predictions))))
    row = report["files"][HASHEE_FILE]
    assert not report["verified"] and row["agreement"] == pytest.approx(45 / 48) and "93.75%" in row["why"]


def test_hashee_settings_must_fit_the_model(server, tmp_path):
    path = hashee_submission(server, tmp_path, "plain-named", model_id="me/base")  # a model with no exit table
    with pytest.raises(VerifyError, match="need a HashEE model"):
        run(server, path)


# ---------------------------------------------------------------------------------------------------------- LPT


def test_an_honest_lpt_submission_is_verified_through_the_cli(server, tmp_path, capsys):
    path = lpt_submission(server, tmp_path)
    sub = read_submission(path)
    assert sub.files[0].path == LPT_FILE and sub.files[0].flops_source == "self-reported"
    assert sub.manifest["files"][0]["settings"] == {"exit": "static", "layers": 3}
    assert sub.files[0].params == count_parameters(server["lpt"]) - 66  # the base classifier PEFT keeps is not used
    common = ["--data-dir", str(server["data"]), "--model-dir", str(server["models"]), "--tokenizer-dir",
              str(server["tokenizers"]), "--offline", "--memory-gb", "6", "--time-limit", "600"]
    assert main(["verify", str(path), *common]) == 0
    out = capsys.readouterr().out
    assert out.startswith("VERIFIED: me/lpt (bert+lpt)") and "agree 100.00%" in out


def test_lpt_claims_the_rerun_contradicts(server, tmp_path):
    report = run(server, lpt_submission(server, tmp_path, "cheap", flops_scale=0.9))
    row = report["files"][LPT_FILE]
    assert report["verified"] is False and row["agreement"] == 1.0 and "mean FLOPs" in row["why"]
    assert row["flops_diff"] == pytest.approx(0.1, rel=1e-9)  # |0.9 x - x| / x
    point = lpt_point(server)
    edited = replace(point, predictions=flipped(point.predictions))
    report = run(server, lpt_submission(server, tmp_path, "edited", point=edited))
    row = report["files"][LPT_FILE]
    assert not report["verified"] and row["agreement"] == pytest.approx(45 / 48)


# ------------------------------------------------------------------------------------------------------ refusals


def test_pickled_weights_are_refused(server, tmp_path):
    models = server["models"]
    hashee_bin = models / "me--hashee-bin"
    hashee_bin.mkdir()
    shutil.copy(models / "me--hashee" / "config.json", hashee_bin)
    torch.save(server["hashee"].state_dict(), hashee_bin / "pytorch_model.bin")
    report = sandboxed(server, hashee_submission(server, tmp_path, "hashee-bin", model_id="me/hashee-bin"))
    assert report["verified"] is False and "holds no .safetensors weights" in report["error"]
    lpt_bin = models / "me--lpt-bin"
    shutil.copytree(models / "me--lpt", lpt_bin)
    torch.save({"pickled": torch.zeros(1)}, lpt_bin / "adapter_model.bin")
    (lpt_bin / "adapter_model.safetensors").unlink()
    with pytest.raises(VerifyError, match="holds no adapter_model.safetensors"):
        run(server, lpt_submission(server, tmp_path, "lpt-bin", model_id="me/lpt-bin"))


def test_an_adapter_on_an_unknown_architecture_is_refused(server, tmp_path):
    models = server["models"]
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=len(synthetic_vocab()), dim=32, n_layers=2, n_heads=4, hidden_dim=64)
    DistilBertForSequenceClassification(config).save_pretrained(models / "me--distil")
    odd = models / "me--lpt-on-distil"
    shutil.copytree(models / "me--lpt", odd)
    saved = json.loads((odd / "adapter_config.json").read_text())
    (odd / "adapter_config.json").write_text(json.dumps({**saved, "base_model_name_or_path": "me/distil"}))
    with pytest.raises(VerifyError, match="the adapter's base model me/distil: architecture 'distilbert' cannot be "
                                          "re-run; known: elasticbert, multiexit, bert, roberta"):
        run(server, lpt_submission(server, tmp_path, "distil", model_id="me/lpt-on-distil"))
    (odd / "adapter_config.json").write_text(json.dumps({**saved, "base_model_name_or_path": "me/lpt"}))
    with pytest.raises(VerifyError, match="base model me/lpt: me--lpt holds no config.json"):  # an adapter as base
        run(server, lpt_submission(server, tmp_path, "adapter-base", model_id="me/lpt-on-distil"))
    (odd / "adapter_config.json").write_text(json.dumps({**saved, "base_model_name_or_path": "/etc/models/x"}))
    with pytest.raises(VerifyError, match="the adapter's base model 'id' must be a Hub id"):
        run(server, lpt_submission(server, tmp_path, "path", model_id="me/lpt-on-distil"))


# ------------------------------------------------------------------------------------ evaluate -> verify, end to end


@pytest.mark.parametrize("model_id, architecture", [("me/hashee", "hashee_elasticbert"), ("me/lpt", "bert+lpt")])
def test_evaluate_writes_submissions_that_verify(server, tmp_path, capsys, model_id, architecture):
    folder = server["models"] / model_id.replace("/", "--")
    base = ["--base-model", str(server["models"] / "me--base")] if "lpt" in model_id else []
    assert main(["evaluate", "--model", str(folder), "--model-id", model_id, *base,
                 "--task", "sst-2", "--data-dir", str(server["data"]), "--output", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    zipped = tmp_path / "out" / "submission.zip"
    manifest = read_submission(zipped).manifest
    assert manifest["model"] == {"id": model_id}
    assert [f["settings"] for f in manifest["files"]] == ([{"exit": "hashee"}] if "hashee" in model_id else
                                                        [{"exit": "static", "layers": 3}])
    for f in read_submission(zipped).files:  # the submit path's cross-checks pass (HashEE: params and structure)
        check_params(f)
        check_structure(f)
    capsys.readouterr()
    report = run(server, zipped)
    assert report["verified"] is True, report
    assert report["model"]["architecture"] == architecture


def test_the_leaderboard_queue_verifies_hashee_and_lpt_entries(server, tmp_path):
    from elue_hf.leaderboard.store import SQLiteStore
    from elue_hf.leaderboard.submit import submit_file
    from elue_hf.verify.worker import run_worker

    store = SQLiteStore(tmp_path / "lb.db")
    kw = {"tokenizer_roots": [server["tokenizers"]], "verify_dir": tmp_path / "kept"}
    hashee = submit_file(store, hashee_submission(server, tmp_path), server["data"], submitter="a", **kw)
    lpt = submit_file(store, lpt_submission(server, tmp_path), server["data"], submitter="b", **kw)
    assert hashee.queued and lpt.queued
    assert store.get_entry(hashee.entry.entry_id).flops_tier == "consistent"  # modules with (m,n,d) layers
    assert store.get_entry(lpt.entry.entry_id).flops_tier == "self-reported"  # the flops column
    done = run_worker(store, server["data"], once=True, model_roots=[server["models"]],
                      tokenizer_roots=[server["tokenizers"]], allow_hub=False, limits=LIMITS)
    assert (len(done.verified), done.failed, done.discarded) == (2, [], [])
    for outcome in (hashee, lpt):
        entry = store.get_entry(outcome.entry.entry_id)
        assert entry.verified and {p.flops_tier for p in entry.points} == {"verified"}
