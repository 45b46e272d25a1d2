"""ElasticBERT: registration, static vs dynamic exits, batched early exit, gradient equilibrium, errors."""

import math

import pytest
import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

import elue_hf
from elue_hf import (
    ElasticBertConfig,
    ElasticBertForMaskedLM,
    ElasticBertForPreTraining,
    ElasticBertForSequenceClassification,
    ElasticBertModel,
)
from elue_hf.elasticbert import exit_layers_from_logits, gradient_rescale, prediction_entropy
from elue_hf.elasticbert.training import exit_metrics, set_training_stage
from tests.helpers.elasticbert import padded_batch, tiny_config


def _model(**overrides):
    torch.manual_seed(0)
    return ElasticBertForSequenceClassification(tiny_config(**overrides)).eval()


# ---------------------------------------------------------------------------------------------------- registration


def test_auto_classes_resolve_elasticbert():
    elue_hf.register_elasticbert()  # idempotent
    elue_hf.register_elasticbert()
    fields = {k: v for k, v in tiny_config().to_dict().items() if k != "model_type"}
    cfg = AutoConfig.for_model("elasticbert", **fields)
    assert isinstance(cfg, ElasticBertConfig)
    for auto, cls in [
        (AutoModel, ElasticBertModel),
        (AutoModelForSequenceClassification, ElasticBertForSequenceClassification),
        (AutoModelForMaskedLM, ElasticBertForMaskedLM),
        (AutoModelForPreTraining, ElasticBertForPreTraining),
    ]:
        assert type(auto.from_config(cfg)) is cls


def test_config_accepts_legacy_keys_and_validates():
    cfg = ElasticBertConfig(gradient_checkpointing=False, use_cache=True, some_future_key=3)
    assert cfg.num_output_layers == 12 and cfg.max_output_layers == 12 and cfg.layer_norm_eps == 1e-12
    assert cfg.exit_layer_indices == list(range(12))
    with pytest.raises(ValueError, match="num_hidden_layers=13 is out of range"):
        ElasticBertConfig(num_hidden_layers=13)
    with pytest.raises(ValueError, match="num_output_layers=5 must be between 1 and num_hidden_layers=4"):
        ElasticBertConfig(num_hidden_layers=4, num_output_layers=5)
    with pytest.raises(ValueError, match="Unknown exit_criterion 'confidence'"):
        ElasticBertConfig(exit_criterion="confidence")
    with pytest.raises(ValueError, match="Unknown multi_exit_training"):
        ElasticBertConfig(multi_exit_training="mean")


def test_layer_norm_eps_round_trips(tmp_path):
    model = _model(layer_norm_eps=1e-8)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert loaded.config.layer_norm_eps == 1e-8
    assert loaded.elasticbert.encoder.layer[0].output.LayerNorm.eps == 1e-8
    assert loaded.elasticbert.embeddings.LayerNorm.eps == 1e-8


# ---------------------------------------------------------------------------------------------------- forward


def test_model_returns_every_exit():
    model = ElasticBertModel(tiny_config(num_output_layers=3)).eval()
    ids, mask = padded_batch()
    out = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert len(out.exit_hidden_states) == 3 and len(out.exit_pooled_outputs) == 3
    assert len(out.hidden_states) == 5  # embeddings + 4 layers
    assert torch.equal(out.last_hidden_state, out.hidden_states[-1])
    assert torch.equal(out.exit_hidden_states[0], out.hidden_states[2])  # exits on layers 2, 3, 4
    assert torch.equal(out.pooler_output, out.exit_pooled_outputs[-1])
    assert out.pooler_output.shape == (ids.shape[0], 32)
    assert model(input_ids=ids, attention_mask=mask, return_dict=False)[0].shape == out.last_hidden_state.shape


def test_static_k_equals_dynamic_exit_k():
    dynamic = _model()
    ids, mask = padded_batch()
    all_logits = dynamic(input_ids=ids, attention_mask=mask).all_logits
    for k in (1, 2, 4):
        static = ElasticBertForSequenceClassification(tiny_config(num_hidden_layers=k, num_output_layers=1)).eval()
        state = {key: value for key, value in dynamic.state_dict().items() if not key.startswith("classifiers.")}
        state["classifier.weight"] = dynamic.classifiers[k - 1].weight
        state["classifier.bias"] = dynamic.classifiers[k - 1].bias
        missing, unexpected = static.load_state_dict(state, strict=False)
        assert missing == []
        assert all(key.startswith(("elasticbert.encoder.layer.", "elasticbert.encoder.pooler.")) for key in unexpected)
        out = static(input_ids=ids, attention_mask=mask)
        torch.testing.assert_close(out.logits, all_logits[:, k - 1], atol=1e-5, rtol=0)
        assert out.exit_layer.tolist() == [k] * ids.shape[0]


def test_entropy_is_shannon_entropy():
    logits = torch.randn(7, 4) * 3
    p = logits.softmax(-1)
    torch.testing.assert_close(prediction_entropy(logits), -(p * p.log()).sum(-1))
    # DeeBERT's closed form: log sum e^z - sum z e^z / sum e^z
    closed = torch.logsumexp(logits, -1) - (logits * logits.exp()).sum(-1) / logits.exp().sum(-1)
    torch.testing.assert_close(prediction_entropy(logits), closed)
    assert prediction_entropy(torch.tensor([[1000.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-6)


def _one_by_one(model, ids, mask, **kwargs):
    rows = []
    for r in range(ids.shape[0]):
        n = int(mask[r].sum())
        rows.append(model(input_ids=ids[r : r + 1, :n], attention_mask=mask[r : r + 1, :n], **kwargs))
    return torch.cat([o.logits for o in rows]), torch.cat([o.exit_layer for o in rows])


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(exit_criterion="entropy", entropy_threshold=1.0975),
        dict(exit_criterion="entropy", entropy_threshold=1.09),
        dict(exit_criterion="patience", patience=1),
        dict(exit_criterion="patience", patience=2),
    ],
)
@pytest.mark.slow
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_batched_early_exit_equals_batch_of_one(kwargs, attn):
    model = _model()
    model.set_attn_implementation(attn)
    ids, mask = padded_batch(batch_size=16, seed=3)
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, **kwargs)
        logits, layers = _one_by_one(model, ids, mask, **kwargs)
        full = model(input_ids=ids, attention_mask=mask).all_logits
    assert out.exit_layer.tolist() == layers.tolist()
    torch.testing.assert_close(out.logits, logits, atol=1e-5, rtol=0)
    # The chosen logits are those of the exit layer in a full pass.
    torch.testing.assert_close(out.logits, full[torch.arange(16), out.exit_layer - 1], atol=1e-5, rtol=0)
    assert out.all_logits is None


def test_entropy_rule_picks_first_confident_exit():
    model = _model()
    ids, mask = padded_batch(batch_size=16, seed=3)
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).all_logits
        threshold = float(prediction_entropy(full).median())
        out = model(input_ids=ids, attention_mask=mask, exit_criterion="entropy", entropy_threshold=threshold)
    expected = exit_layers_from_logits(full, [1, 2, 3, 4], "entropy", entropy_threshold=threshold).tolist()
    assert out.exit_layer.tolist() == expected
    assert len(set(expected)) > 1  # the test exercises rows leaving at different layers


def test_patience_rule_on_hand_built_logit_sequence():
    """patience p exits once p consecutive exits agree with their predecessor; disagreement resets the count."""
    preds = torch.tensor([[0, 1, 1, 1, 1, 1], [1, 0, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1], [0, 1, 0, 1, 0, 1]])
    all_logits = nn.functional.one_hot(preds, 2).float() * 5
    layers = [1, 2, 3, 4, 5, 6]
    got = exit_layers_from_logits(all_logits, layers, "patience", patience=2)
    assert got.tolist() == [4, 6, 3, 6]
    assert exit_layers_from_logits(all_logits, layers, "patience", patience=1).tolist() == [3, 5, 2, 6]
    # exits only on the top layers: counting starts at the first exit (layer 3 here)
    assert exit_layers_from_logits(all_logits[:, 2:], [3, 4, 5, 6], "patience", patience=1).tolist() == [4, 5, 4, 6]


def test_entropy_rule_on_hand_built_logits():
    confident, unsure = [4.0, 0.0], [0.1, 0.0]
    all_logits = torch.tensor([[unsure, confident, confident], [unsure, unsure, unsure], [confident, unsure, unsure]])
    got = exit_layers_from_logits(all_logits, [1, 2, 3], "entropy", entropy_threshold=0.2)
    assert got.tolist() == [2, 3, 1]


def test_patience_regression_variant_and_zero_patience():
    model = _model(num_labels=1)
    ids, mask = padded_batch(batch_size=8, seed=5)
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask).all_logits.squeeze(-1)
        no_exit = model(input_ids=ids, attention_mask=mask, exit_criterion="patience", patience=0)
        threshold = float((full[:, 1] - full[:, 0]).abs().median())
        out = model(
            input_ids=ids, attention_mask=mask, exit_criterion="patience", patience=1, regression_threshold=threshold
        )
    assert no_exit.exit_layer.tolist() == [4] * 8 and no_exit.all_logits is not None
    expected = exit_layers_from_logits(
        full[..., None], [1, 2, 3, 4], "patience", patience=1, regression_threshold=threshold
    ).tolist()
    assert out.exit_layer.tolist() == expected
    assert len(set(expected)) > 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(exit_criterion="confidence"), "Unknown exit_criterion 'confidence'.*e.g. model\\(\\*\\*batch, "
         "exit_criterion='entropy', entropy_threshold=0.3\\), or exit_criterion=None"),
        (dict(exit_criterion="Entropie"), "did you mean 'entropy'\\? e.g."),
        (dict(exit_criterion="pabee_patience"), "did you mean 'patience'\\? e.g. model\\(\\*\\*batch, "
         "exit_criterion='patience', patience=2\\)"),
        (dict(exit_criterion="entropy", entropy_threshold=-0.1), "entropy_threshold must be a finite number >= 0"),
        (dict(exit_criterion="entropy", entropy_threshold=math.nan), "entropy_threshold must be a finite number"),
        (dict(exit_criterion="patience", patience=4), "patience must be an integer between 0 and 3"),
        (dict(exit_criterion="patience", patience=-1), "patience must be an integer between 0 and 3"),
        (dict(exit_criterion="patience", patience=1.5), "patience must be an integer"),
    ],
)
def test_bad_exit_arguments(kwargs, message):
    model = _model()
    ids, mask = padded_batch(batch_size=2)
    with pytest.raises(ValueError, match=message):
        model(input_ids=ids, attention_mask=mask, **kwargs)


def test_entropy_rejected_for_regression_and_static_models():
    ids, mask = padded_batch(batch_size=2)
    with pytest.raises(ValueError, match="undefined for regression"):
        _model(num_labels=1)(input_ids=ids, attention_mask=mask, exit_criterion="entropy", entropy_threshold=0.1)
    static = _model(num_hidden_layers=2, num_output_layers=1)
    with pytest.raises(ValueError, match="needs a multi-exit model"):
        static(input_ids=ids, attention_mask=mask, exit_criterion="patience", patience=1)


def test_config_default_exit_and_override():
    model = _model(exit_criterion="patience", patience=1)
    ids, mask = padded_batch(batch_size=8, seed=2)
    with torch.no_grad():
        default = model(input_ids=ids, attention_mask=mask)
        off = model(input_ids=ids, attention_mask=mask, exit_criterion="none")
    assert default.all_logits is None and off.all_logits is not None
    assert off.exit_layer.tolist() == [4] * 8


# ---------------------------------------------------------------------------------------------------- training


class _ToyLayer(nn.Module):
    """A linear 'layer' (identity) so the gradient closed form ignores layer Jacobians."""

    def forward(self, hidden, mask=None):
        return hidden * 1.0


@pytest.mark.parametrize("num_output_layers", [4, 2])
def test_gradient_equilibrium_closed_form(num_output_layers):
    L = 4
    model = ElasticBertModel(tiny_config(num_output_layers=num_output_layers)).train()
    encoder = model.encoder
    encoder.layer = nn.ModuleList([_ToyLayer() for _ in range(L)])
    outputs = {}
    orig = encoder.run_layer

    def run_layer(i, hidden, mask):
        out = orig(i, hidden, mask)
        out.retain_grad()
        outputs[i] = out
        return out

    encoder.run_layer = run_layer
    h = torch.randn(2, 3, 32, requires_grad=True)
    out = encoder(h)
    coeffs = torch.randn(num_output_layers, 1, 1, 32)
    loss = sum((hid * c).sum() for hid, c in zip(out.exit_hidden_states, coeffs))
    loss.backward()
    # closed form: g_i = (c_i + (L - i - 1) g_{i+1}) / (L - i) at exit layers, g_i = g_{i+1} elsewhere
    exits = encoder.exit_layer_indices
    expected = {}
    for i in reversed(range(L)):
        if i in exits:
            c = coeffs[exits.index(i)].expand(2, 3, 32)
            g_next = expected.get(i + 1, torch.zeros(2, 3, 32))
            expected[i] = (c + (L - i - 1) * g_next) / (L - i)
        else:
            expected[i] = expected[i + 1]
    for i in range(L):
        torch.testing.assert_close(outputs[i].grad, expected[i])


def test_gradient_rescale_primitive_and_eval_mode():
    x = torch.randn(3, requires_grad=True)
    gradient_rescale(x, 0.25).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((3,), 0.25))
    y = gradient_rescale(x, 2.0)
    torch.testing.assert_close(y, x)


def test_multi_exit_losses():
    ids, mask = padded_batch(batch_size=4)
    labels = torch.tensor([0, 1, 2, 1])
    model = _model().train()
    model.dropout.p = 0.0
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    per_exit = torch.stack([nn.functional.cross_entropy(out.all_logits[:, j], labels) for j in range(4)])
    torch.testing.assert_close(out.exit_losses, per_exit)
    torch.testing.assert_close(out.loss, per_exit.sum())
    model.config.multi_exit_training = "weighted"
    weighted = model(input_ids=ids, attention_mask=mask, labels=labels)
    w = torch.tensor([1.0, 2, 3, 4])
    torch.testing.assert_close(weighted.loss, (w * weighted.exit_losses).sum() / w.sum())


@pytest.mark.slow
def test_two_stage_training_freezes_the_right_parts():
    model = _model().train()
    ids, mask = padded_batch(batch_size=4)
    labels = torch.tensor([0, 1, 2, 1])
    set_training_stage(model, 1)
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(out.loss, out.exit_losses[-1])
    out.loss.backward()
    assert model.elasticbert.encoder.layer[0].attention.self.query.weight.grad is not None
    assert model.classifiers[0].weight.grad is None
    model.zero_grad(set_to_none=True)
    set_training_stage(model, 2)
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(out.loss, out.exit_losses[:-1].sum())
    out.loss.backward()
    assert model.elasticbert.encoder.layer[0].attention.self.query.weight.grad is None
    assert model.classifiers[-1].weight.grad is None
    assert model.classifiers[0].weight.grad is not None
    with pytest.raises(ValueError, match="stage must be 1 or 2"):
        set_training_stage(model, 3)


def test_exit_metrics_average_over_exits():
    all_logits = torch.tensor([[[2.0, 0], [0, 2.0]], [[2.0, 0], [2.0, 0]]])
    metrics = exit_metrics(all_logits, [0, 1])
    assert metrics == {"exit_1_accuracy": 50.0, "exit_2_accuracy": 0.0, "average_exit_accuracy": 25.0}


@pytest.mark.slow
def test_trainer_fine_tunes_all_exits(tmp_path):
    from datasets import Dataset
    from transformers import Trainer, TrainingArguments

    ids, mask = padded_batch(batch_size=16, seed=9)
    labels = (ids[:, 1] % 3).tolist()
    data = Dataset.from_dict({"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "labels": labels})
    model = _model().train()
    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, per_device_eval_batch_size=8, max_steps=6,
        learning_rate=1e-3, use_cpu=True, report_to="none", save_strategy="no", logging_steps=1,
    )  # fmt: skip

    def compute_metrics(pred):
        _, _, all_logits = pred.predictions[:3]
        return exit_metrics(all_logits, pred.label_ids)

    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data, compute_metrics=compute_metrics)
    before = model.classifiers[0].weight.detach().clone()
    trainer.train()
    assert not torch.equal(before, model.classifiers[0].weight)
    metrics = trainer.evaluate()
    assert "eval_average_exit_accuracy" in metrics and math.isfinite(metrics["eval_loss"])


# ------------------------------------------------------------------------------------------------- pre-training heads


def test_pretraining_heads_layout_and_tying():
    model = ElasticBertForPreTraining(tiny_config())
    keys = set(model.state_dict())
    expected = {"predictions.bias", "predictions.transforms.3.dense.weight", "predictions.transforms.0.LayerNorm.bias"}
    assert expected <= keys
    assert "sop_classifier.classifiers.2.weight" in keys
    assert model.predictions.decoder.weight is model.elasticbert.embeddings.word_embeddings.weight
    assert model.predictions.decoder.bias is model.predictions.bias


@pytest.mark.slow
def test_pretraining_loss_over_exit_group():
    model = ElasticBertForPreTraining(tiny_config()).eval()
    ids, mask = padded_batch(batch_size=3)
    labels = torch.full_like(ids, -100)
    labels[:, 2] = ids[:, 2]
    sop = torch.tensor([0, 1, 0])
    out = model(input_ids=ids, attention_mask=mask, labels=labels, sentence_order_label=sop)
    assert out.exit_mlm_losses.shape == (4,) and out.exit_sop_losses.shape == (4,)
    torch.testing.assert_close(out.loss, out.exit_mlm_losses.sum() + out.exit_sop_losses.sum())
    group = model(input_ids=ids, attention_mask=mask, labels=labels, sentence_order_label=sop, exit_group=[2, 4])
    torch.testing.assert_close(group.exit_mlm_losses, out.exit_mlm_losses[[1, 3]])
    torch.testing.assert_close(group.loss, group.exit_mlm_losses.sum() + group.exit_sop_losses.sum())
    with pytest.raises(ValueError, match=r"exit_group names layers without an exit: \[7\]"):
        model(input_ids=ids, attention_mask=mask, labels=labels, exit_group=[7])
    mlm = ElasticBertForMaskedLM(tiny_config()).eval()
    mlm.load_state_dict(model.state_dict(), strict=False)
    mlm_out = mlm(input_ids=ids, attention_mask=mask, labels=labels)
    torch.testing.assert_close(mlm_out.loss, out.exit_mlm_losses.sum())
