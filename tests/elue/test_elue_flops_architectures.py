"""ELUE FLOPs of DistilBERT, ALBERT, DeBERTa-v2, ModernBERT and the generic route: analytic == hooked, padded
batches, several lengths, FlopCounterMode cross-checks of each family's extra terms, module spec consistency."""

import numpy as np
import pytest
import torch
from transformers import (
    AlbertConfig,
    AlbertForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    DebertaV2Config,
    DebertaV2ForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    ElectraConfig,
    ElectraForSequenceClassification,
    MobileBertConfig,
    MobileBertForSequenceClassification,
    ModernBertConfig,
    ModernBertForSequenceClassification,
    XLMRobertaConfig,
    XLMRobertaForSequenceClassification,
)

from elue_hf.elue.flops import (
    ElueFlopsCounter,
    bert_classifier_flops,
    dims_from_config,
    hooked_flops_by_length,
    model_flops,
)
from elue_hf.elue.flops.architectures import (
    EncoderShape,
    UnsupportedArchitecture,
    attention_pairs,
    encoder_shape,
    encoder_shape_macs,
)
from elue_hf.elue.flops.architectures.generic import GenericShape, generic_flops_by_length
from elue_hf.elue.flops.module_spec import (
    ModulesError,
    encoder_modules,
    module_spec_from_config,
    modules_macs,
    validate_module_spec,
)

COMMON = dict(vocab_size=100, num_labels=3, max_position_embeddings=64)
SMALL = dict(hidden_size=32, num_attention_heads=4, intermediate_size=48)


def _distilbert():
    return DistilBertConfig(dim=32, hidden_dim=48, n_heads=4, n_layers=2, **COMMON), DistilBertForSequenceClassification


def _albert():
    cfg = AlbertConfig(embedding_size=16, num_hidden_layers=3, num_hidden_groups=1, inner_group_num=2, **SMALL,
                       **COMMON)
    return cfg, AlbertForSequenceClassification


def _deberta_v3():  # v3 layout: buckets, shared keys, rel-embedding LayerNorm; plus embedding projection and conv
    cfg = DebertaV2Config(num_hidden_layers=2, relative_attention=True, position_buckets=8, pos_att_type="p2c|c2p",
                          norm_rel_ebd="layer_norm", share_att_key=True, embedding_size=16, conv_kernel_size=3,
                          **SMALL, **COMMON)
    return cfg, DebertaV2ForSequenceClassification


def _deberta_v2_c2p():  # separate position projection, c2p only, no LayerNorm on the relative embeddings
    cfg = DebertaV2Config(num_hidden_layers=2, relative_attention=True, max_relative_positions=6, pos_att_type="c2p",
                          share_att_key=False, **SMALL, **COMMON)
    return cfg, DebertaV2ForSequenceClassification


def _modernbert():
    cfg = ModernBertConfig(num_hidden_layers=4, local_attention=8, global_attn_every_n_layers=2, pad_token_id=0,
                           bos_token_id=1, eos_token_id=2, cls_token_id=1, sep_token_id=2, **SMALL, **COMMON)
    return cfg, ModernBertForSequenceClassification


def _electra():
    return ElectraConfig(embedding_size=16, num_hidden_layers=2, **SMALL, **COMMON), ElectraForSequenceClassification


def _xlm_roberta():
    cfg = XLMRobertaConfig(num_hidden_layers=2, pad_token_id=1, **SMALL, **COMMON)
    return cfg, XLMRobertaForSequenceClassification


FAMILIES = {
    "distilbert": _distilbert,
    "electra": _electra,
    "xlm-roberta": _xlm_roberta,
    "albert": _albert,
    "deberta-v3": _deberta_v3,
    "deberta-v2-c2p": _deberta_v2_c2p,
    "modernbert": _modernbert,
}


def _model(family):
    cfg, cls = FAMILIES[family]()
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    return cls(cfg).eval()


def _padded(lengths, vocab=100):
    g = torch.Generator().manual_seed(1)
    width = max(lengths)
    ids = torch.randint(5, vocab, (len(lengths), width), generator=g)
    mask = (torch.arange(width)[None] < torch.tensor(lengths)[:, None]).long()
    return ids * mask, mask


# ------------------------------------------------------------------------------- analytic == hooked


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_hooked_equals_analytic_per_instance_padded_batch(family):
    model = _model(family)
    lengths = [3, 9, 17, 30, 1]
    ids, mask = _padded(lengths)
    with torch.no_grad(), ElueFlopsCounter(model) as counter:
        model(input_ids=ids, attention_mask=mask)
    analytic = model_flops(model.config, np.array(lengths))
    np.testing.assert_allclose(counter.per_instance_mflops, analytic, rtol=0.01)  # the task's tolerance
    np.testing.assert_allclose(counter.per_instance_mflops, analytic, rtol=1e-12)  # in fact exact
    # one length at a time, unpadded (the route hooked_flops_by_length takes) gives the same numbers
    np.testing.assert_allclose(hooked_flops_by_length(model, lengths), analytic, rtol=1e-12)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_module_spec_and_modules_reproduce_analytic(family):
    cfg, _ = FAMILIES[family]()
    shape = encoder_shape(cfg)
    spec = validate_module_spec(module_spec_from_config(cfg))
    assert spec == validate_module_spec(module_spec_from_config(shape))
    for n in (1, 7, 40):
        got = 2 * modules_macs(encoder_modules(shape, n), spec) / 1e6
        assert got == pytest.approx(model_flops(cfg, n), rel=1e-12)


# ------------------------------------------------------------------------------- family rules, spelled out


def _deberta_v3_base():
    return DebertaV2Config(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                           relative_attention=True, position_buckets=256, max_relative_positions=-1,
                           pos_att_type="p2c|c2p", share_att_key=True, norm_rel_ebd="layer_norm", type_vocab_size=0,
                           position_biased_input=False, max_position_embeddings=512, num_labels=2)


@pytest.mark.parametrize("name, config, lengths, expected", [
    ("distilbert-base", lambda: DistilBertConfig(num_labels=2), [128], [11184.638976]),
    ("albert-base-v2", lambda: AlbertConfig(embedding_size=128, hidden_size=768, num_attention_heads=12,
                                            intermediate_size=3072, num_labels=2), [128], [22392.54016]),
    ("modernbert-base", lambda: ModernBertConfig(hidden_size=768, intermediate_size=1152, num_hidden_layers=22,
                                                 num_attention_heads=12, local_attention=128, num_labels=2),
     [128, 512], [29203.41504, 122262.564864]),
])
def test_worked_values_real_shapes_hooked_on_meta(name, config, lengths, expected):
    from transformers import AutoModelForSequenceClassification

    cfg = config()
    cfg._attn_implementation = "eager"
    np.testing.assert_allclose(model_flops(cfg, np.array(lengths)), expected, rtol=1e-12)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(cfg)
    np.testing.assert_allclose(hooked_flops_by_length(model, lengths), expected, rtol=1e-12)


def test_deberta_v3_base_worked_values():
    cfg = _deberta_v3_base()
    np.testing.assert_allclose(model_flops(cfg, np.array([27, 128])), [19624.424544, 39287.786496], rtol=1e-12)
    projections = 2 * 512 * 768**2 * 12  # share_att_key: query_proj and key_proj on the 512 relative rows
    shape = encoder_shape(cfg)
    assert shape.layers[0].rel_positions == 512 and shape.shared_norm_rows == 512
    assert 2 * projections / 1e6 == pytest.approx(14495.514624)


def test_distilbert_equals_bert_of_the_same_shape():
    cfg, _ = _distilbert()
    bert = BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=48, num_hidden_layers=2, num_labels=3)
    lengths = np.array([1, 5, 64])
    np.testing.assert_allclose(model_flops(cfg, lengths), bert_classifier_flops(bert, lengths), rtol=1e-15)


def test_electra_is_bert_with_an_embedding_projection():
    cfg, _ = _electra()
    bert = BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=48, num_hidden_layers=2, num_labels=3)
    n = 9
    extra = n * 16 * 32 + 2 * n * 16 - 2 * n * 32  # E -> d projection; embedding LayerNorm over E = 16, not d
    assert model_flops(cfg, n) == pytest.approx(bert_classifier_flops(bert, n) + 2 * extra / 1e6, rel=1e-15)


def test_albert_counts_shared_layers_per_use_and_the_projection():
    cfg, _ = _albert()
    bert = BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=48, num_hidden_layers=6, num_labels=3)
    n = 11
    # 3 layer groups x 2 inner layers = 6 layer uses; embedding LN over E=16 instead of d=32; E -> d projection
    extra = n * 16 * 32 + 2 * n * 16 - 2 * n * 32
    assert model_flops(cfg, n) == pytest.approx(bert_classifier_flops(bert, n) + 2 * extra / 1e6, rel=1e-15)
    assert encoder_shape(cfg).num_layers == 6


def test_modernbert_true_window_pairs():
    assert attention_pairs(5) == 25
    assert attention_pairs(5, window=10) == 25  # window wider than the sequence: global
    assert attention_pairs(5, window=1) == 13  # 5 self + 2 x 4 neighbours
    assert attention_pairs(5, window=0) == 5
    brute = [sum(abs(i - j) <= 3 for i in range(n) for j in range(n)) for n in range(1, 12)]
    assert list(attention_pairs(np.arange(1, 12), 3)) == brute
    cfg, _ = _modernbert()
    shape = encoder_shape(cfg)
    assert [layer.window for layer in shape.layers] == [None, 4, None, 4]  # sliding_window = local_attention // 2
    assert [layer.norms for layer in shape.layers] == [1, 2, 2, 2] and shape.final_norm and shape.exit.norm


def _flop_counter(model, n, custom=None):
    from torch.utils.flop_counter import FlopCounterMode

    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=custom or {}) as fc:
        model(input_ids=torch.full((1, n), 7), attention_mask=torch.ones(1, n, dtype=torch.long))
    return fc.get_total_flops()


@pytest.mark.slow
@pytest.mark.parametrize("family", ["deberta-v3", "deberta-v2-c2p"])
@pytest.mark.parametrize("n", [4, 13, 40])
def test_deberta_matmuls_match_flop_counter_exactly(family, n):
    """FlopCounterMode counts exactly the matrix products transformers runs; ELUE adds LayerNorms, softmax and the
    scales. So analytic - (those terms) must equal the counter: this checks the derived c2p/p2c rule."""
    model = _model(family)
    cfg = model.config
    shape = encoder_shape(cfg)
    layer = shape.layers[0]
    d, h, L = layer.d, layer.heads, shape.num_layers
    terms = int(layer.c2p) + int(layer.p2c)
    norms = 2 * n * d + 2 * shape.shared_norm_rows * d + L * 2 * (2 * n * d) + (2 * n * d if shape.conv else 0)
    scales_softmax = L * (n * d + terms * h * n * n + h * n * n)
    elementwise = norms + scales_softmax
    assert 2 * (encoder_shape_macs(n, shape) - elementwise) == _flop_counter(model, n)


@pytest.mark.slow
@pytest.mark.parametrize("n", [3, 5, 9, 30])
def test_modernbert_matmuls_match_flop_counter_with_the_window(n):
    """Eager ModernBERT computes full n x n scores and masks them; ELUE counts the true window."""
    model = _model("modernbert")
    shape = encoder_shape(model.config)
    d, h = 32, 4
    masked = sum(n * n - attention_pairs(n, layer.window) for layer in shape.layers)  # pairs the mask removes
    norms = 2 * n * d * (1 + sum(layer.norms for layer in shape.layers) + 1) + 2 * d  # emb, layers, final, head
    scale_softmax = sum(2 * h * attention_pairs(n, layer.window) for layer in shape.layers)
    elue_matmuls = encoder_shape_macs(n, shape) - norms - scale_softmax
    assert _flop_counter(model, n) == 2 * (elue_matmuls + masked * 2 * d)


# ------------------------------------------------------------------------------- generic route


@pytest.mark.slow
@pytest.mark.parametrize("family", ["distilbert", "albert", "deberta-v3", "modernbert"])
def test_generic_route_close_to_family_rules(family):
    model = _model(family)
    lengths = [2, 4, 9]  # ModernBERT: within the window, so no masked work
    got = generic_flops_by_length(model, lengths)
    assert got.route == "generic" and got.attn_implementation == "eager"
    np.testing.assert_allclose(got.mflops, model_flops(model.config, np.array(lengths)), rtol=0.01)
    assert all(p.requires_grad for p in model.parameters())  # restored


def test_generic_route_exact_for_bert_and_usable_for_unregistered_mobilebert():
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
    bert = BertForSequenceClassification(cfg).eval()
    np.testing.assert_allclose(generic_flops_by_length(bert, [5, 9, 5]).mflops, model_flops(cfg, [5, 9, 5]),
                               rtol=1e-12)
    mobile_cfg = MobileBertConfig(vocab_size=100, hidden_size=64, embedding_size=32, intra_bottleneck_size=16,
                                  true_hidden_size=16, num_attention_heads=2, intermediate_size=32,
                                  num_hidden_layers=2, num_feedforward_networks=2, num_labels=2)
    mobile = MobileBertForSequenceClassification(mobile_cfg).eval()
    with pytest.raises(UnsupportedArchitecture, match="mobilebert"):
        encoder_shape(mobile_cfg)
    generic = GenericShape(mobile)
    first = generic.mflops([6, 11, 6])
    assert generic.route == "generic" and first[0] == first[2] and first[1] > first[0] > 0
    np.testing.assert_array_equal(generic.mflops([11]), first[1:2])  # cached per length


# ------------------------------------------------------------------------------- specs and dispatch


def test_old_specs_stay_valid_and_unchanged():
    old = {"emb": {"kind": "embedding", "d": 768},
           "layer_1": {"kind": "layer", "d": 768, "d_ff": 3072, "heads": 12},
           "exit_1": {"kind": "exit", "d": 768, "labels": 2}}
    clean = validate_module_spec(old)
    assert clean["exit_1"] == {"kind": "exit", "d": 768, "labels": 2, "pooler": True}
    assert clean["layer_1"] == old["layer_1"]
    assert modules_macs("(128),emb; (128,768),layer_1; (64,128,768),layer_1; (768),exit_1", clean) > 0


def test_bert_family_shape_equals_model_dims_route():
    cfg = BertConfig(num_labels=2)
    shape = encoder_shape(cfg)
    assert isinstance(shape, EncoderShape)
    assert model_flops(shape, 128) == pytest.approx(22367.702016, abs=1e-6)
    assert module_spec_from_config(shape) == module_spec_from_config(cfg)


def test_variant_specs_are_checked():
    base = {"kind": "layer", "d": 32, "d_ff": 48, "heads": 4}
    with pytest.raises(ModulesError, match="'glu' must be true or false"):
        validate_module_spec({"l": {**base, "glu": 1}})
    with pytest.raises(ModulesError, match="need rel_positions"):
        validate_module_spec({"l": {**base, "c2p": True}})
    with pytest.raises(ModulesError, match="unknown fields"):
        validate_module_spec({"l": {**base, "windows": 4}})
    spec = validate_module_spec({"l": {**base, "window": 4, "glu": True}})
    with pytest.raises(ModulesError, match="no token-level"):
        modules_macs("(3,9,32),l", spec)
    with pytest.raises(ModulesError, match="not divisible by groups"):
        validate_module_spec({"c": {"kind": "conv1d", "in": 30, "out": 30, "kernel": 3, "groups": 4}})


def test_flops_shape_dispatch():
    from elue_hf.elue.flops import flops_shape
    from elue_hf.elue.flops.analytic import ModelDims

    assert isinstance(flops_shape(BertConfig()), ModelDims)
    assert flops_shape(_modernbert()[0]).family == "modernbert"
    with pytest.raises(UnsupportedArchitecture, match="needs the model"):
        flops_shape(MobileBertConfig())


def test_dims_from_config_refuses_other_families_and_token_exit_is_bert_only():
    cfg, _ = _modernbert()
    with pytest.raises(ValueError, match="encoder_shape"):
        dims_from_config(cfg)
    with pytest.raises(ValueError, match="active_tokens"):
        model_flops(cfg, 5, active_tokens=np.array([5, 5, 5, 5]))
