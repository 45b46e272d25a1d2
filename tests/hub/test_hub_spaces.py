"""The two Space folders: generated cards in sync, thin apps, the metric loadable by `evaluate` from the Space copy."""

from __future__ import annotations

import argparse
import ast
import socket
from pathlib import Path

import gradio
import pytest
from huggingface_hub import SpaceCard

from elue_hf.commands.hub import register
from elue_hf.hub.cards import SPACE_SDK_VERSION, leaderboard_space_card, metric_space_card
from elue_hf.spaces.metric.app import build_metric_app, compute_from_text, parse_numbers

SPACES = Path(__file__).resolve().parents[2] / "spaces"


@pytest.mark.parametrize("folder, generator", [("leaderboard", leaderboard_space_card),
                                               ("elue-metric", metric_space_card)])
def test_space_cards_are_generated_and_in_sync(folder, generator):
    readme = SPACES / folder / "README.md"
    assert readme.read_text(encoding="utf-8") == str(generator()), (
        f"regenerate with: elue-hf space-card {'metric' if folder == 'elue-metric' else folder} "
        f"--output spaces/{folder} --overwrite")
    data = SpaceCard.load(readme).data
    assert data.sdk == "gradio" and data.sdk_version == SPACE_SDK_VERSION == gradio.__version__
    assert data.app_file == "app.py" and data.python_version == "3.11"
    assert len(data.short_description) <= 60  # the Hub's limit
    requirements = (SPACES / folder / "requirements.txt").read_text()
    assert "elue_hf-" in requirements and ".whl[space]" in requirements and "torch==2.13.0" in requirements


def test_space_card_command_writes_the_readme(tmp_path):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["space-card", "metric", "--output", str(tmp_path / "space")])
    assert args.func(args) == 0
    assert (tmp_path / "space" / "README.md").read_text() == str(metric_space_card())


@pytest.mark.parametrize("folder", ["leaderboard", "elue-metric"])
def test_space_apps_are_thin(folder):
    tree = ast.parse((SPACES / folder / "app.py").read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert all(isinstance(n, ast.ImportFrom) and n.module.startswith("elue_hf.") for n in imports)
    assert not [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert any(isinstance(n, ast.Assign) and n.targets[0].id == "demo" for n in tree.body)


def test_the_metric_loads_from_the_space_copy_and_matches_the_package():
    import evaluate

    from elue_hf.metrics import METRIC_PATH

    args = dict(predictions=[0, 1, 1, 0, 1], references=[0, 1, 0, 0, 1], flops=[1000.0, 1100.0, 900.0, 950.0, 1010.0],
                task="sst-2")
    from_space = evaluate.load(str(SPACES / "elue-metric" / "elue.py")).compute(**args)
    from_package = evaluate.load(METRIC_PATH).compute(**args)
    assert from_space == from_package
    assert from_space["acc"] == 80.0 and from_space["mean_flops"] == pytest.approx(992.0)


def test_metric_app_computes_and_explains_errors():
    out = compute_from_text("SST-2", "0, 1, 1", "0 1 0", mean_flops=1060.3)
    assert out["acc"] == pytest.approx(200 / 3) and out["reference_score"] == pytest.approx(84.1)
    assert compute_from_text("sts-b", "1.0 2.5 4.0", "1.2, 2.0, 4.5", flops="500 600 700")["corr"] > 0
    with pytest.raises(ValueError, match="3 predictions but 2 references"):
        compute_from_text("sst-2", "0 1 1", "0 1", mean_flops=100)
    with pytest.raises(ValueError, match="give MFLOPs per instance"):
        compute_from_text("sst-2", "0 1", "0 1")
    with pytest.raises(ValueError, match="value 2 \\('x'\\) is not a number"):
        parse_numbers("1 x", "flops")


def test_metric_app_served():
    from gradio_client import Client

    app = build_metric_app()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        result, error = client.predict("MRPC", "1 1 0 1", "1 0 0 1", "", 2280.2, api_name="/compute")
        assert error == "" and result["acc"] == 75.0 and result["reference_score"] == pytest.approx(83.1)
        result, error = client.predict("MRPC", "1 1", "1", "", 100, api_name="/compute")
        assert result is None and "2 predictions but 1 references" in error
    finally:
        app.close()
