"""ELUE FLOPs: worked values, analytic == hooked, FlopCounterMode cross-check, early exit, token-level rule."""

import os
from dataclasses import replace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

from elue_hf.elue.flops import (
    ElueFlopsCounter,
    HookCall,
    attention_macs,
    bert_classifier_flops,
    dims_from_config,
    elasticbert_flops,
    encoder_classifier_macs,
    hooked_flops_by_length,
    layer_macs,
    macs_to_mflops,
    model_flops,
    register_rule,
)

BASE = BertConfig(num_labels=2)
TINY = dict(vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64)


def _eager(config):
    config._attn_implementation = "eager"
    return config


def _elasticbert(num_output_layers=3, num_labels=2, **kw):
    from elue_hf.elasticbert import ElasticBertConfig, ElasticBertForSequenceClassification

    cfg = _eager(ElasticBertConfig(**{**TINY, **kw}, num_output_layers=num_output_layers, num_labels=num_labels,
                                   max_output_layers=kw.get("num_hidden_layers", 3)))
    torch.manual_seed(0)
    return ElasticBertForSequenceClassification(cfg).eval()


# ---------------------------------------------------------------------------------------------- worked values


@pytest.mark.parametrize("n, expected", [(128, 22367.70), (64, 11031.09), (27, 4617.02)])
def test_bert_base_worked_values(n, expected):
    assert bert_classifier_flops(BASE, n) == pytest.approx(expected, abs=0.005)


def test_bert_base_n128_exact_macs_and_layer():
    macs = encoder_classifier_macs(128, 768, 3072, 12, 12, 2)
    assert macs == 11_183_851_008
    assert macs_to_mflops(layer_macs(128, 768, 3072, 12)) == pytest.approx(1863.84, abs=0.005)


def test_layer_formula_matches_spec_closed_form():
    n, d, f, h = np.arange(1, 300), 768, 3072, 12
    closed = 4 * n * d * d + 2 * n * d * f + 2 * n * n * (h + d) + 4 * n * d
    np.testing.assert_array_equal(layer_macs(n, d, f, h), closed)
    # per-layer value of the reference curve (docs/elue.md): 2 (7,080,960 n + 1,560 n^2)
    np.testing.assert_array_equal(2 * layer_macs(n, d, f, h), 2 * (7_080_960 * n + 1_560 * n * n))


def test_hashee_worked_example_and_saved_macs():
    m = np.array([128, 107, 86, 65, 44, 23])
    assert elasticbert_flops(dims_from_config(BASE), 128, 6, active_tokens=m) == pytest.approx(7341.01, abs=0.005)
    assert bert_classifier_flops(BASE, 128, 6) == pytest.approx(11184.64, abs=0.005)
    n, d, f, h = 128, 768, 3072, 12
    for mm in (0, 1, 50, 127, 128):
        saved = (n - mm) * d * d * 2 + 2 * n * (n - mm) * (h + d) + 2 * (n - mm) * d * f + 4 * (n - mm) * d
        assert layer_macs(n, d, f, h) - layer_macs(n, d, f, h, m=mm) == saved
    assert attention_macs(10, 8, 2, m=10) == attention_macs(10, 8, 2)


def test_vectorised_equals_scalar_and_integer_exact():
    lengths = np.array([5, 17, 64, 128])
    exits = np.array([1, 3, 6, 12])
    dims = replace(dims_from_config(BASE), exit_layers=tuple(range(1, 13)))  # ElasticBERT-base, 12 exits
    vec = elasticbert_flops(dims, lengths, exits, "dynamic")
    assert vec == pytest.approx([elasticbert_flops(dims, int(n), int(k), "dynamic") for n, k in zip(lengths, exits)])
    assert isinstance(layer_macs(5, 8, 16, 2), int)


def test_static_vs_dynamic_exit_costs():
    dims = replace(dims_from_config(BASE), exit_layers=tuple(range(1, 13)))
    exit_mflops = 2 * (768 * 768 + 768 * 2) / 1e6
    assert elasticbert_flops(dims, 30, 4, "dynamic") - elasticbert_flops(dims, 30, 4, "static") == pytest.approx(
        3 * exit_mflops)


def test_bad_arguments_raise_clear_errors():
    dims = dims_from_config(BASE)
    with pytest.raises(ValueError, match="exit_layer"):
        elasticbert_flops(dims, 10, 13)
    with pytest.raises(ValueError, match="mode"):
        elasticbert_flops(dims, 10, 3, mode="fast")
    with pytest.raises(ValueError, match="active_tokens"):
        elasticbert_flops(dims, 10, 3, active_tokens=[11, 10, 10])
    with pytest.raises(ValueError, match="not a BERT-family"):
        dims_from_config(object())


# ------------------------------------------------------------------------------------- hooked == analytic


def _ids(lengths, vocab=120):
    g = torch.Generator().manual_seed(1)
    width = max(lengths)
    ids = torch.randint(5, vocab, (len(lengths), width), generator=g)
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    return ids * mask, mask


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_hooked_equals_analytic_per_instance_with_padding(arch):
    if arch == "bert":
        model = BertForSequenceClassification(_eager(BertConfig(**TINY, num_labels=3))).eval()
    else:
        model = RobertaForSequenceClassification(_eager(RobertaConfig(**TINY, num_labels=3, pad_token_id=1))).eval()
    lengths = [9, 4, 13, 1]
    ids, mask = _ids(lengths, vocab=110)
    with torch.no_grad(), ElueFlopsCounter(model) as counter:
        model(input_ids=ids + 2 * (arch == "roberta"), attention_mask=mask)
    expected = bert_classifier_flops(model.config, np.array(lengths))
    np.testing.assert_allclose(counter.per_instance_mflops, expected, rtol=1e-12)
    assert counter.mflops == pytest.approx(expected.sum(), rel=1e-12)


def test_hooked_elasticbert_dynamic_all_exits_and_early_exit_batch1():
    model = _elasticbert(num_output_layers=3)
    lengths = [7, 12]
    ids, mask = _ids(lengths)
    with torch.no_grad(), ElueFlopsCounter(model) as counter:
        out = model(input_ids=ids, attention_mask=mask)  # no criterion: every exit evaluated
    np.testing.assert_allclose(counter.per_instance_mflops,
                               elasticbert_flops(model.config, np.array(lengths), 3, "dynamic"), rtol=1e-12)
    assert out.all_logits.shape == (2, 3, 2)
    # early exit, one instance per forward: the hooks see exactly the layers and exits that ran
    for n in lengths:
        ids1, mask1 = _ids([n])
        with torch.no_grad(), ElueFlopsCounter(model) as c1:
            out1 = model(input_ids=ids1, attention_mask=mask1, exit_criterion="entropy", entropy_threshold=0.69)
        k = int(out1.exit_layer[0])
        assert c1.per_instance_mflops[0] == pytest.approx(elasticbert_flops(model.config, n, k, "dynamic"), rel=1e-12)


def test_hooked_static_elasticbert_and_model_flops_dispatch():
    model = _elasticbert(num_output_layers=1)
    with torch.no_grad():
        got = hooked_flops_by_length(model, [3, 8, 8, 20])
    np.testing.assert_allclose(got, model_flops(model.config, np.array([3, 8, 8, 20])), rtol=1e-12)


def test_batch_rows_dropped_make_per_instance_unavailable():
    model = _elasticbert(num_output_layers=3)
    ids, mask = _ids([6, 6, 6, 6])
    with torch.no_grad(), ElueFlopsCounter(model) as counter:
        out = model(input_ids=ids, attention_mask=mask, exit_criterion="patience", patience=1)
    if len(set(out.exit_layer.tolist())) > 1:  # some rows left early: per-row attribution impossible
        with pytest.raises(ValueError, match="per-instance FLOPs are unavailable"):
            counter.per_instance_mflops
    expected = elasticbert_flops(model.config, np.full(4, 6), out.exit_layer.numpy(), "dynamic").sum()
    assert counter.mflops == pytest.approx(expected, rel=1e-12)  # unpadded rows: totals stay exact


def test_meta_device_bert_base_matches_worked_value():
    with torch.device("meta"):
        model = BertForSequenceClassification(_eager(BertConfig(num_labels=2)))
    got = hooked_flops_by_length(model, [128, 27, 64, 27])
    np.testing.assert_allclose(got, [22367.702016, 4617.021504, 11031.088128, 4617.021504], rtol=1e-12)


# ------------------------------------------------------------------------------------ FlopCounterMode check


@pytest.mark.parametrize("n", [5, 16])
def test_flop_counter_mode_cross_check(n):
    from torch.utils.flop_counter import FlopCounterMode

    model = BertForSequenceClassification(_eager(BertConfig(**TINY, num_labels=2))).eval()
    ids = torch.randint(5, 120, (1, n))
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(input_ids=ids)
    with torch.no_grad(), ElueFlopsCounter(model) as counter:
        model(input_ids=ids)
    d, h, layers = 32, 4, 3
    left_out = 2 * (2 * n * d + layers * (4 * n * d + 2 * h * n * n))  # LayerNorms, scale, softmax
    assert counter.total_flops - left_out == pytest.approx(fc.get_total_flops(), rel=0.01)
    assert counter.total_flops - left_out == fc.get_total_flops()  # in fact exact


def test_register_rule_for_custom_module():
    class Skipper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.inner(x)

    def rule(call: HookCall):
        x = call.input()
        return np.full(call.rows(x), 7.0)

    net = torch.nn.Sequential(Skipper(), torch.nn.Linear(4, 2))
    register_rule(Skipper, rule)
    try:
        with ElueFlopsCounter(net) as counter:
            net(torch.zeros(3, 4))
        assert counter.total_macs == 3 * 7 + 3 * 4 * 2  # inner Linear not counted again
        np.testing.assert_allclose(counter.per_instance_mflops, np.full(3, 2 * 15 / 1e6))
    finally:
        from elue_hf.elue.flops import hooks as flops

        flops._RULES.pop(Skipper, None)
    with pytest.raises(TypeError):
        register_rule("Linear", rule)


@pytest.mark.slow
def test_real_minilm_as_elasticbert_matches_spec_values(minilm_dir):
    """ELUE FLOPs of a MiniLM-L6 classifier, C = 2 (docs/elue.md, "FLOPs rules"): n=128 2,876.47; n=64 1,399.46."""
    from transformers import AutoConfig

    from elue_hf.elasticbert import ElasticBertForSequenceClassification
    from elue_hf.elasticbert.convert import elasticbert_config_from_bert

    config = _eager(elasticbert_config_from_bert(AutoConfig.from_pretrained(minilm_dir), 1, num_labels=2))
    with torch.device("meta"):
        model = ElasticBertForSequenceClassification(config)
    np.testing.assert_allclose(hooked_flops_by_length(model, [128, 64]), [2876.47, 1399.46], atol=0.005)
    np.testing.assert_allclose(elasticbert_flops(config, np.array([128, 64])), [2876.47, 1399.46], atol=0.005)
