"""The `evaluate` metric: load by path from any directory, bare ``evaluate.load("elue")`` after install_metric()."""

import os
import subprocess
import sys
import textwrap

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest

import elue_hf.metrics as metrics
from elue_hf.elue.score.reference import load_reference
from elue_hf.elue.submission import PredictionFile, write_submission


@pytest.fixture(scope="module")
def elue_metric():
    import evaluate

    return evaluate.load(metrics.METRIC_PATH)


def test_load_by_path_from_another_directory(tmp_path, monkeypatch):
    import evaluate

    monkeypatch.chdir(tmp_path)
    m = evaluate.load(metrics.METRIC_PATH)
    out = m.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0], flops=[1000.0, 1100.0, 900.0, 1000.0],
                    task="sst-2")
    ref = load_reference()["sst-2"]
    assert out["acc"] == 75.0 and out["mean_flops"] == 1000.0
    assert out["elue_residual"] == pytest.approx(75.0 - ref(1000.0)) and out["provisional"] is False


def test_task_variants_and_errors(elue_metric):
    r = elue_metric.compute(predictions=[0.5, 1.7, 3.2, 4.0], references=[0.4, 2.0, 3.0, 4.5], mean_flops=2358.0,
                            task="stsb")
    assert r["spearmanr"] == 100.0 and r["reference_score"] == 86.9
    r = elue_metric.compute(predictions=[1, 1, 0], references=[1, 0, 0], mean_flops=50000.0, task="imdb")
    assert r["provisional"] is True
    elue_metric.add_batch(predictions=[1, 0], references=[1, 1], flops=[10.0, 10.0])
    assert elue_metric.compute(task="mrpc")["acc"] == 50.0
    with pytest.raises(ValueError, match="label codes 0..1"):
        elue_metric.compute(predictions=[2], references=[1], mean_flops=10.0, task="sst-2")
    with pytest.raises(ValueError, match="needs FLOPs"):
        elue_metric.compute(predictions=[1], references=[1], task="sst-2")
    with pytest.raises(ValueError, match="pass task="):
        elue_metric.compute(predictions=[1], references=[1], mean_flops=1.0)
    with pytest.raises(ValueError, match="NaN"):
        elue_metric.compute(predictions=[1.0], references=[float("nan")], mean_flops=1.0, task="sts-b")


def test_whole_submission(elue_metric, tmp_path):
    gold = np.array([0, 1, 2, 1])
    sub = write_submission(tmp_path / "s", "m", "", 1000, [PredictionFile("snli", gold, flops=[2348.1] * 4)])
    out = elue_metric.compute(submission=str(sub), gold={"snli": gold})
    assert out["tasks"]["snli"]["score"] == pytest.approx(100 - 90.1)
    assert out["elue_score"] is None and out["partial"] is True
    with pytest.raises(ValueError, match="needs gold="):
        elue_metric.compute(submission=str(sub))


def test_one_bibtex_for_the_metric_and_its_card(elue_metric):
    from elue_hf.citations import bibtex

    assert elue_metric.citation == bibtex("elue")  # the metric reads elue_hf.citations
    card = (metrics.METRIC_DIR / "README.md").read_text(encoding="utf-8")
    assert f"```bibtex\n{bibtex('elue')}\n```" in card


def test_direct_instantiation():
    out = metrics.Elue().compute(predictions=[0, 1], references=[0, 1], mean_flops=1174.7, task="snli")
    assert out["elue_residual"] == pytest.approx(100 - 89.3)


@pytest.mark.slow
def test_bare_name_after_import_elue_hf_in_a_fresh_process(tmp_path):
    """``import elue_hf`` writes nothing; importing evaluate seeds its cache, so a bare name loads the metric."""
    cache = tmp_path / "modules"
    work = tmp_path / "elsewhere"
    work.mkdir()
    script = textwrap.dedent(
        f"""
        import os, elue_hf, elue_hf.metrics
        assert not os.path.exists({str(cache)!r}), "import elue_hf wrote to disk"
        import evaluate
        seeded = elue_hf.metrics.ensure_metric_installed()
        assert seeded is not None and (seeded / "elue.py").is_file()
        m = evaluate.load("elue")
        assert elue_hf.metrics.install_metric() == elue_hf.metrics.install_metric() == seeded  # idempotent
        print(m.compute(predictions=[1, 0], references=[1, 1], mean_flops=1060.3, task="sst-2")["elue_residual"])
        """
    )
    env = {**os.environ, "HF_MODULES_CACHE": str(cache), "HF_EVALUATE_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", script], cwd=work, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert float(proc.stdout.strip().splitlines()[-1]) == pytest.approx(50.0 - 84.1)
    assert (cache / "evaluate_modules" / "metrics" / "evaluate-metric--elue").is_dir()
    assert "Using the latest cached version" not in proc.stderr  # evaluate's notice, dropped for this metric only


def test_cached_notice_is_dropped_for_elue_only():
    import logging

    import elue_hf.metrics

    elue_hf.metrics.quiet_cached_metric_notice()
    logger = logging.getLogger("evaluate.loading")
    notice = "Using the latest cached version of the module from /c/metrics/evaluate-metric--{} (last modified ...)"

    def passes(message):
        return logger.filter(logging.LogRecord("evaluate.loading", logging.WARNING, "", 0, message, None, None))

    assert not passes(notice.format("elue")) and passes(notice.format("accuracy")) and passes("anything else")


def test_ensure_metric_installed_without_evaluate(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "m"))
    target = metrics.ensure_metric_installed()
    assert target == metrics.ensure_metric_installed()  # idempotent, nothing rewritten
    assert target.parent.parent.parent == tmp_path / "m" / "evaluate_modules"
    assert (target / "elue.py").read_bytes() == metrics.METRIC_SCRIPT.read_bytes()
    monkeypatch.setenv("ELUE_HF_NO_METRIC_INSTALL", "1")
    assert metrics.ensure_metric_installed() is None
