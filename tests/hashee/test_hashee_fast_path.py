"""The batch-1 skip path and the packed-row product (docs/hashee.md, "Batch 1") equal the reference mode."""

import pytest
import torch
from torch import nn

from elue_hf.elue.flops import ElueFlopsCounter
from elue_hf.hashee import apply_hashee, get_hashee, set_hashee_mode
from elue_hf.hashee.layer import TRANSPOSED_PRODUCT_ROWS, ActiveTokenAttention, packed_linear
from elue_hf.methods.hashee_flops import classifier_flops, last_active_counts

from .test_hashee_model import V, bert, elasticbert, logits_both_modes, roberta, scaled, table_for
from .test_hashee_seq2seq import gen, setup


def one_row(seed, n=20, pad=0, cls=1, length=None):
    """Batch 1: random ids, [CLS] first; ``length`` < n pads the tail."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, V, (1, n), generator=g)
    ids[0, 0] = cls
    mask = torch.ones_like(ids)
    if length is not None:
        mask[0, length:] = 0
        ids[mask == 0] = pad
    return ids, mask


def packed_rows_per_layer(model):
    plan = get_hashee(model).plan
    return [plan.step(layer).total for layer in range(2, plan.num_layers + 1) if plan.totals[layer - 1]]


@pytest.mark.parametrize("make,pad", [(bert, 0), (roberta, 1), (elasticbert, 0)])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("length", [None, 14])
def test_batch_one_equals_reference(make, pad, attn, length):
    torch.manual_seed(0)
    model = scaled(make()).eval()
    model.set_attn_implementation(attn)
    apply_hashee(model, table_for(model))
    for seed in range(3):
        ids, mask = one_row(seed, pad=pad, cls=0 if pad == 1 else 1, length=length)
        skip, ref = logits_both_modes(model, ids, mask)
        assert torch.allclose(skip, ref, atol=1e-5), (skip - ref).abs().max()
        plan = get_hashee(model).plan
        steps = [plan.step(layer) for layer in range(2, plan.num_layers + 1)]
        assert all(step.slot_index is None for step in steps)  # the batch-1 path ran: no scatter into a block
        assert plan.m_max[-1] < int(mask.sum())  # and tokens were skipped


def leaf_calls(monkeypatch):
    """Counts the calls of the attention leaf (the general path; the lean batch-1 block does not call it)."""
    calls = []
    real = ActiveTokenAttention.forward

    def spy(self, *args, **kwargs):
        calls.append(args[2].shape[0])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(ActiveTokenAttention, "forward", spy)
    return calls


@pytest.mark.parametrize("length", [None, 14])
def test_batch_one_inference_runs_the_lean_block_and_equals_reference(monkeypatch, length):
    torch.manual_seed(0)
    model = scaled(bert()).eval()
    apply_hashee(model, table_for(model))
    calls = leaf_calls(monkeypatch)
    ids, mask = one_row(2, length=length)
    with torch.inference_mode():
        skip, ref = logits_both_modes(model, ids, mask)
    assert torch.allclose(skip, ref, atol=1e-5), (skip - ref).abs().max()
    assert calls == []  # SDPA, eval, no hooks: direct torch calls, no attention leaf
    model(input_ids=torch.cat([ids, ids]), attention_mask=torch.cat([mask, mask]))
    assert calls and set(calls) == {2}  # batch 2 takes the general path


@pytest.mark.parametrize("case", ["eager", "training", "hooked layer norm"])
def test_the_lean_block_steps_aside(monkeypatch, case):
    torch.manual_seed(0)
    model = scaled(bert(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).eval()
    if case == "eager":
        model.set_attn_implementation("eager")
    apply_hashee(model, table_for(model))
    seen = []
    if case == "training":
        model.train()
    elif case == "hooked layer norm":
        for layer in model.bert.encoder.layer:
            layer.output.LayerNorm.register_forward_hook(lambda module, args, output: seen.append(output.shape))
    calls = leaf_calls(monkeypatch)
    skip, ref = logits_both_modes(model, *one_row(3))
    assert torch.allclose(skip, ref, atol=1e-5), (skip - ref).abs().max()
    assert calls  # the general path ran
    assert case != "hooked layer norm" or seen


def test_batch_one_keeps_pads_out_of_the_queries():
    model = scaled(bert()).eval()
    apply_hashee(model, table_for(model))
    ids, mask = one_row(0, length=9)
    model(input_ids=ids, attention_mask=mask)
    plan = get_hashee(model).plan
    for layer in range(1, plan.num_layers + 1):
        assert (plan.step(layer).flat_index < 9).all()


def test_the_transposed_product_runs_and_changes_nothing(monkeypatch):
    torch.manual_seed(0)
    model = scaled(bert()).eval()
    apply_hashee(model, table_for(model))
    ids, mask = one_row(1, n=24)
    calls = []
    real = torch.addmm

    def spy(*args, **kwargs):
        calls.append(args[1].shape)
        return real(*args, **kwargs)

    skip, ref = logits_both_modes(model, ids, mask)
    assert torch.allclose(skip, ref, atol=1e-5)
    assert any(rows in TRANSPOSED_PRODUCT_ROWS for rows in packed_rows_per_layer(model))
    monkeypatch.setattr(torch, "addmm", spy)  # nn.Linear does not call it from Python: only packed_linear does
    model(input_ids=ids, attention_mask=mask)
    assert calls and all(shape == (64, 32) or shape == (32, 64) or shape == (32, 32) for shape in calls)


@pytest.mark.parametrize("rows", [1, 5, 7, 12, 15, 16, 40])
@pytest.mark.parametrize("bias", [True, False])
def test_packed_linear_equals_the_module(rows, bias):
    torch.manual_seed(rows)
    linear = nn.Linear(24, 56, bias=bias)
    x = torch.randn(1, rows, 24)
    assert torch.allclose(packed_linear(linear, x), linear(x), atol=1e-5)
    grads = []
    for fn in (packed_linear, lambda module, inputs: module(inputs)):
        xg = x.clone().requires_grad_()
        fn(linear, xg).square().sum().backward()
        grads.append((xg.grad, linear.weight.grad.clone()))
        linear.zero_grad()
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(*grads))


def test_packed_linear_leaves_hooked_and_other_modules_to_themselves():
    linear = nn.Linear(8, 8)
    x = torch.randn(1, 10, 8)
    seen = []
    handle = linear.register_forward_hook(lambda module, args, output: seen.append(output.shape))
    packed_linear(linear, x)
    handle.remove()
    assert seen == [torch.Size([1, 10, 8])]

    class Doubled(nn.Linear):
        def forward(self, inputs):
            return 2 * super().forward(inputs)

    doubled = Doubled(8, 8)
    assert torch.allclose(packed_linear(doubled, x), doubled(x))


def test_flops_counter_still_sees_every_packed_product():
    """The hooked ELUE counter hooks the Linear leaves, so they run as modules and count their true rows."""
    model = scaled(bert()).eval()
    apply_hashee(model, table_for(model))
    ids, mask = one_row(1, n=24)
    with torch.no_grad(), ElueFlopsCounter(model) as counter:
        model(input_ids=ids, attention_mask=mask)
    assert any(rows in TRANSPOSED_PRODUCT_ROWS for rows in packed_rows_per_layer(model))
    analytic = classifier_flops(model.config, mask.sum(1).numpy(), last_active_counts(model))
    assert counter.mflops == pytest.approx(analytic.sum(), rel=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["bart", "t5", "bert2bert"])
@pytest.mark.parametrize("beams", [1, 3])
def test_generate_at_batch_one_equals_reference(name, beams):
    model, table, pad, special = setup(name)
    apply_hashee(model, table)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(len(special), 90, (1, 18), generator=g)
    mask = torch.ones_like(ids)
    scores = dict(output_scores=True, return_dict_in_generate=True, num_beams=beams)
    skip = gen(model, ids, mask, **scores)
    assert get_hashee(model).plan.step(2).slot_index is None
    set_hashee_mode(model, "reference")
    ref = gen(model, ids, mask, **scores)
    assert torch.equal(skip.sequences, ref.sequences)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(skip.scores, ref.scores))
