"""The demo's deploy section (the fine-tuned model exported int8 with its exits, run by ONNX Runtime next to the
PyTorch exit) on a tiny random ElasticBERT, and its table column."""

import json

import pytest

from elue_hf.demo import deploy
from elue_hf.demo.context import OperatingPoint
from elue_hf.demo.runner import format_table
from tests.demo.test_demo_batches import _context


def test_time_runtimes_alternates_and_keeps_each_runtimes_fastest_pass():
    calls, now = [], [0.0]
    cost = {"a": iter([3.0, 1.0]), "b": iter([1.0, 2.0])}  # seconds each pass takes on a fake clock

    def runtime(name):
        def run():
            calls.append(name)
            now[0] += next(cost[name])
            return name.upper()

        return run

    best = deploy.time_runtimes({"a": runtime("a"), "b": runtime("b")}, passes=2, clock=lambda: now[0])
    assert calls == ["a", "b", "a", "b"]  # alternating: both runtimes see the same load
    assert best == {"a": (1.0, "A"), "b": (1.0, "B")}  # the faster pass of each, with its outputs


def test_format_table_adds_an_inst_per_s_column_only_when_a_point_was_timed():
    points = [OperatingPoint("ElasticBERT entropy", "H<0.4", 79.0, mean_flops=246.4, mean_exit_layer=2.5),
              OperatingPoint("ONNX Runtime int8 exit", "H<0.4", 78.9, mean_flops=240.0, mean_exit_layer=2.4,
                             extra={"inst_per_s": 512.34})]
    lines = format_table(points).splitlines()
    assert lines[0].split()[-1] == "inst/s" and lines[-1].split()[-1] == "512.3" and lines[1].split()[-1] == "-"
    assert len({len(line) for line in lines}) == 1  # columns aligned
    assert "inst/s" not in format_table(points[:1])


@pytest.mark.slow
def test_deploy_section_exports_int8_and_ends_the_table_with_its_exit_line(tmp_path, capsys):
    ctx = _context(rows=40)
    ctx.out_dir = tmp_path
    pytorch_point = OperatingPoint("ElasticBERT entropy", f"H<{deploy.ENTROPY_THRESHOLD}", 50.0)
    ctx.points.append(pytorch_point)
    deploy.run(ctx)
    bundle = json.loads((tmp_path / "onnx_int8" / "elue_deploy.json").read_text())
    assert bundle["quantize"] == "int8" and bundle["exit_layers"] == [1, 2, 3]
    last = ctx.points[-1]
    assert last.method == "ONNX Runtime int8 exit" and last.label == f"H<{deploy.ENTROPY_THRESHOLD}"
    assert 0 <= last.accuracy <= 100 and 1 <= last.mean_exit_layer <= 3 and last.mean_flops > 0
    assert last.extra["inst_per_s"] > 0 and pytorch_point.extra["inst_per_s"] > 0  # both runtimes timed
    assert 0 <= last.extra["agreement_with_fp32"] <= 100
    out = capsys.readouterr().out
    assert "PyTorch fp32" in out and "ONNX Runtime int8" in out
    assert format_table(ctx.points).splitlines()[-1].startswith("ONNX Runtime int8 exit")
