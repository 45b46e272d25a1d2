"""LPT on ElasticBERT: exits above the prompt layer, batched early exit equal to one row at a time, training."""

import pytest
import torch
from peft import PeftModel, get_peft_model

from elue_hf import ElasticBertForMaskedLM, ElasticBertForSequenceClassification, ElasticBertModel
from elue_hf.elasticbert import exit_layers_from_logits
from elue_hf.lpt import LPTConfig, LPTLayer, generator_parameter_count
from elue_hf.multi_exit import MultiExitEncoder
from tests.helpers.lpt import VOCAB, elasticbert_config, padded_batch, trainable_names

K, L_PROMPT = 2, 3


def _lpt(model, **overrides):
    options = dict(task_type="SEQ_CLS", num_prompt_tokens=L_PROMPT, bottleneck_size=8, prompt_layer=K)
    options.update(overrides)
    return get_peft_model(model, LPTConfig(**options))


def _varied(attn="sdpa", generator="npg", seed=0, pooling="cls"):
    """A dynamic ElasticBERT with LPT whose rows exit at different layers (wide init, eval mode)."""
    torch.manual_seed(seed)
    model = ElasticBertForSequenceClassification(elasticbert_config(attn, initializer_range=0.3, pooling=pooling))
    return _lpt(model, generator=generator).eval()


def test_trainable_parameters_and_gradients_with_gradient_equilibrium():
    torch.manual_seed(0)
    pm = _lpt(ElasticBertForSequenceClassification(elasticbert_config()))
    heads = 4 * (32 * 3 + 3)
    assert pm.get_nb_trainable_parameters()[0] == generator_parameter_count("npg", 32, 8, L_PROMPT) + heads
    assert isinstance(pm.base_model.model.elasticbert.encoder, LPTLayer)
    assert isinstance(pm.base_model.model.elasticbert.encoder, MultiExitEncoder)  # the wrapper keeps the interface
    ids, mask = padded_batch()
    out = pm(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 2, 1]))  # train mode: every exit + GE
    assert out.all_logits.shape == (4, 4, 3) and out.exit_losses.shape == (4,)
    out.loss.backward()
    assert {n for n, p in pm.named_parameters() if p.grad is not None} == trainable_names(pm)
    assert all(".lpt_generator." in n or ".classifiers." in n for n in trainable_names(pm))


def test_exit_outputs_are_stripped_and_pool_reads_cls():
    torch.manual_seed(0)
    pm = _lpt(ElasticBertModel(elasticbert_config()), task_type=None).eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        out = pm(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    encoder = pm.base_model.model.encoder
    assert [h.shape[1] for h in out.exit_hidden_states] == [10, 10, 10, 10]
    assert [h.shape[1] for h in out.hidden_states] == [10, 10, 10, 13, 13]  # layers after insertion keep prompt rows
    for i, (h, pooled) in enumerate(zip(out.exit_hidden_states, out.exit_pooled_outputs)):
        torch.testing.assert_close(pooled, encoder.base_layer.pooler[i](h))
    torch.testing.assert_close(out.last_hidden_state, out.exit_hidden_states[-1])
    torch.testing.assert_close(out.exit_hidden_states[-1], out.hidden_states[-1][:, L_PROMPT:])
    with pm.disable_adapter():
        with torch.no_grad():
            plain = pm(input_ids=ids, attention_mask=mask)
    # exits below the prompt layer are untouched by LPT, exits above it change
    for i in range(4):
        same = torch.allclose(plain.exit_pooled_outputs[i], out.exit_pooled_outputs[i], atol=1e-6)
        assert same == (i < K)


def _one_by_one(pm, ids, mask, **kwargs):
    logits, layers = [], []
    for r in range(len(ids)):
        n = int(mask[r].sum())
        out = pm(input_ids=ids[r : r + 1, :n], attention_mask=mask[r : r + 1, :n], **kwargs)
        logits.append(out.logits[0])
        layers.append(int(out.exit_layer[0]))
    return torch.stack(logits), layers


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize(
    "kwargs, pooling",  # mean pooling: the prompt rows are stripped before the token mean
    [
        (dict(exit_criterion="entropy", entropy_threshold=0.85), "cls"),
        (dict(exit_criterion="patience", patience=1), "cls"),
        (dict(exit_criterion="entropy", entropy_threshold=0.85), "mean"),
    ],
    ids=["entropy", "patience", "entropy-mean-pooling"],
)
@pytest.mark.slow
@pytest.mark.parametrize("generator", ["npg", "appg"])
def test_batched_early_exit_equals_rows_one_at_a_time(attn, kwargs, pooling, generator):
    pm = _varied(attn, generator, pooling=pooling)
    ids, mask = padded_batch(batch_size=12, seq_len=12, seed=1)
    ids[:, 0] = torch.randint(5, VOCAB, (12,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = pm(input_ids=ids, attention_mask=mask)
        batched = pm(input_ids=ids, attention_mask=mask, **kwargs)
        single_logits, single_layers = _one_by_one(pm, ids, mask, **kwargs)
    assert batched.exit_layer.tolist() == single_layers
    torch.testing.assert_close(batched.logits, single_logits, atol=1e-5, rtol=1e-5)
    # and both agree with the decision rule applied to the full pass (every exit above the prompt layer works)
    policy = {k: v for k, v in kwargs.items() if k != "exit_criterion"}
    reference = exit_layers_from_logits(full.all_logits, [1, 2, 3, 4], kwargs["exit_criterion"], **policy)
    assert batched.exit_layer.tolist() == reference.tolist()
    chosen = full.all_logits[torch.arange(12), reference - 1]
    torch.testing.assert_close(batched.logits, chosen, atol=1e-5, rtol=1e-5)
    assert len(set(single_layers)) > 1  # the test exercises rows leaving the batch at different layers


def test_static_elasticbert_and_save_load(tmp_path):
    torch.manual_seed(0)
    base = ElasticBertForSequenceClassification(elasticbert_config(num_output_layers=1))
    base.save_pretrained(tmp_path / "base")
    pm = _lpt(ElasticBertForSequenceClassification.from_pretrained(tmp_path / "base"), generator="mppg").eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        expected = pm(input_ids=ids, attention_mask=mask).logits
    pm.save_pretrained(tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(
        ElasticBertForSequenceClassification.from_pretrained(tmp_path / "base"), tmp_path / "adapter"
    ).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids, attention_mask=mask).logits, expected)


def test_dynamic_save_load_keeps_every_exit_head(tmp_path):
    pm = _varied()
    ids, mask = padded_batch()
    with torch.no_grad():
        expected = pm(input_ids=ids, attention_mask=mask).all_logits
    pm.save_pretrained(tmp_path / "adapter")
    torch.manual_seed(0)
    fresh = ElasticBertForSequenceClassification(elasticbert_config(initializer_range=0.3))
    loaded = PeftModel.from_pretrained(fresh, tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(input_ids=ids, attention_mask=mask).all_logits, expected)


def test_verbalizer_on_elasticbert_masked_lm():
    torch.manual_seed(0)
    model = ElasticBertForMaskedLM(elasticbert_config())
    pm = _lpt(model, head_mode="verbalizer", label_word_ids=[10, 11, 12], mask_token_id=4).eval()
    ids, mask = padded_batch()
    ids[ids == 4] = 7
    ids[:, 1] = 4
    with torch.no_grad():
        out = pm(input_ids=ids, attention_mask=mask)
        vocab = pm.base_model.model(input_ids=ids, attention_mask=mask).logits[:, 1]
    torch.testing.assert_close(out.logits, vocab[:, [10, 11, 12]])
