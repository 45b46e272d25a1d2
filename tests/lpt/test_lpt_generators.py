"""Prompt generators, pooling over real tokens, mask extension and config validation (pure units)."""

import pytest
import torch
import torch.nn.functional as F

from elue_hf.lpt import LPTConfig, build_prompt_generator, extend_attention_mask, generator_parameter_count
from elue_hf.lpt.config import normalize_generator_kind
from elue_hf.lpt.layer import masked_adaptive_pool, token_keep_mask


@pytest.mark.parametrize(
    "d, npg, ppg, none",
    [
        (1024, 791_680, 263_296, 20_480),  # RoBERTa-large / DeBERTa-large (paper 792K / 263K / 21K)
        (1280, 989_568, 329_088, 25_600),  # GPT2-large (paper 990K / 329K / 26K)
        (768, 593_792, 197_504, 15_360),  # BERT-base, ElasticBERT-base
        (384, 296_960, 98_816, 7_680),  # the offline MiniLM
    ],
)
def test_parameter_counts_match_spec_table(d, npg, ppg, none):
    assert generator_parameter_count("npg", d, 128, 5) == npg
    assert generator_parameter_count("appg", d, 128, 10) == ppg == generator_parameter_count("mppg", d, 128, 20)
    assert generator_parameter_count("none", d, 128, 20) == none


@pytest.mark.parametrize("kind, num", [("npg", 5), ("appg", 7), ("mppg", 3), ("none", 20)])
def test_modules_have_the_formula_parameter_count(kind, num):
    module = build_prompt_generator(kind, token_dim=48, bottleneck=16, num_tokens=num, dropout=0.1)
    assert sum(p.numel() for p in module.parameters()) == generator_parameter_count(kind, 48, 16, num)
    hidden = torch.randn(3, 9, 48)
    keep = torch.ones(3, 9, dtype=torch.bool)
    assert module(hidden, keep).shape == (3, num, 48)


def _reference_pool(x, keep, size, mode):
    rows = []
    for row, k in zip(x, keep):
        valid = row[k].T[None]  # (1, c, N)
        pool = F.adaptive_avg_pool1d if mode == "avg" else F.adaptive_max_pool1d
        rows.append(pool(valid, size)[0].T)
    return torch.stack(rows)


@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("size", [1, 3, 5, 8])
def test_masked_pool_equals_adaptive_pool_on_real_tokens(mode, size):
    torch.manual_seed(0)
    x = torch.randn(4, 7, 6)
    keep = torch.tensor(
        [
            [1, 1, 1, 1, 1, 1, 1],  # no padding
            [1, 1, 1, 1, 0, 0, 0],  # right padding
            [0, 0, 1, 1, 1, 1, 1],  # left padding
            [1, 1, 0, 0, 0, 0, 0],  # shorter than some output sizes: overlapping bins
        ],
        dtype=torch.bool,
    )
    torch.testing.assert_close(masked_adaptive_pool(x, keep, size, mode), _reference_pool(x, keep, size, mode))


def test_pooling_ignores_padding_values():
    torch.manual_seed(0)
    gen = build_prompt_generator("appg", 8, 4, 3, dropout=0.0)
    x = torch.randn(1, 6, 8)
    keep = torch.tensor([[1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    noisy = x.clone()
    noisy[:, 4:] = 1e4
    torch.testing.assert_close(gen(x, keep), gen(noisy, keep))
    with pytest.raises(ValueError, match="non-padding"):
        masked_adaptive_pool(x, torch.zeros(1, 6, dtype=torch.bool), 3, "avg")


def test_naive_generator_reads_the_first_real_token():
    torch.manual_seed(0)
    gen = build_prompt_generator("npg", 8, 4, 2, dropout=0.0)
    x = torch.randn(2, 5, 8)
    right = torch.tensor([[1, 1, 1, 0, 0]] * 2, dtype=torch.bool)
    left = torch.tensor([[0, 0, 1, 1, 1]] * 2, dtype=torch.bool)
    shifted = torch.roll(x, shifts=2, dims=1)
    torch.testing.assert_close(gen(x, right), gen(shifted, left))


def test_static_prompt_is_shared_by_all_instances():
    gen = build_prompt_generator("none", 8, 4, 3, dropout=0.0)
    out = gen(torch.randn(4, 5, 8), torch.ones(4, 5, dtype=torch.bool))
    assert torch.equal(out[0], out[3]) and torch.equal(out[0], gen.embedding.weight)


def _square(keep_row_major):
    """(b, 1, n, n) bool mask from a (b, n) keep matrix, as create_bidirectional_mask builds it."""
    b, n = keep_row_major.shape
    return keep_row_major[:, None, None, :].expand(b, 1, n, n).clone()


def test_extend_mask_all_forms():
    keep = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    assert extend_attention_mask(None, 3) is None
    square = _square(keep)
    ext = extend_attention_mask(square, 2)
    assert ext.shape == (2, 1, 6, 6) and ext.dtype == torch.bool
    assert ext[:, :, :, :2].all()  # everybody sees the prompt
    assert torch.equal(ext[0, 0, 0], torch.tensor([True, True, True, True, True, False]))  # prompt row: no pad key
    assert torch.equal(ext[:, :, 2:, 2:], square)
    additive = torch.zeros(2, 1, 4, 4).masked_fill(~square, torch.finfo(torch.float32).min)
    ext_f = extend_attention_mask(additive, 2)
    assert torch.equal(ext_f == 0, ext)  # same pattern as the boolean form
    broadcast = keep[:, None, None, :]
    ext_b = extend_attention_mask(broadcast, 2)
    assert ext_b.shape == (2, 1, 1, 6) and torch.equal(ext_b[:, :, 0], ext[:, :, 0])
    with pytest.raises(ValueError, match="4D"):
        extend_attention_mask(keep, 2)


def test_token_keep_mask_reads_every_form():
    keep = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    square = _square(keep)
    additive = torch.zeros(2, 1, 3, 3).masked_fill(~square, -1e9)
    for mask in (square, additive, keep.long()):
        assert torch.equal(token_keep_mask(mask, 2, 3), keep)
    assert token_keep_mask(None, 2, 3).all()


def test_config_validation_and_aliases():
    assert normalize_generator_kind("Naive") == "npg"
    assert normalize_generator_kind("max") == "mppg"
    assert normalize_generator_kind(None) == "none"
    assert LPTConfig(generator="average").generator == "appg"
    with pytest.raises(ValueError, match="Unknown LPT prompt generator 'lstm'"):
        LPTConfig(generator="lstm")
    with pytest.raises(ValueError, match="head_mode"):
        LPTConfig(head_mode="pooler")
    with pytest.raises(ValueError, match="num_prompt_tokens"):
        LPTConfig(num_prompt_tokens=0)
    with pytest.raises(ValueError, match="prompt_layer"):
        LPTConfig(prompt_layer=-1)
    with pytest.raises(ValueError, match="label_word_ids"):
        LPTConfig(head_mode="verbalizer", task_type="SEQ_CLS", mask_token_id=4)
    with pytest.raises(ValueError, match="task_type='SEQ_CLS'"):
        LPTConfig(head_mode="verbalizer", label_word_ids=[5, 6], mask_token_id=4)
