"""Everything built on the multi-exit interface, for every family (tiny random configs): ELUE FLOPs from the family's
rule, ``elue-hf evaluate`` one-pass sweeps, the exit-aware pipeline and ``elue-hf train``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from transformers import AutoModelForSequenceClassification, pipeline

import elue_hf  # noqa: F401
from elue_hf.cli import main
from elue_hf.elue.flops import model_flops
from elue_hf.elue.flops.architectures import encoder_shape, flops_shape
from elue_hf.elue.flops.architectures.shape import encoder_shape_macs
from elue_hf.elue.flops.module_spec import encoder_modules, modules_macs, spec_from_shape
from elue_hf.multiexit import convert_to_multi_exit
from tests.helpers.elue_fixtures import write_synthetic_task
from tests.helpers.tiny_families import FAMILIES, tiny_classifier
from tests.helpers.tiny_models import synthetic_tokenizer


@pytest.fixture(scope="module", params=FAMILIES)
def saved(request, tmp_path_factory):
    """(family source folder, converted multi-exit folder), both with the synthetic tokenizer (2 labels)."""
    root = tmp_path_factory.mktemp(request.param)
    source = tiny_classifier(request.param, num_labels=2)
    source.save_pretrained(root / "source")
    synthetic_tokenizer().save_pretrained(root / "source")
    convert_to_multi_exit(str(root / "source"), save_directory=root / "multi")
    return root / "source", root / "multi"


def test_flops_follow_the_family_rule(saved):
    source, multi = saved
    model = AutoModelForSequenceClassification.from_pretrained(multi)
    family = AutoModelForSequenceClassification.from_pretrained(source)
    shape = flops_shape(model)
    assert shape.exit_layers == (1, 2, 3) and shape.family.startswith("multiexit-")
    lengths = np.array([5, 9, 17])
    # the top exit alone costs what the family's own classifier costs
    assert np.allclose(model_flops(model.config, lengths, 3, "static"), model_flops(family.config, lengths))
    # dynamic: every exit met on the way; the modules column adds up to the same number
    spec = spec_from_shape(shape)
    for k in (1, 2, 3):
        macs = [modules_macs(encoder_modules(shape, int(n), k, "dynamic"), spec) for n in lengths]
        assert macs == list(encoder_shape_macs(lengths, shape, k, k))
    assert model_flops(model.config, 9, 2, "dynamic") > model_flops(model.config, 9, 2, "static")
    assert encoder_shape(family.config).layers == shape.layers


def test_pipeline_exits_early_and_reports_flops(saved):
    _, multi = saved
    clf = pipeline("elasticbert-text-classification", model=str(multi))
    result = clf("the dog runs in the park", exit_criterion="entropy", entropy_threshold=10.0)[0]
    assert result["exit_layer"] == 1
    length = len(clf.tokenizer("the dog runs in the park")["input_ids"])
    assert result["mflops"] == pytest.approx(model_flops(clf.model.config, length, 1, "dynamic"))
    full = clf("the dog runs in the park")[0]
    assert full["exit_layer"] == 3 and full["mflops"] > result["mflops"]


def test_evaluate_sweeps_in_one_pass(saved, tmp_path, capsys):
    _, multi = saved
    data = write_synthetic_task(tmp_path / "data", "sst-2", sizes={"test": 10})
    out = tmp_path / "out"
    assert main(["evaluate", "--model", str(multi), "--task", "sst-2", "--data-dir", str(data.parent),
                 "--output", str(out), "--no-progress", "--static", "--entropy", "0.3", "--patience", "1"]) == 0
    assert "5 operating points from one pass" in capsys.readouterr().out
    manifest = json.loads((out / "submission" / "submission.json").read_text())
    files = {f["label"]: f for f in manifest["files"]}
    assert list(files) == ["static k=1", "static k=2", "static k=3", "entropy 0.30", "patience 1"]
    assert all(f["flops_source"] == "modules" for f in files.values())
    assert files["static k=1"]["params"] < files["static k=3"]["params"] <= manifest["params"]


@pytest.mark.slow
def test_train_cli_converts_and_trains_every_exit(saved, tmp_path):
    source, _ = saved
    write_synthetic_task(tmp_path / "elue", "sst-2")
    out = tmp_path / "trained"
    assert main(["train", "--model", str(source), "--data-dir", str(tmp_path / "elue"), "--task", "sst-2",
                 "--output-dir", str(out), "--max-steps", "2", "--batch-size", "4", "--use-cpu"]) == 0
    metrics = json.loads((out / "eval_results.json").read_text())
    assert {f"eval_exit_{k}_acc" for k in (1, 2, 3)} <= set(metrics)
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.model_type == "multiexit" and model.config.multi_exit_training == "gradient_equilibrium"
    assert model.config.backbone_type == AutoModelForSequenceClassification.from_pretrained(source).config.model_type
    assert model.config.id2label == {0: "negative", 1: "positive"} and len(model.classifiers) == 3
