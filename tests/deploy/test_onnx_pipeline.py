"""``transformers.pipeline`` over an ONNX bundle: the same labels, exit layers and MFLOPs as the PyTorch pipeline."""

from __future__ import annotations

import pytest

from tests.deploy.conftest import tiny_model
from tests.helpers.tiny_models import synthetic_tokenizer

pytestmark = pytest.mark.slow  # exports ONNX graphs (seconds each)

TEXTS = ["the dog runs in the park", "a cat", "the park is big and the dog is happy"]


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    from transformers import pipeline

    from elue_hf.deploy import OnnxElasticBertForSequenceClassification, export_multi_exit
    from elue_hf.deploy.pipeline import OnnxTextClassificationPipeline

    model, tokenizer = tiny_model(vocab_size=len(synthetic_tokenizer())), synthetic_tokenizer()
    folder = export_multi_exit(model, tmp_path_factory.mktemp("bundle"), tokenizer=tokenizer)
    runtime = OnnxElasticBertForSequenceClassification.from_pretrained(folder, threads=1)
    onnx = pipeline("elasticbert-text-classification", model=runtime, pipeline_class=OnnxTextClassificationPipeline)
    torch_pipe = pipeline("elasticbert-text-classification", model=model, tokenizer=tokenizer, device="cpu")
    return onnx, torch_pipe, runtime


@pytest.mark.parametrize("options", [{}, {"exit_criterion": "entropy", "entropy_threshold": 0.5},
                                     {"exit_criterion": "patience", "patience": 1}])
def test_onnx_pipeline_gives_the_pytorch_pipeline_fields(pipelines, options):
    onnx, torch_pipe, _ = pipelines
    got, want = onnx(TEXTS, **options), torch_pipe(TEXTS, **options)
    for g, w in zip(got, want):
        g, w = g[0] if isinstance(g, list) else g, w[0] if isinstance(w, list) else w
        assert (g["label"], g["exit_layer"]) == (w["label"], w["exit_layer"])
        assert g["mflops"] == pytest.approx(w["mflops"])
        assert g["score"] == pytest.approx(w["score"], abs=1e-4)


def test_onnx_pipeline_matches_predict_and_rejects_other_models(pipelines):
    from elue_hf.deploy.pipeline import OnnxTextClassificationPipeline

    onnx, torch_pipe, runtime = pipelines
    options = {"exit_criterion": "entropy", "entropy_threshold": 0.5}
    for result, direct in zip(onnx(TEXTS, **options), runtime.predict(TEXTS, **options)):
        result = result[0] if isinstance(result, list) else result
        assert result["exit_layer"] == direct["exit_layer"] and result["label"] == direct["label"]
        assert result["mflops"] == pytest.approx(direct["mflops"])
    with pytest.raises(ValueError, match="runs an ONNX bundle"):
        OnnxTextClassificationPipeline(model=torch_pipe.model, tokenizer=torch_pipe.tokenizer)
    with pytest.raises(ValueError, match="unknown option"):
        onnx(TEXTS[0], exit_criteria="entropy")
