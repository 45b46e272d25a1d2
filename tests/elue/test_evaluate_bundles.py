"""``elue-hf evaluate`` and ``elue-hf verify`` on exported ONNX bundles: the ONNX Runtime exit model at the source
model's operating points, with the source model's ELUE FLOPs and parameters (tiny random models, synthetic data)."""

from __future__ import annotations

import json

import pytest
import torch

from elue_hf.cli import main
from tests.helpers.elue_fixtures import synthetic_vocab, write_synthetic_elue
from tests.helpers.tiny_models import synthetic_tokenizer

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytestmark = pytest.mark.slow  # an export takes seconds

SOURCE_ID, BUNDLE_ID = "me/tiny-src", "me/tiny-bundle"


def _elasticbert(num_labels: int, seed: int = 0):
    from elue_hf import ElasticBertConfig, ElasticBertForSequenceClassification

    torch.manual_seed(seed)
    config = ElasticBertConfig(vocab_size=len(synthetic_vocab()), hidden_size=32, num_hidden_layers=3,
                               num_attention_heads=4, intermediate_size=64, max_position_embeddings=128,
                               max_output_layers=3, num_output_layers=3, num_labels=num_labels)
    model = ElasticBertForSequenceClassification(config).eval()
    with torch.no_grad():  # spread the exits' confidences so that thresholds separate rows
        for head in model.classifiers:
            head.weight.normal_(0, 2.0)
    return model


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Test sets, and per task a source model folder and its exported bundle, by Hub id (owner--name)."""
    from elue_hf.deploy import export_elasticbert

    root = tmp_path_factory.mktemp("bundles")
    data = write_synthetic_elue(root / "ELUE", ["sst-2", "sts-b"], sizes={"test": 40})
    models = root / "models"
    for task, labels in (("sst-2", 2), ("sts-b", 1)):
        source = models / f"{SOURCE_ID}-{task}".replace("/", "--")
        _elasticbert(labels).save_pretrained(source)
        synthetic_tokenizer().save_pretrained(source)
        export_elasticbert(source, models / f"{BUNDLE_ID}-{task}".replace("/", "--"))
    return {"root": root, "data": data, "models": models}


def _evaluate(server, model_id: str, out_name: str, *flags, task="sst-2"):
    out = server["root"] / out_name
    folder = server["models"] / model_id.replace("/", "--")
    code = main(["evaluate", "--model", str(folder), "--model-id", model_id, "--task", task, "--data-dir",
                 str(server["data"]), "--output", str(out), "--no-progress", *flags])
    assert code == 0
    return json.loads((out / "submission" / "submission.json").read_text()), out


def _columns(out, manifest) -> dict:
    """label -> (predictions, modules) of each written file."""
    from elue_hf.elue.submission import read_submission

    sub = read_submission(out / "submission.zip")
    return {f.label: (list(f.predictions), list(f.modules)) for f in sub.files}


@pytest.mark.parametrize("task,flags", [("sst-2", ["--static", "--entropy", "0.2,0.6", "--patience", "0,1"]),
                                        ("sts-b", ["--static", "1,3", "--patience", "1"])])
def test_a_bundle_evaluates_like_its_source_model(server, capsys, task, flags):
    """Same operating points, same predictions and exit layers (fp32 ONNX vs PyTorch), same modules (ELUE FLOPs)
    and parameters as the PyTorch evaluation of the folder the bundle was exported from."""
    source, source_out = _evaluate(server, f"{SOURCE_ID}-{task}", f"src-{task}", *flags, task=task)
    bundle, bundle_out = _evaluate(server, f"{BUNDLE_ID}-{task}", f"bundle-{task}", *flags, task=task)
    text = capsys.readouterr().out
    assert "ONNX bundle" in text and "ELUE score" in text
    assert [f["label"] for f in bundle["files"]] == [f["label"] for f in source["files"]]
    assert [f["params"] for f in bundle["files"]] == [f["params"] for f in source["files"]]
    assert bundle["params"] == source["params"] and bundle["module_spec"] == source["module_spec"]
    ours, theirs = _columns(bundle_out, bundle), _columns(source_out, source)
    for label, (predictions, modules) in ours.items():
        assert modules == theirs[label][1], label  # same exit layer per row -> same modules -> same FLOPs
        if task == "sts-b":
            assert predictions == pytest.approx(theirs[label][0], abs=1e-4), label
        else:
            assert predictions == theirs[label][0], label
    assert [f["settings"] for f in bundle["files"]] == [f["settings"] for f in source["files"]]


def test_a_bundle_submission_is_verified_by_rerunning_the_bundle(server, capsys):
    from elue_hf.verify.rerun import rerun

    _, out = _evaluate(server, f"{BUNDLE_ID}-sst-2", "bundle-verify", "--static", "1,3", "--entropy", "0.4")
    capsys.readouterr()  # the bundle folder holds its tokenizer: it serves as the tokenizer folder too
    report = rerun(out / "submission.zip", server["data"], [server["models"]], [server["models"]], allow_hub=False)
    assert report["verified"] is True, report
    assert report["model"]["architecture"] == "elasticbert (ONNX bundle)"
    assert all(r["agreement"] == 1.0 and r["flops_diff"] == 0.0 for r in report["files"].values())
    assert set(report["throughput"]) == {"batch_1", "batch_32"} and min(report["throughput"].values()) > 0
    code = main(["verify", str(out / "submission.zip"), "--data-dir", str(server["data"]), "--model-dir",
                 str(server["models"]), "--tokenizer-dir", str(server["models"]), "--offline"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "VERIFIED" in printed and "batch 1" in printed and "batch 32" in printed and "machine:" in printed


def test_a_bundle_without_config_is_refused_in_one_sentence(server, tmp_path):
    import shutil

    from elue_hf.methods.bundles import load_bundle

    broken = tmp_path / "broken"
    shutil.copytree(server["models"] / f"{BUNDLE_ID}-sst-2".replace("/", "--"), broken)
    (broken / "config.json").unlink()
    with pytest.raises(ValueError, match="has no config.json .*re-export it"):
        load_bundle(broken)


def test_quantize_on_a_bundle_is_refused_in_one_sentence(server, capsys):
    folder = server["models"] / f"{BUNDLE_ID}-sst-2".replace("/", "--")
    code = main(["evaluate", "--model", str(folder), "--task", "sst-2", "--data-dir", str(server["data"]), "--output",
                 str(server["root"] / "bundle-int8"), "--quantize", "int8"])
    err = capsys.readouterr().err
    assert code == 2 and "elue-hf export MODEL DIR --quantize int8" in err and "Traceback" not in err
