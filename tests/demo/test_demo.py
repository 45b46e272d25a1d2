"""The main job (`make demo` = `elue-hf demo`) end to end on the real embedded assets, in quick mode."""

import json

import pytest

from elue_hf.cli import main

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module


@pytest.mark.slow
def test_demo_quick_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--quick", "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ElasticBERT static" in out and "ElasticBERT entropy" in out and "ElasticBERT patience" in out
    assert "6 exits (mean pooling)" in out and 'ElasticBertConfig(pooling="mean")' in out  # default, with its caveat
    assert "(mean pooling)" in out.split("=== hashee ===")[1]  # HashEE's model pools like the main one
    points = json.loads((tmp_path / "operating_points.json").read_text())
    methods = {p["method"] for p in points}
    assert {"ElasticBERT static", "ElasticBERT entropy", "ElasticBERT patience"} <= methods
    assert [p["mean_exit_layer"] for p in points if p["method"] == "ElasticBERT static"] == [1, 2, 3, 4, 5, 6]
    assert all(0 <= p["accuracy"] <= 100 for p in points)
    final_table = out.split("All operating points")[1].split("Pareto plot:")[0].strip().splitlines()
    assert final_table[0].split()[-1] == "inst/s"  # measured throughput of the timed points
    assert final_table[-1].startswith("ONNX Runtime int8 exit")  # the demo ends with the exported int8 exit model
    assert "ONNX Runtime int8 exit" in methods
    timing = out.split("Wall time per section (this run)")[1].splitlines()
    sections = [line.split()[0] for line in timing[2:] if line.strip()]
    assert sections[:2] == ["setup", "multi-exit"] and "total" in sections  # one row per section, then the total
    assert f"fine-tuned model saved to {tmp_path / 'model'}" in out
    png = (tmp_path / "pareto.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_demo_saves_a_model_that_loads_with_the_auto_classes(tmp_path, capsys):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import elue_hf  # noqa: F401  (registers ElasticBERT with the Auto classes)

    assert main(["demo", "--quick", "--sections", "none", "--out-dir", str(tmp_path)]) == 0
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert type(model).__name__ == "ElasticBertForSequenceClassification"
    assert model.config.num_output_layers == 6 and model.config.pooling == "mean"
    with torch.no_grad():
        logits = model(**tokenizer(["a fine film", "dull"], padding=True, return_tensors="pt")).all_logits
    assert logits.shape == (2, 6, 2)


def test_demo_rejects_unknown_sections(tmp_path, capsys):
    assert main(["demo", "--quick", "--sections", "hashee,bogus", "--out-dir", str(tmp_path)]) == 2
    assert "unknown demo sections ['bogus']" in capsys.readouterr().err


def test_pareto_front_and_plot_use_the_flops_axis(tmp_path):
    from elue_hf.demo.context import OperatingPoint
    from elue_hf.demo.runner import pareto_front, save_pareto_plot

    pts = [
        OperatingPoint("A", "1", 70.0, mean_flops=100.0),
        OperatingPoint("A", "2", 69.0, mean_flops=150.0),  # dominated
        OperatingPoint("B", "1", 80.0, mean_flops=200.0),
        OperatingPoint("C", "few-shot", 90.0),  # no FLOPs: not on the inference-cost axis
    ]
    assert [(p.method, p.label) for p in pareto_front(pts, "mean_flops")] == [("A", "1"), ("B", "1")]
    assert save_pareto_plot(pts, tmp_path / "p.png", "t").read_bytes().startswith(b"\x89PNG")


def test_operating_point_table_keeps_its_columns_aligned_with_long_labels():
    from elue_hf.demo.context import OperatingPoint
    from elue_hf.demo.runner import format_table

    lines = format_table([OperatingPoint("ElasticBERT static", "k=1", 74.5, mean_flops=95.5, mean_exit_layer=1.0),
                          OperatingPoint("HashEE", "freq B=L=6 floor 3 +50@1", 76.88, mean_flops=272.5)]).splitlines()
    assert len({len(line) for line in lines}) == 1  # every row as wide as the header: the columns line up
    assert lines[2].split()[-4:] == ["76.88", "-", "272.5", "-"]
