"""ElasticBERT follows transformers' conventions: output options, keyword arguments, output types, loading."""

import json
import math

import pytest
import torch
from transformers import AutoModelForMaskedLM, AutoModelForPreTraining, BertConfig, BertModel, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from elue_hf import (
    ElasticBertForMaskedLM,
    ElasticBertForPreTraining,
    ElasticBertForSequenceClassification,
    ElasticBertModel,
)
from elue_hf.elasticbert import convert_bert_to_elasticbert
from tests.helpers.elasticbert import padded_batch, tiny_config

ALL_CLASSES = [
    ElasticBertModel, ElasticBertForSequenceClassification, ElasticBertForMaskedLM, ElasticBertForPreTraining,
]  # fmt: skip


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_attentions_and_hidden_states_as_in_bert(cls):
    torch.manual_seed(0)
    model = cls(tiny_config(attn_implementation="eager")).eval()
    ids, mask = padded_batch(batch_size=2, seq_len=9)
    out = model(input_ids=ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
    assert len(out.attentions) == 4 and out.attentions[0].shape == (2, 4, 9, 9)
    assert len(out.hidden_states) == 5 and out.hidden_states[0].shape == (2, 9, 32)
    # padded keys get no attention
    assert float(out.attentions[0][1][..., ~mask[1].bool()].detach().abs().max()) == 0.0
    plain = model(input_ids=ids, attention_mask=mask)
    assert plain.attentions is None and plain.hidden_states is None
    as_tuple = model(input_ids=ids, attention_mask=mask, return_dict=False)
    assert isinstance(as_tuple, tuple)


@pytest.mark.parametrize("cls", ALL_CLASSES)
def test_unknown_keyword_arguments_are_rejected(cls):
    model = cls(tiny_config()).eval()
    ids, mask = padded_batch(batch_size=2)
    unknown = r"unexpected keyword argument\(s\) \['add_pooling_layer', 'outputattentions'\]"
    with pytest.raises(TypeError, match=unknown):
        model(input_ids=ids, attention_mask=mask, outputattentions=True, add_pooling_layer=False)


def test_exit_keyword_arguments_still_work_but_not_with_per_layer_outputs():
    model = ElasticBertForSequenceClassification(tiny_config()).eval()
    ids, mask = padded_batch(batch_size=3)
    out = model(input_ids=ids, attention_mask=mask, exit_criterion="patience", patience=1, regression_threshold=0.1)
    assert out.exit_layer.shape == (3,)
    out = model(input_ids=ids, attention_mask=mask, exit_criterion="entropy", entropy_threshold=0.5)
    assert out.logits.shape == (3, 3)
    with pytest.raises(ValueError, match=r"\['output_hidden_states'\] cannot be combined with early exit"):
        model(input_ids=ids, attention_mask=mask, exit_criterion="entropy", entropy_threshold=0.5,
              output_hidden_states=True)  # fmt: skip


def test_add_pooling_layer_false_builds_no_pooler():
    model = ElasticBertModel(tiny_config(), add_pooling_layer=False).eval()
    assert not any(".pooler." in name for name, _ in model.named_parameters())
    out = model(*padded_batch(batch_size=2))
    assert out.pooler_output is None and out.exit_pooled_outputs is None and len(out.exit_hidden_states) == 4


def test_masked_lm_is_a_standard_masked_lm():
    model = ElasticBertForMaskedLM(tiny_config()).eval()
    assert not isinstance(model, ElasticBertForPreTraining)
    assert not any(".pooler." in name or "sop_" in name for name, _ in model.named_parameters())
    ids, mask = padded_batch(batch_size=2)
    out = model(input_ids=ids, attention_mask=mask, labels=ids)
    assert type(out) is MaskedLMOutput and out.logits.shape == (2, 11, 97)


def test_untied_decoder_bias_round_trips(tmp_path):
    model = ElasticBertForMaskedLM(tiny_config(tie_word_embeddings=False))
    with torch.no_grad():
        model.predictions.decoder.bias.fill_(0.25)
    model.save_pretrained(tmp_path)
    loaded, info = ElasticBertForMaskedLM.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"]
    assert torch.equal(loaded.predictions.decoder.bias, torch.full((97,), 0.25))


@pytest.fixture(scope="module")
def converted_dir(tmp_path_factory, minilm_dir):
    """A tiny BERT (MiniLM's vocabulary) converted to ElasticBERT and saved: no MLM / SOP heads in the checkpoint."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    torch.manual_seed(0)
    bert = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                intermediate_size=32, max_position_embeddings=64))  # fmt: skip
    path = tmp_path_factory.mktemp("converted")
    convert_bert_to_elasticbert(bert, save_directory=path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("auto", [AutoModelForMaskedLM, AutoModelForPreTraining])
def test_heads_missing_from_a_checkpoint_are_initialised(converted_dir, auto):
    model, info = auto.from_pretrained(converted_dir, output_loading_info=True)
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert {"predictions.bias", "predictions.transforms.0.dense.weight"} <= set(info["missing_keys"])
    assert not any(k.startswith("elasticbert.") for k in info["missing_keys"])  # the backbone came from the file
    ids = torch.randint(1000, 2000, (2, 8))
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    extra = {"sentence_order_label": torch.tensor([0, 1])} if auto is AutoModelForPreTraining else {}
    out = model(input_ids=ids, labels=labels, **extra)
    assert torch.isfinite(out.loss)
    out.loss.backward()
    assert model.predictions.transforms[1].dense.weight.grad.abs().sum() > 0


@pytest.mark.slow
def test_pretrain_cli_runs_on_a_converted_elasticbert(converted_dir, tmp_path, capsys):
    from elue_hf.cli import main

    out = tmp_path / "out"
    argv = ["pretrain", "--model", str(converted_dir), "--output-dir", str(out), "--max-steps", "2",
            "--batch-size", "4", "--max-length", "32"]  # fmt: skip
    assert main(argv) == 0
    assert "step 1 exits [2]" in capsys.readouterr().out  # groups {1, 2}, {2} alternate
    log = json.loads((out / "pretraining_log.json").read_text())
    assert len(log) == 2 and all(math.isfinite(entry["loss"]) for entry in log)
    reloaded, info = AutoModelForPreTraining.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"]  # the heads initialised on load were trained and saved


def test_mismatched_shapes_load_the_checkpoint_once(tmp_path, monkeypatch):
    ElasticBertForSequenceClassification(tiny_config()).save_pretrained(tmp_path)
    calls = []
    original = PreTrainedModel.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        calls.append(cls.__name__)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(PreTrainedModel, "from_pretrained", classmethod(counting))
    with pytest.raises(ValueError, match=r"intermediate\.dense\.weight: checkpoint \(64, 32\) vs model \(48, 32\)"):
        ElasticBertForSequenceClassification.from_pretrained(tmp_path, intermediate_size=48)
    assert len(calls) == 1
    model, info = ElasticBertForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert len(calls) == 2 and not info["mismatched_keys"] and isinstance(model, ElasticBertForSequenceClassification)
