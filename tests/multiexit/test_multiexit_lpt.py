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
from tests.helpers.tiny_families import FAMILIES, padded_batch, tiny_classifier

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
