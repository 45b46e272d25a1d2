"""The demo's ELUE section on a tiny context (synthetic words, a tiny random ElasticBERT)."""

import numpy as np
import pytest

from tests.elue.test_elue_commands import _elasticbert, _tokenizer

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module


def test_demo_section_on_a_tiny_context(tmp_path, capsys):
    import datasets

    from elue_hf.demo import elue as demo
    from elue_hf.demo.context import DemoContext, OperatingPoint
    from elue_hf.elue.flops import elasticbert_flops

    words = ["good movie", "bad plot", "great actor", "awful film", "fun story", "dull man"]
    test = datasets.Dataset.from_dict({"sentence": words, "label": [1, 0, 1, 0, 1, 0]})
    ctx = DemoContext(out_dir=tmp_path, tokenizer=_tokenizer(), data={"train": test, "test": test},
                      model=_elasticbert(), base_model_path=tmp_path, max_length=16)
    # 1. no upstream points: the section computes static points itself
    demo.run(ctx)
    text = capsys.readouterr().out
    assert "SST-2-like" in text and "ELUE score" in text
    assert all(p.mean_flops is not None for p in ctx.points) and len(ctx.points) == 3
    assert (tmp_path / "elue" / "submission_sst2_like.zip").exists()
    assert (tmp_path / "elue" / "pareto_sst2_like.png").exists()
    # 2. an upstream dynamic point gets its mean FLOPs from its own exit layers and lengths
    lengths, layers = [3, 4, 4, 4, 4, 4], [1, 3, 2, 1, 3, 3]
    ctx2 = DemoContext(out_dir=tmp_path / "two", tokenizer=_tokenizer(), data={"test": test}, model=_elasticbert(),
                       base_model_path=tmp_path)
    ctx2.points.append(OperatingPoint("ElasticBERT entropy", "H<0.3", 50.0, extra={
        "predictions": [1, 0, 0, 0, 1, 1], "exit_layers": layers, "lengths": lengths, "mode": "dynamic"}))
    ctx2.points.append(OperatingPoint("LPT", "no extras", 70.0, mean_flops=12.0))
    demo.run(ctx2)
    expected = np.mean(elasticbert_flops(ctx2.model.config, np.array(lengths), np.array(layers), "dynamic"))
    assert ctx2.points[0].mean_flops == pytest.approx(expected)
    assert ctx2.points[1].mean_flops == 12.0
    tsv = (tmp_path / "two" / "elue" / "flops_per_instance.tsv").read_text().splitlines()
    assert tsv[0] == "index\tElasticBERT entropy H<0.3" and len(tsv) == 7
