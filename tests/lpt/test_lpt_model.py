"""LPT on BERT and RoBERTa through PEFT: insertion, masks, gradients, errors, save/load, unload, Trainer."""

import json

import pytest
import torch
from peft import AutoPeftModelForSequenceClassification, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import (
    BertForSequenceClassification,
    BertModel,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    RobertaForSequenceClassification,
)
from transformers.models.bert.modeling_bert import BertEncoder

import elue_hf.lpt.layer as lpt_layer
from elue_hf.lpt import LPTConfig, LPTLayer, generator_parameter_count
from tests.helpers.lpt import bert_config, padded_batch, roberta_config, trainable_names

BACKBONES = {
    "bert": (BertForSequenceClassification, bert_config, 0),
    "roberta": (RobertaForSequenceClassification, roberta_config, 1),
}


def _build(arch="bert", attn="sdpa", seed=0, **lpt):
    cls, make_config, _ = BACKBONES[arch]
    torch.manual_seed(seed)
    model = cls(make_config(attn=attn))
    torch.manual_seed(seed + 1)
    options = dict(task_type="SEQ_CLS", num_prompt_tokens=3, bottleneck_size=8, prompt_layer=2)
    options.update(lpt)
    return get_peft_model(model, LPTConfig(**options))


def _batch(arch="bert", **kwargs):
    pad = BACKBONES[arch][2]
    return padded_batch(pad_id=pad, first_id=0 if arch == "roberta" else 2, **kwargs)


@pytest.mark.parametrize("arch", ["bert", "roberta"])
@pytest.mark.parametrize("kind", ["npg", "appg", "mppg", "none"])
def test_only_generator_and_head_are_trainable(arch, kind):
    pm = _build(arch, generator=kind)
    head = pm.base_model.model.classifier.modules_to_save["default"]
    head_params = sum(p.numel() for p in head.parameters())
    expected = generator_parameter_count(kind, 32, 8, 3) + head_params
    trainable, _ = pm.get_nb_trainable_parameters()
    assert trainable == expected
    assert all(".lpt_generator." in n or ".classifier.modules_to_save." in n for n in trainable_names(pm))
    assert isinstance(pm.base_model.model.base_model.encoder, LPTLayer)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_gradients_reach_only_the_generator_and_head(arch):
    pm = _build(arch)
    ids, mask = _batch(arch)
    pm(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1, 0])).loss.backward()
    with_grad = {n for n, p in pm.named_parameters() if p.grad is not None}
    assert with_grad == trainable_names(pm)
    assert all(p.grad.abs().sum() > 0 for n, p in pm.named_parameters() if ".lpt_generator." in n)


def _saved_tensor_count(pm, ids, mask):
    count = 0

    def pack(t):
        nonlocal count
        count += 1
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        pm(input_ids=ids, attention_mask=mask, labels=torch.zeros(len(ids), dtype=torch.long)).loss.backward()
    return count


@pytest.mark.slow
def test_no_activations_are_stored_below_the_prompt_layer():
    ids, mask = _batch()
    pm = _build(prompt_layer=2)
    grad_flags = []
    for layer in pm.base_model.model.bert.encoder.base_layer.layer:
        layer.register_forward_hook(lambda mod, args, out: grad_flags.append(out.requires_grad))
    pm(input_ids=ids, attention_mask=mask).logits.sum().backward()
    assert grad_flags == [False, False, True, True]  # layers 1-2 run without autograd, 3-4 carry the prompt
    counts = [_saved_tensor_count(_build(prompt_layer=k), ids, mask) for k in (0, 1, 2, 3)]
    assert counts == sorted(counts, reverse=True) and len(set(counts)) == 4


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["bert", "roberta"])
@pytest.mark.parametrize("kind", ["npg", "mppg", "appg"])
def test_mask_forms_and_padding_give_identical_logits(arch, kind):
    ids, mask = _batch(arch)
    logits = {}
    for attn in ("sdpa", "eager"):  # boolean vs additive float mask
        pm = _build(arch, attn=attn, generator=kind).eval()
        with torch.no_grad():
            logits[attn] = pm(input_ids=ids, attention_mask=mask).logits
            # each row alone and unpadded (mask None inside the encoder) gives the same logits
            for r in range(len(ids)):
                n = int(mask[r].sum())
                alone = pm(input_ids=ids[r : r + 1, :n]).logits
                torch.testing.assert_close(alone[0], logits[attn][r], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits["sdpa"], logits["eager"], atol=1e-5, rtol=1e-5)


def test_zero_prompt_hidden_by_the_mask_equals_the_frozen_backbone(monkeypatch):
    torch.manual_seed(0)
    base = BertModel(bert_config(attn="eager")).eval()
    ids, mask = _batch()
    with torch.no_grad():
        expected = base(input_ids=ids, attention_mask=mask).last_hidden_state
    pm = get_peft_model(base, LPTConfig(num_prompt_tokens=3, bottleneck_size=8, prompt_layer=2)).eval()
    generator = pm.base_model.model.encoder.lpt_generator["default"]
    torch.nn.init.zeros_(generator.proj_up.weight)
    torch.nn.init.zeros_(generator.proj_up.bias)
    original = lpt_layer.extend_attention_mask

    def hide_prompt(attention_mask, num):
        extended = original(attention_mask, num)
        extended[..., :num] = torch.finfo(extended.dtype).min  # no query may attend to a prompt key
        return extended

    monkeypatch.setattr(lpt_layer, "extend_attention_mask", hide_prompt)
    with torch.no_grad():
        got = pm(input_ids=ids, attention_mask=mask).last_hidden_state
    real = mask.bool()
    torch.testing.assert_close(got[real], expected[real], atol=1e-5, rtol=1e-5)


def test_prompt_rows_are_stripped_and_cls_pooling_is_unchanged():
    torch.manual_seed(0)
    pm = get_peft_model(BertModel(bert_config()), LPTConfig(num_prompt_tokens=3, bottleneck_size=8, prompt_layer=2))
    pm.eval()
    ids, mask = _batch()
    with torch.no_grad():
        out = pm(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    lengths = [h.shape[1] for h in out.hidden_states]
    # embeddings + layers 1-2 (before the prompt): n; layer 3 (after insertion): l + n; the final state is stripped
    assert lengths == [10, 10, 10, 13, 10]
    assert out.last_hidden_state.shape == (4, 10, 32)
    bert = pm.base_model.model
    torch.testing.assert_close(out.pooler_output, bert.pooler(out.last_hidden_state))
    # the stripped output equals the shifted read of the unstripped one: run the last layer on the layer-3 state
    encoder = bert.encoder
    base_mask = bert._create_attention_masks(mask, None, out.hidden_states[0], None, None)[0]
    ext = lpt_layer.extend_attention_mask(base_mask, 3)
    with torch.no_grad():
        top = encoder.base_layer.layer[3](out.hidden_states[3], ext)
    torch.testing.assert_close(top[:, 3:], out.last_hidden_state)


def test_half_precision_backbone_with_float32_generator():
    torch.manual_seed(0)
    model = BertForSequenceClassification(bert_config()).to(torch.bfloat16)
    pm = get_peft_model(model, LPTConfig(task_type="SEQ_CLS", num_prompt_tokens=3, bottleneck_size=8))
    assert pm.base_model.model.bert.encoder.lpt_generator["default"].proj_up.weight.dtype == torch.float32
    ids, mask = _batch()
    out = pm(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1, 0]))
    assert out.logits.dtype == torch.bfloat16
    out.loss.backward()


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="prompt_layer=4 is outside the model"):
        _build(prompt_layer=4)
    with pytest.raises(ValueError, match="LPT supports BERT, RoBERTa and ElasticBERT"):
        distil = DistilBertForSequenceClassification(DistilBertConfig(vocab_size=50, dim=32, n_layers=2, n_heads=4,
                                                                      hidden_dim=64, max_position_embeddings=32))
        get_peft_model(distil, LPTConfig(task_type="SEQ_CLS"))  # GPT-2 is supported since the decoder families
    with pytest.raises(ValueError, match="owns a `layer` ModuleList"):
        get_peft_model(BertModel(bert_config()), LPTConfig(target_modules=["embeddings"]))


def _fresh_pair(tmp_path):
    torch.manual_seed(0)
    BertForSequenceClassification(bert_config()).save_pretrained(tmp_path / "base")
    base = BertForSequenceClassification.from_pretrained(tmp_path / "base")
    return base


@pytest.mark.slow
def test_save_and_load_with_peft_and_auto_classes(tmp_path):
    base = _fresh_pair(tmp_path)
    pm = get_peft_model(base, LPTConfig(task_type="SEQ_CLS", num_prompt_tokens=3, bottleneck_size=8, generator="mppg"))
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-2)
    ids, mask = _batch()
    pm.train()
    pm(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1, 0])).loss.backward()
    opt.step()
    pm.eval()
    with torch.no_grad():
        expected = pm(input_ids=ids, attention_mask=mask).logits
    pm.save_pretrained(tmp_path / "adapter")

    stored = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert stored["peft_type"] == "LPT" and stored["prompt_layer"] == 2 and stored["generator"] == "mppg"
    keys = set(load_file(tmp_path / "adapter" / "adapter_model.safetensors"))
    assert keys and all(".lpt_generator." in k or ".classifier." in k for k in keys)
    assert "base_model.model.bert.encoder.lpt_generator.proj_down.weight" in keys

    reloaded = PeftModel.from_pretrained(BertForSequenceClassification.from_pretrained(tmp_path / "base"),
                                         tmp_path / "adapter")
    auto = AutoPeftModelForSequenceClassification.from_pretrained(tmp_path / "adapter")
    renamed = PeftModel.from_pretrained(BertForSequenceClassification.from_pretrained(tmp_path / "base"),
                                        tmp_path / "adapter", adapter_name="other")
    for model in (reloaded, auto, renamed):
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, expected)
        assert not trainable_names(model)
    resumed = PeftModel.from_pretrained(BertForSequenceClassification.from_pretrained(tmp_path / "base"),
                                        tmp_path / "adapter", is_trainable=True)
    assert trainable_names(resumed) == trainable_names(pm)


def test_disable_adapter_unload_and_merge():
    torch.manual_seed(0)
    base = BertForSequenceClassification(bert_config()).eval()
    ids, mask = _batch()
    with torch.no_grad():
        expected = base(input_ids=ids, attention_mask=mask).logits
    pm = get_peft_model(base, LPTConfig(task_type="SEQ_CLS", num_prompt_tokens=3, bottleneck_size=8)).eval()
    with torch.no_grad():
        with_prompt = pm(input_ids=ids, attention_mask=mask).logits
        with pm.disable_adapter():
            torch.testing.assert_close(pm(input_ids=ids, attention_mask=mask).logits, expected)
    assert not torch.allclose(with_prompt, expected)
    with pytest.raises(ValueError, match="cannot be merged"):
        pm.merge_and_unload()
    unloaded = pm.unload()
    assert type(unloaded.bert.encoder) is BertEncoder and not hasattr(unloaded, "peft_config")
    with torch.no_grad():
        torch.testing.assert_close(unloaded(input_ids=ids, attention_mask=mask).logits, expected)
    print_out = get_peft_model(unloaded, LPTConfig(task_type="SEQ_CLS"))  # can be wrapped again
    assert isinstance(print_out.base_model.model.bert.encoder, LPTLayer)


def test_two_named_adapters_switch():
    pm = _build(generator="npg").eval()
    pm.add_adapter("late", LPTConfig(task_type="SEQ_CLS", num_prompt_tokens=2, bottleneck_size=4, prompt_layer=3,
                                     generator="appg"))
    encoder = pm.base_model.model.bert.encoder
    assert set(encoder.lpt_generator) == {"default", "late"}
    ids, mask = _batch()
    with torch.no_grad():
        first = pm(input_ids=ids, attention_mask=mask).logits
        pm.set_adapter("late")
        second = pm(input_ids=ids, attention_mask=mask).logits
        pm.set_adapter("default")
        torch.testing.assert_close(pm(input_ids=ids, attention_mask=mask).logits, first)
    assert not torch.allclose(first, second)
    assert encoder.lpt_prompt_layer == {"default": 2, "late": 3}


@pytest.mark.slow
def test_trainer_trains_and_checkpoints_the_adapter(tmp_path):
    import datasets
    from transformers import Trainer, TrainingArguments

    pm = _build()
    ids, mask = _batch(batch_size=8, seed=3)
    data = datasets.Dataset.from_dict(
        {"input_ids": ids.tolist(), "attention_mask": mask.tolist(), "labels": [0, 1] * 4}
    )
    before = pm.base_model.model.bert.encoder.lpt_generator["default"].proj_up.weight.detach().clone()
    args = TrainingArguments(
        output_dir=str(tmp_path / "run"),
        max_steps=2,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        save_steps=2,
        logging_steps=1,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
    )
    Trainer(model=pm, args=args, train_dataset=data).train()
    after = pm.base_model.model.bert.encoder.lpt_generator["default"].proj_up.weight
    assert not torch.equal(before, after)
    checkpoint = tmp_path / "run" / "checkpoint-2"
    assert (checkpoint / "adapter_model.safetensors").exists() and (checkpoint / "adapter_config.json").exists()
    assert not (checkpoint / "model.safetensors").exists()
