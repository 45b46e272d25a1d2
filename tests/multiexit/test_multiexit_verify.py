"""``elue-hf verify`` re-runs static and dynamic points of multi-exit models of other families (tiny, offline)."""

from __future__ import annotations

import pytest
import torch

from elue_hf.elue.flops.architectures import flops_shape
from elue_hf.elue.flops.params import count_parameters
from elue_hf.elue.inference import (
    ExitSetting,
    point_params,
    run_operating_points,
    submission_spec,
    to_prediction_file,
)
from elue_hf.elue.submission import write_submission, zip_submission
from elue_hf.elue.submission.checks import load_tokenizer
from elue_hf.elue.tasks import get_task
from elue_hf.multiexit import convert_to_multi_exit
from elue_hf.verify.rerun import _dataset, _setting_of, rerun
from tests.helpers.elue_fixtures import write_synthetic_elue
from tests.helpers.leaderboard import TOKENIZER_ID, tokenizer_root
from tests.helpers.tiny_families import tiny_classifier

pytestmark = pytest.mark.slow  # a full re-run per family


@pytest.mark.parametrize("family", ["deberta-v2", "modernbert", "distilbert"])
def test_dynamic_points_of_a_multi_exit_model_are_verified(family, tmp_path):
    data = write_synthetic_elue(tmp_path / "ELUE", tasks=("sst-2",), sizes={"test": 24})
    tokenizers = tokenizer_root(tmp_path / "tokenizers")
    model_id = f"me/tiny-{family}"
    model = convert_to_multi_exit(tiny_classifier(family, num_labels=2))
    with torch.no_grad():  # sharpen the fresh internal exits so that entropy exit leaves at different layers
        for head in model.classifiers[:-1]:
            head.weight.mul_(300.0)
    model.save_pretrained(tmp_path / "models" / model_id.replace("/", "--"))
    tokenizer = load_tokenizer(TOKENIZER_ID, [tokenizers], allow_hub=False)
    task = get_task("sst-2")
    settings = [ExitSetting("static", 1), ExitSetting("static", 3), ExitSetting("entropy", 0.5),
                ExitSetting("patience", 1)]
    points = run_operating_points(model, tokenizer, _dataset(data, task), task, max_length=64, settings=settings)
    shape = flops_shape(model)
    files = {}
    for point in points:
        prediction = to_prediction_file(point, task, shape, point_params(model, point), 64)
        prediction.settings = _setting_of(point)
        files[point.label] = prediction
    folder = write_submission(tmp_path / "sub", family, "multi-exit verification", count_parameters(model), files,
                              module_spec=submission_spec(model), tokenizer=TOKENIZER_ID, model={"id": model_id})
    report = rerun(zip_submission(folder, tmp_path / "sub.zip"), data, [tmp_path / "models"], [tokenizers],
                   allow_hub=False)
    assert report["verified"] is True, report
    assert report["model"]["architecture"] == "multiexit"
    assert all(r["agreement"] == 1.0 and r["flops_diff"] == 0.0 for r in report["files"].values())
