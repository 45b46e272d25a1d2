"""LPT on DeBERTa-v2/v3: hand-inserted reference with relative positions, [CLS]-head and verbalizer modes, padding,
parameter counts, save/load and unload."""

import pytest
import torch
from peft import AutoPeftModelForSequenceClassification, PeftModel, get_peft_model
from transformers import DebertaV2ForMaskedLM, DebertaV2ForSequenceClassification, DebertaV2Model
from transformers.models.deberta_v2.modeling_deberta_v2 import DebertaV2Encoder

from elue_hf.lpt import LPTConfig, LPTLayer, generator_parameter_count
from tests.helpers.lpt_backbones import deberta_config, padded, real_rows, reference_deberta_hidden

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module

LENGTHS = (9, 6, 3)
MASK_ID = 2


def _lpt(**overrides):
    options = dict(task_type="SEQ_CLS", num_prompt_tokens=3, bottleneck_size=8, prompt_layer=2)
    return LPTConfig(**{**options, **overrides})


def _classifier(attn="eager", seed=0, **lpt):
    torch.manual_seed(seed)
    model = DebertaV2ForSequenceClassification(deberta_config(attn)).eval()
    torch.manual_seed(seed + 1)
    return get_peft_model(model, _lpt(**lpt)).eval()


@pytest.mark.parametrize("buckets", [8, -1])
@pytest.mark.parametrize("side", ["right", "left"])
def test_tuner_equals_the_hand_inserted_prompt(buckets, side):
    torch.manual_seed(0)
    model = DebertaV2ForSequenceClassification(deberta_config(position_buckets=buckets)).eval()
    pm = get_peft_model(model, _lpt()).eval()
    ids, mask = padded(LENGTHS, 10, side, first_id=1)
    deberta = pm.base_model.model.deberta
    generator = deberta.encoder.lpt_generator["default"]
    with torch.no_grad():
        got = deberta(input_ids=ids, attention_mask=mask).last_hidden_state
        if side == "right":  # the generator reads [CLS] at index 0
            expected = reference_deberta_hidden(pm.base_model.model, generator, ids, mask, 2, 3)
            for g, e in zip(real_rows(got, mask), real_rows(expected, mask)):
                torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)
        with pm.disable_adapter():
            plain = deberta(input_ids=ids, attention_mask=mask).last_hidden_state
    assert got.shape == ids.shape + (32,)
    assert not torch.allclose(got[mask.bool()], plain[mask.bool()], atol=1e-3)


@pytest.mark.parametrize("kind", ["npg", "appg", "mppg", "none"])
def test_padding_and_rows_alone_agree(kind):
    pm = _classifier(generator=kind)
    ids, mask = padded(LENGTHS, 10, "right", first_id=1)
    with torch.no_grad():
        logits = pm(input_ids=ids, attention_mask=mask).logits
        for r, n in enumerate(LENGTHS):
            torch.testing.assert_close(pm(input_ids=ids[r : r + 1, :n]).logits[0], logits[r], atol=1e-5, rtol=1e-5)


def test_trainable_parameters_gradients_and_counts():
    pm = _classifier(generator="npg")
    head = sum(p.numel() for n, p in pm.named_parameters() if p.requires_grad and "lpt_generator" not in n)
    pooler_and_classifier = 32 * 32 + 32 + 32 * 2 + 2
    trainable, _ = pm.get_nb_trainable_parameters()
    assert head == pooler_and_classifier
    assert trainable == generator_parameter_count("npg", 32, 8, 3) + pooler_and_classifier
    # docs/lpt.md, "Parameter counts": DeBERTa-large d = 1024, m = 128: NPG (l = 5) 791,680, PPG 263,296,
    # w/o PG (l = 20) 20,480
    assert [generator_parameter_count(k, 1024, 128, n) for k, n in (("npg", 5), ("mppg", 10), ("none", 20))] == [
        791_680,
        263_296,
        20_480,
    ]
    ids, mask = padded(LENGTHS, 10, "right", first_id=1)
    pm.train()
    pm(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1])).loss.backward()
    with_grad = {n for n, p in pm.named_parameters() if p.grad is not None}
    assert with_grad == {n for n, p in pm.named_parameters() if p.requires_grad}
    assert isinstance(pm.base_model.model.deberta.encoder, LPTLayer)


@pytest.mark.parametrize("legacy", [True, False])
def test_verbalizer_scores_label_words_at_the_mask(legacy):
    torch.manual_seed(0)
    model = DebertaV2ForMaskedLM(deberta_config(legacy=legacy)).eval()
    words = [7, 11]
    pm = get_peft_model(model, _lpt(head_mode="verbalizer", label_word_ids=words, mask_token_id=MASK_ID)).eval()
    ids, mask = padded(LENGTHS, 10, "right", first_id=1)
    positions = torch.tensor([4, 2, 1])
    ids[torch.arange(3), positions] = MASK_ID
    with torch.no_grad():
        out = pm(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 0]))
        hidden = pm.base_model.model.deberta(input_ids=ids, attention_mask=mask).last_hidden_state
        full = model.cls(hidden) if legacy else model.lm_predictions(hidden, model.deberta.embeddings.word_embeddings)
    expected = full[torch.arange(3), positions][:, words]
    torch.testing.assert_close(out.logits, expected)
    assert torch.isfinite(out.loss)


def test_save_load_auto_class_and_unload(tmp_path):
    torch.manual_seed(0)
    DebertaV2ForSequenceClassification(deberta_config()).save_pretrained(tmp_path / "base")
    base = DebertaV2ForSequenceClassification.from_pretrained(tmp_path / "base").eval()
    ids, mask = padded(LENGTHS, 10, "right", first_id=1)
    with torch.no_grad():
        plain = base(input_ids=ids, attention_mask=mask).logits
    pm = get_peft_model(base, _lpt(generator="appg"))
    optimizer = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-2)
    pm(input_ids=ids, attention_mask=mask, labels=torch.tensor([0, 1, 1])).loss.backward()
    optimizer.step()
    pm.eval()
    with torch.no_grad():
        expected = pm(input_ids=ids, attention_mask=mask).logits
    pm.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(
        DebertaV2ForSequenceClassification.from_pretrained(tmp_path / "base"), tmp_path / "adapter"
    )
    auto = AutoPeftModelForSequenceClassification.from_pretrained(tmp_path / "adapter")
    for model in (reloaded, auto):
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, expected, atol=0, rtol=0)
    assert type(pm.unload().deberta.encoder) is DebertaV2Encoder  # (PEFT's unload keeps the trained head copies)
    fresh = get_peft_model(DebertaV2ForSequenceClassification.from_pretrained(tmp_path / "base"), _lpt()).eval()
    unloaded = fresh.unload()
    assert type(unloaded.deberta.encoder) is DebertaV2Encoder
    with torch.no_grad():
        torch.testing.assert_close(unloaded(input_ids=ids, attention_mask=mask).logits, plain, atol=0, rtol=0)


def test_convolution_needs_a_prompt_layer_after_layer_zero():
    torch.manual_seed(0)
    model = DebertaV2Model(deberta_config(conv_kernel_size=3))
    with pytest.raises(ValueError, match="prompt_layer >= 1"):
        get_peft_model(model, LPTConfig(num_prompt_tokens=3, bottleneck_size=8, prompt_layer=0))
    pm = get_peft_model(DebertaV2Model(deberta_config(conv_kernel_size=3)),
                        LPTConfig(num_prompt_tokens=3, bottleneck_size=8, prompt_layer=1))
    ids, mask = padded(LENGTHS, 10, "right", first_id=1)
    assert pm(input_ids=ids, attention_mask=mask).last_hidden_state.shape == (3, 10, 32)
