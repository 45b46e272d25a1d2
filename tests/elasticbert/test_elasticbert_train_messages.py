"""`elue-hf train` on a classifier with the wrong number of labels: one sentence naming --num-labels, exit code 2."""

import torch

from elue_hf import ElasticBertForSequenceClassification
from elue_hf.cli import main
from tests.helpers.elasticbert import tiny_config
from tests.helpers.elue_fixtures import write_synthetic_task


def test_label_count_mismatch_names_num_labels(tmp_path, capsys):
    torch.manual_seed(0)
    ElasticBertForSequenceClassification(tiny_config(num_labels=2)).save_pretrained(tmp_path / "two-labels")
    write_synthetic_task(tmp_path / "elue", "snli")
    capsys.readouterr()
    argv = ["train", "--model", str(tmp_path / "two-labels"), "--data-dir", str(tmp_path / "elue"), "--task", "snli",
            "--output-dir", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("elue-hf train: error: the model has 2 labels, snli needs 3: convert with --num-labels 3 "
                   "(elue-hf convert --model <its BERT> --num-labels 3), or train from the BERT itself")
    assert not (tmp_path / "out").exists()
