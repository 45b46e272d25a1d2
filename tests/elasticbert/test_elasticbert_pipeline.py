"""pipeline("elasticbert-text-classification") on a saved ElasticBERT: exit options, exit layer and MFLOPs, clear
errors; transformers' own "text-classification" stays transformers' own for every model."""

import pytest
import torch
from transformers import TextClassificationPipeline, pipeline
from transformers.pipelines import SUPPORTED_TASKS

import elue_hf  # noqa: F401  (registers ElasticBERT and its pipeline)
from elue_hf.elasticbert import convert_bert_to_elasticbert
from elue_hf.elasticbert.pipeline import ELASTICBERT_TASK, ElasticBertTextClassificationPipeline
from elue_hf.elue.flops import elasticbert_flops
from tests.helpers.tiny_models import save_tiny_bert, synthetic_tokenizer

TEXT = "the movie was very good fun"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipe")
    bert = save_tiny_bert(root / "bert", num_layers=3)
    torch.manual_seed(0)
    convert_bert_to_elasticbert(bert, save_directory=root / "eb")
    return bert, root / "eb"


@pytest.fixture(scope="module")
def clf(folders):
    return pipeline(ELASTICBERT_TASK, model=str(folders[1]))


def _length(text):
    return len(synthetic_tokenizer()(text)["input_ids"])


def test_elasticbert_folders_get_the_exit_aware_pipeline(clf, folders):
    assert type(clf) is ElasticBertTextClassificationPipeline
    (full,) = clf(TEXT)
    assert full["exit_layer"] == 3 and set(full) == {"label", "score", "exit_layer", "mflops"}
    assert full["mflops"] == pytest.approx(float(elasticbert_flops(clf.model.config, _length(TEXT), 3, "static")))
    explicit = pipeline("text-classification", model=str(folders[1]),
                        pipeline_class=ElasticBertTextClassificationPipeline)
    assert type(explicit) is ElasticBertTextClassificationPipeline and explicit(TEXT) == [full]


def test_importing_elue_hf_leaves_transformers_tasks_alone(folders):
    stock = SUPPORTED_TASKS["text-classification"]["impl"]  # transformers keeps a lazy "module.Class" path here
    assert stock in (TextClassificationPipeline, f"{TextClassificationPipeline.__module__}.TextClassificationPipeline")
    plain = pipeline("text-classification", model=str(folders[0]))  # a normal BERT is transformers' own
    assert type(plain) is TextClassificationPipeline and set(plain(TEXT)[0]) == {"label", "score"}
    eb = pipeline("sentiment-analysis", model=str(folders[1]))  # so is an ElasticBERT under the stock task
    assert type(eb) is TextClassificationPipeline and set(eb(TEXT)[0]) == {"label", "score"}
    with pytest.raises(ValueError, match="needs an ElasticBERT model, got model_type 'bert'"):
        pipeline(ELASTICBERT_TASK, model=str(folders[0]))


def test_exit_options_per_call_change_the_answer(clf):
    (early,) = clf(TEXT, exit_criterion="entropy", entropy_threshold=5.0)  # ln 2 < 5: every row leaves at exit 1
    assert early["exit_layer"] == 1
    assert early["mflops"] == pytest.approx(float(elasticbert_flops(clf.model.config, _length(TEXT), 1, "dynamic")))
    enc = synthetic_tokenizer()(TEXT, return_tensors="pt")
    with torch.no_grad():
        first_exit = clf.model(**enc, exit_criterion="entropy", entropy_threshold=5.0).logits.softmax(-1)
    assert early["score"] == pytest.approx(float(first_exit.max()))
    (never,) = clf(TEXT, exit_criterion="entropy", entropy_threshold=0.0)  # entropy is never < 0: full depth
    assert never["exit_layer"] == 3 and never["mflops"] > early["mflops"]
    batch = clf([TEXT, "bad"], exit_criterion="patience", patience=1, top_k=None, batch_size=2)
    assert [[r["exit_layer"] for r in rows] for rows in batch] == [[2, 2], [2, 2]]  # 2 labels each, same exit
    assert batch[1][0]["mflops"] < batch[0][0]["mflops"]  # the shorter text costs less


def test_exit_options_at_construction(folders):
    clf = pipeline(ELASTICBERT_TASK, model=str(folders[1]), exit_criterion="entropy", entropy_threshold=5.0)
    assert clf(TEXT)[0]["exit_layer"] == 1
    assert clf(TEXT, exit_criterion="none")[0]["exit_layer"] == 3  # a call overrides the construction default


def test_unknown_and_bad_options_are_rejected(clf, folders):
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['exit_criterium'\] for the ElasticBERT "
                                         r"text-classification pipeline \('exit_criterium' -> did you mean "
                                         r"'exit_criterion'\?\)"):
        clf(TEXT, exit_criterium="entropy")
    with pytest.raises(ValueError, match="'entropy_treshold' -> did you mean 'entropy_threshold'"):
        pipeline(ELASTICBERT_TASK, model=str(folders[1]), entropy_treshold=0.3)
    # nothing close to a known option: no hint
    with pytest.raises(ValueError, match=r"\['speed'\] for the ElasticBERT text-classification pipeline; exit options"):
        clf(TEXT, speed=3)
    with pytest.raises(ValueError, match="Unknown exit_criterion"):
        clf(TEXT, exit_criterion="confidence")
