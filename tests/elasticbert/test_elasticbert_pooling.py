"""ElasticBERT ``pooling="mean"``: masked token mean at every exit, batched early exit, save/load, FLOPs, HashEE."""

import numpy as np
import pytest
import torch
from transformers import AutoModelForSequenceClassification

from elue_hf import ElasticBertConfig, ElasticBertForSequenceClassification, ElasticBertModel
from elue_hf.elasticbert import masked_mean, prediction_entropy
from elue_hf.elue.flops import ElueFlopsCounter, count_parameters, elasticbert_flops, module_spec_from_config
from elue_hf.hashee import apply_hashee, hashee_config_for, random_cons_table
from tests.helpers.elasticbert import padded_batch, tiny_config


def _classifier(attn="sdpa", **overrides):
    torch.manual_seed(0)
    model = ElasticBertForSequenceClassification(tiny_config(**{"pooling": "mean", **overrides}))
    model.set_attn_implementation(attn)
    return model.eval()


def _hand_mean(hidden, mask):
    """Row by row: the plain mean of the valid (mask == 1) positions."""
    return torch.stack([hidden[r, mask[r].bool()].mean(0) for r in range(hidden.shape[0])])


def test_config_default_is_cls_and_bad_pooling_is_rejected():
    assert ElasticBertConfig().pooling == "cls"
    with pytest.raises(ValueError, match="Unknown pooling 'max'"):
        ElasticBertConfig(pooling="max")


def test_masked_mean_is_the_mean_of_valid_tokens():
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, 5, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    torch.testing.assert_close(masked_mean(hidden, mask), _hand_mean(hidden, mask))
    torch.testing.assert_close(masked_mean(hidden), hidden.mean(1))
    assert torch.equal(masked_mean(hidden, torch.zeros(3, 5)), torch.zeros(3, 4))  # no valid token: zeros
    with pytest.raises(ValueError, match=r"token_mask of shape \(3, 4\) does not match"):
        masked_mean(hidden, mask[:, :4])


def test_every_exit_pools_the_masked_mean_of_its_layer():
    torch.manual_seed(0)
    model = ElasticBertModel(tiny_config(pooling="mean", num_output_layers=3)).eval()
    ids, mask = padded_batch()
    assert mask.sum(-1).min() < mask.shape[1]  # some rows are padded
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask)
    poolers = [p for p in model.encoder.pooler if p is not None]
    for pooler, hidden, pooled in zip(poolers, out.exit_hidden_states, out.exit_pooled_outputs):
        expected = torch.tanh(pooler.dense(_hand_mean(hidden, mask)))
        torch.testing.assert_close(pooled, expected)
    # [CLS] pooling on the same weights reads token 0 instead
    cls = ElasticBertModel(tiny_config(num_output_layers=3)).eval()
    cls.load_state_dict(model.state_dict())
    with torch.no_grad():
        cls_out = cls(input_ids=ids, attention_mask=mask)
    torch.testing.assert_close(cls_out.exit_hidden_states[0], out.exit_hidden_states[0])
    torch.testing.assert_close(cls_out.pooler_output, torch.tanh(poolers[-1].dense(out.last_hidden_state[:, 0])))


def test_mean_pooling_ignores_padding_and_needs_a_2d_mask():
    model = _classifier()
    ids, mask = padded_batch()
    with torch.no_grad():
        batched = model(input_ids=ids, attention_mask=mask).all_logits
        for r in range(ids.shape[0]):
            n = int(mask[r].sum())
            alone = model(input_ids=ids[r : r + 1, :n], attention_mask=mask[r : r + 1, :n]).all_logits
            torch.testing.assert_close(batched[r : r + 1], alone, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match='pooling="mean" averages over the tokens of a 2-D'):
        model(input_ids=ids, attention_mask=mask[:, None, None, :].bool())


@pytest.mark.parametrize(
    "kwargs",
    [dict(exit_criterion="entropy"), dict(exit_criterion="patience", patience=1)],
    ids=["entropy", "patience"],
)
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_batched_early_exit_with_mean_pooling_equals_row_by_row(kwargs, attn):
    model = _classifier(attn, initializer_range=0.3)  # wide init: exits disagree, rows leave at different layers
    ids, mask = padded_batch(batch_size=16, seed=3)
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).all_logits
        if kwargs["exit_criterion"] == "entropy":  # half the rows are confident enough at the first exit
            middle = prediction_entropy(full[:, 0]).sort().values[7:9].mean()  # between two rows: no ties
            kwargs = {**kwargs, "entropy_threshold": float(middle)}
        out = model(input_ids=ids, attention_mask=mask, **kwargs)
        rows = []
        for r in range(ids.shape[0]):
            n = int(mask[r].sum())
            rows.append(model(input_ids=ids[r : r + 1, :n], attention_mask=mask[r : r + 1, :n], **kwargs))
    assert out.exit_layer.tolist() == [int(o.exit_layer[0]) for o in rows]
    assert len(set(out.exit_layer.tolist())) > 1  # rows leave the batch at different layers
    torch.testing.assert_close(out.logits, torch.cat([o.logits for o in rows]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.logits, full[torch.arange(16), out.exit_layer - 1], atol=1e-5, rtol=0)


def test_save_load_keeps_mean_pooling(tmp_path):
    model = _classifier()
    ids, mask = padded_batch()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert loaded.config.pooling == "mean"
    assert all(p.pooling == "mean" for p in loaded.elasticbert.encoder.pooler)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(input_ids=ids, attention_mask=mask).all_logits, model(input_ids=ids, attention_mask=mask).all_logits
        )


def test_mean_pooling_adds_no_parameters_and_no_flops():
    cls, mean = _classifier(pooling="cls"), _classifier()  # same seed: same weights
    assert count_parameters(cls) == count_parameters(mean)
    assert module_spec_from_config(cls.config) == module_spec_from_config(mean.config)
    lengths = [11, 6, 3]
    ids, mask = padded_batch(batch_size=3)
    mask = (torch.arange(ids.shape[1])[None] < torch.tensor(lengths)[:, None]).long()
    for model in (cls, mean):
        model.set_attn_implementation("eager")
        with torch.no_grad(), ElueFlopsCounter(model) as counter:
            model(input_ids=ids * mask, attention_mask=mask)
        expected = elasticbert_flops(model.config, np.array(lengths), model.config.num_hidden_layers, "dynamic")
        np.testing.assert_allclose(counter.per_instance_mflops, expected, rtol=1e-12)


def test_hashee_pools_the_mean_of_the_final_token_states():
    """HashEE's exited tokens keep their last state; the mean pooler averages those final per-token states."""
    torch.manual_seed(0)
    model = ElasticBertForSequenceClassification(tiny_config(pooling="mean", num_output_layers=1)).eval()
    table = random_cons_table(hashee_config_for(model, None, special_ids=[0, 1, 2, 3], hash_function="random-cons"))
    apply_hashee(model, table)
    ids, mask = padded_batch()
    with torch.no_grad():
        out = model.elasticbert(input_ids=ids, attention_mask=mask)
    pooler = model.elasticbert.encoder.pooler[-1]
    torch.testing.assert_close(out.pooler_output, torch.tanh(pooler.dense(_hand_mean(out.last_hidden_state, mask))))
