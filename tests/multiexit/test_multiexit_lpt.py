"""LPT on a multi-exit model of every family: only the generator and the exit classifiers train, exits below the
prompt layer are untouched, batched early exit equals one row at a time, save / load."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel, get_peft_model

import elue_hf  # noqa: F401
from elue_hf.elasticbert import prediction_entropy
from elue_hf.lpt import LPTConfig, LPTLayer
from elue_hf.multi_exit import MultiExitEncoder
from elue_hf.multiexit import MultiExitForSequenceClassification, convert_to_multi_exit
from tests.helpers.tiny_families import FAMILIES, padded_batch, tiny_classifier, tiny_config

K = 1  # the prompt goes in before layer 2 (0-based 1)


def _lpt(model):
    return get_peft_model(model, LPTConfig(task_type="SEQ_CLS", num_prompt_tokens=2, bottleneck_size=4, prompt_layer=K))


@pytest.fixture(scope="module", params=FAMILIES)
def base(request, tmp_path_factory):
    """A saved multi-exit model of one family whose fresh exits are sharp enough to exit at different layers."""
    folder = tmp_path_factory.mktemp(request.param)
    model = convert_to_multi_exit(tiny_classifier(request.param))
    with torch.no_grad():
        for head in model.classifiers[:-1]:
            head.weight.mul_(300.0)
    model.save_pretrained(folder)
    return folder


def test_only_the_generator_and_exit_heads_train(base):
    torch.manual_seed(0)
    pm = _lpt(MultiExitForSequenceClassification.from_pretrained(base))
    encoder = pm.base_model.model.multiexit.encoder
    assert isinstance(encoder, LPTLayer) and isinstance(encoder, MultiExitEncoder)
    ids, mask = padded_batch()
    out = pm(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 2, 1]))
    assert out.all_logits.shape == (4, 3, 3)
    out.loss.backward()
    grads = {n for n, p in pm.named_parameters() if p.grad is not None}
    assert grads and all(".lpt_generator." in n or ".classifiers." in n for n in grads)
    assert any(".lpt_generator." in n for n in grads)


def test_exits_below_the_prompt_are_untouched_and_batched_exit_is_exact(base):
    torch.manual_seed(0)
    pm = _lpt(MultiExitForSequenceClassification.from_pretrained(base)).eval()
    ids, mask = padded_batch(lengths=(9, 2, 6, 4, 9, 3), seed=1)
    with torch.no_grad():
        full = pm(input_ids=ids, attention_mask=mask).all_logits
        with pm.disable_adapter():
            plain = pm(input_ids=ids, attention_mask=mask).all_logits
    assert torch.allclose(full[:, 0], plain[:, 0], atol=1e-5) and not torch.allclose(full[:, 2], plain[:, 2])
    low, high = prediction_entropy(full[:, 0]).sort().values[2:4].tolist()
    kwargs = {"exit_criterion": "entropy", "entropy_threshold": (low + high) / 2}
    with torch.no_grad():
        batched = pm(input_ids=ids, attention_mask=mask, **kwargs)
        single = [pm(input_ids=ids[r : r + 1, : int(mask[r].sum())], **kwargs) for r in range(len(ids))]
    assert batched.exit_layer.tolist() == [int(s.exit_layer) for s in single]
    assert len(set(batched.exit_layer.tolist())) > 1
    assert torch.allclose(batched.logits, torch.cat([s.logits for s in single]), atol=1e-5)


def test_adapter_saves_and_loads(base, tmp_path):
    torch.manual_seed(0)
    pm = _lpt(MultiExitForSequenceClassification.from_pretrained(base)).eval()
    ids, mask = padded_batch()
    with torch.no_grad():
        expected = pm(input_ids=ids, attention_mask=mask).all_logits
    pm.save_pretrained(tmp_path / "adapter")
    loaded = PeftModel.from_pretrained(MultiExitForSequenceClassification.from_pretrained(base), tmp_path / "adapter")
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(input_ids=ids, attention_mask=mask).all_logits, expected, atol=1e-6)


# -- the prompt's positions and attention on DeBERTa (relative positions) and ModernBERT (rotary, sliding window) ----

POSITIONAL = ("deberta-v2", "modernbert")


def _prompted_layer_grads(family: str):
    """Gradients through layer K (a sliding-window layer for the tiny ModernBERT) of a prompted multi-exit model:
    d(last real token's output) / d(prompt), d(prompt rows' output) / d(last real token's input), and the input
    gradients of both at padding positions."""
    torch.manual_seed(0)
    pm = _lpt(convert_to_multi_exit(tiny_classifier(family))).eval()
    lpt, model = pm.base_model.model.multiexit.encoder, pm.base_model.model.multiexit
    ids, mask = padded_batch(lengths=(9, 6))
    hidden, layer_mask = model.embed(ids, mask)
    below = lpt.run_layer(0, hidden, layer_mask).detach().requires_grad_(True)
    prompts = []

    def keep_prompt(_module, _args, prompt):
        prompt.retain_grad()
        prompts.append(prompt)

    hook = lpt.lpt_generator["default"].register_forward_hook(keep_prompt)
    out = lpt.run_layer(K, below, layer_mask)
    hook.remove()
    assert out.shape == (2, 2 + 9, 32)  # the prompt rows travel with the sequence from layer K on
    weights = torch.randn(32)  # a random read-out: the sum of a post-LN (DeBERTa) output has no gradient
    ((out[0, 2 + 8] * weights).sum() + (out[1, 2 + 5] * weights).sum()).backward(retain_graph=True)
    prompt_grad = prompts[0].grad.abs().sum(dim=(1, 2))
    below_pad_grad = below.grad[1, 6:].abs().sum()
    below.grad = None
    (out[:, :2] * weights).sum().backward()
    last_token_grad = torch.stack([below.grad[0, 8].abs().sum(), below.grad[1, 5].abs().sum()])
    return prompt_grad, last_token_grad, below_pad_grad + below.grad[1, 6:].abs().sum()


@pytest.mark.parametrize("family", POSITIONAL)
def test_the_prompt_and_every_real_token_see_each_other(family):
    """The last real token (8 positions from the prompt; ModernBERT's window here is 2 each side) reads the prompt,
    the prompt reads it, and padding is read by neither."""
    if family == "modernbert":
        assert tiny_config(family).sliding_window < 8 and tiny_config(family).layer_types[K] == "sliding_attention"
    prompt_grad, last_token_grad, pad_grad = _prompted_layer_grads(family)
    assert bool((prompt_grad > 0).all()) and bool((last_token_grad > 0).all())
    assert float(pad_grad) == 0.0


def test_text_attention_is_unchanged_by_the_prompt_positions():
    """The prompt shifts the text right by l positions; relative (DeBERTa) and rotary (ModernBERT) attention between
    real tokens depends on differences only: with the prompt's own contribution masked out the text is unchanged."""
    from elue_hf.multiexit.adapters import adapter_for

    for family in POSITIONAL:
        torch.manual_seed(0)
        model = convert_to_multi_exit(tiny_classifier(family)).eval().multiexit
        ids, mask = padded_batch(lengths=(9, 6))
        hidden, layer_mask = model.embed(ids, mask)
        adapter, backbone = adapter_for(family), model.backbone
        with torch.no_grad():
            plain = adapter.run_layer(backbone, K, hidden, layer_mask)
            shifted = torch.cat([torch.randn(2, 2, 32), hidden], dim=1)
            hidden_mask = torch.cat([torch.zeros(2, 1, 1, 2, dtype=torch.bool), layer_mask], dim=-1)
            moved = adapter.run_layer(backbone, K, shifted, hidden_mask)[:, 2:]
        valid = mask.bool()
        assert torch.allclose(plain[valid], moved[valid], atol=1e-5), family


def test_a_deberta_convolution_needs_the_prompt_after_layer_one():
    model = convert_to_multi_exit(tiny_classifier("deberta-v2"))
    with pytest.raises(ValueError, match="prompt_layer >= 1"):
        get_peft_model(model, LPTConfig(task_type="SEQ_CLS", num_prompt_tokens=2, bottleneck_size=4, prompt_layer=0))


@pytest.mark.parametrize("family", POSITIONAL)
def test_a_few_training_steps_lower_the_loss(family):
    torch.manual_seed(0)
    pm = _lpt(convert_to_multi_exit(tiny_classifier(family))).eval()  # no dropout: the loss curve is the steps'
    ids, mask = padded_batch(lengths=(9, 5, 7, 3))
    labels = torch.tensor([0, 1, 2, 1])
    generator = [p for n, p in pm.named_parameters() if ".lpt_generator." in n]
    before = [p.detach().clone() for p in generator]
    optimizer = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(10):
        loss = pm(input_ids=ids, attention_mask=mask, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    # the tiny random encoders give near-identical [CLS] states, so the loss (three exits) moves towards the
    # label-prior floor (3 x 1.04) rather than to zero
    assert min(losses[-3:]) < losses[0] - 0.1, losses
    assert all(not torch.equal(a, p) for a, p in zip(before, generator))
