"""The shared optimisation loop: settings, parameter groups, schedule, clipping, accelerate."""

import pytest
import torch
from transformers.modeling_outputs import SequenceClassifierOutput

from elue_hf.training import OptimizerSettings, param_groups, train_steps


class Regressor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(3, 3)
        self.head = torch.nn.Linear(3, 1)

    def forward(self, x, labels):
        pred = self.head(self.body(x)).squeeze(-1)
        return SequenceClassifierOutput(loss=torch.nn.functional.mse_loss(pred, labels), logits=pred)


def _data(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.3
    return [{"x": x[i : i + 16], "labels": y[i : i + 16]} for i in range(0, n, 16)]


def test_loss_goes_down_and_the_model_ends_in_eval_mode():
    torch.manual_seed(0)
    model = Regressor()
    losses = train_steps(model, _data(), OptimizerSettings(steps=200, learning_rate=3e-2, weight_decay=0.0))
    assert len(losses) == 200 and sum(losses[-10:]) < 0.05 * sum(losses[:10])
    assert not model.training


def test_settings_are_checked_and_warmup_is_a_fraction_or_steps():
    assert OptimizerSettings(steps=100, learning_rate=1e-3, warmup=0.06).warmup_steps == 6
    assert OptimizerSettings(steps=100, learning_rate=1e-3, warmup=10).warmup_steps == 10
    assert OptimizerSettings(steps=3, learning_rate=1e-3, warmup=0.06).warmup_steps == 1
    for bad in ({"steps": 0}, {"learning_rate": 0.0}, {"warmup": -1}):
        with pytest.raises(ValueError):
            OptimizerSettings(**{"steps": 10, "learning_rate": 1e-3, **bad})


def test_param_groups_scale_the_heads_and_skip_frozen_parameters():
    model = Regressor()
    model.body.bias.requires_grad_(False)
    body, heads = param_groups(model, 1e-3, head_lr_scale=5.0, is_head=lambda n: n.startswith("head."))
    assert body["lr"] == 1e-3 and heads["lr"] == 5e-3
    assert [p.shape for p in body["params"]] == [torch.Size([3, 3])] and len(heads["params"]) == 2
    assert len(param_groups(model, 1e-3)[0]["params"]) == 3


def test_frozen_parameters_do_not_move_and_nothing_to_train_is_an_error():
    model = Regressor()
    model.body.requires_grad_(False)
    before = model.body.weight.clone()
    train_steps(model, _data(), OptimizerSettings(steps=5, learning_rate=1e-2))
    assert torch.equal(model.body.weight, before)
    model.head.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        train_steps(model, _data(), OptimizerSettings(steps=1, learning_rate=1e-2))


def test_batches_are_cycled_and_on_step_sees_every_step():
    seen = []
    train_steps(Regressor(), _data(n=32), OptimizerSettings(steps=5, learning_rate=1e-3),
                on_step=lambda step, loss, batch: seen.append((step, batch["x"].shape[0])))
    assert seen == [(0, 16), (1, 16), (2, 16), (3, 16), (4, 16)]
    with pytest.raises(ValueError, match="ran out of batches"):
        train_steps(Regressor(), [], OptimizerSettings(steps=1, learning_rate=1e-3))


def test_the_accelerate_path_gives_the_same_steps_on_one_cpu_process():
    from accelerate import Accelerator

    settings = OptimizerSettings(steps=20, learning_rate=1e-2)
    torch.manual_seed(1)
    plain = train_steps(Regressor(), _data(), settings)
    torch.manual_seed(1)
    accelerated = train_steps(Regressor(), _data(), settings, accelerator=Accelerator(cpu=True))
    assert plain == pytest.approx(accelerated, rel=1e-6)


def test_a_batch_given_as_micro_batches_makes_the_same_update_as_the_whole_batch():
    """A step's batch may come as a list of micro-batches (e.g. its rows split by length, less padding): each
    micro-batch's mean loss is weighted by its rows, so the update equals the whole batch's (unequal sizes too)."""
    whole = _data(n=48)
    split = [[{k: v[:5] for k, v in b.items()}, {k: v[5:] for k, v in b.items()}] for b in whole]
    models = []
    for batches in (whole, split):
        torch.manual_seed(0)
        model = Regressor()
        losses = train_steps(model, batches, OptimizerSettings(steps=3, learning_rate=1e-2))
        models.append((model, losses))
    (a, loss_a), (b, loss_b) = models
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_a_single_batch_needs_no_tensor_first_and_a_micro_batch_without_tensors_is_refused():
    torch.manual_seed(0)
    model = Regressor()
    batches = [{"labels": b["labels"], "x": b["x"]} for b in _data()]  # any argument order, one dict per step
    assert len(train_steps(model, batches, OptimizerSettings(steps=2, learning_rate=1e-2))) == 2
    with pytest.raises(ValueError, match="at least one tensor"):
        train_steps(model, [[{"x": 1.0, "labels": 2.0}]], OptimizerSettings(steps=1, learning_rate=1e-2))
