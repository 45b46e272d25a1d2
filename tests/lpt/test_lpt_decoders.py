"""LPT on decoder-only causal LMs (GPT-2, Llama, Qwen2, Qwen3, Mistral, Gemma, Gemma2, Gemma3): hand-inserted reference,
padding sides, generation with and without cache, LM loss, parameter counts, save/load, unload."""

import pytest
import torch
import torch.nn.functional as F
from peft import AutoPeftModelForCausalLM, AutoPeftModelForSequenceClassification, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from elue_hf.lpt import LPTConfig, LPTLayer, generator_parameter_count
from elue_hf.lpt.backbones import context_source_from_labels, extend_causal_mask, last_valid_index
from elue_hf.lpt.backbones.decoder import ROTARY_MODEL_TYPES, decoding_step_mask
from tests.helpers.lpt_backbones import (
    DECODER_FAMILIES,
    MORE_DECODER_FAMILIES,
    decoder_config,
    more_decoder_config,
    padded,
    positions_from_mask,
    real_rows,
    reference_decoder_hidden,
)

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module

L_PROMPT = 3
LENGTHS = (7, 5, 3)


def _lpt(task="CAUSAL_LM", **overrides):
    options = dict(task_type=task, num_prompt_tokens=L_PROMPT, bottleneck_size=8, prompt_layer=2)
    return LPTConfig(**{**options, **overrides})


def _causal_lm(family, attn="sdpa", seed=0, **lpt):
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(decoder_config(family, attn)).eval()
    torch.manual_seed(seed + 1)
    return get_peft_model(model, _lpt(**lpt)).eval()


def _body(pm):
    model = pm.get_base_model()
    return model.transformer if hasattr(model, "transformer") else model.model


def _generator(pm):
    return _body(pm).lpt_generator["default"]


@pytest.mark.parametrize("family", DECODER_FAMILIES)
@pytest.mark.parametrize("side", ["right", "left"])
def test_tuner_equals_the_hand_inserted_prompt(family, side):
    pm = _causal_lm(family)
    ids, mask = padded(LENGTHS, 8, side)
    positions = positions_from_mask(mask)
    body = _body(pm)
    with torch.no_grad():
        got = body(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
        source = last_valid_index(mask.bool())
        expected = reference_decoder_hidden(
            body.get_base_layer(), _generator(pm), ids, mask, positions, 2, L_PROMPT, source
        )
    assert got.shape == ids.shape + (32,)
    for g, e in zip(real_rows(got, mask), real_rows(expected, mask)):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["llama", "gpt2", "mistral"])
def test_eager_and_sdpa_masks_agree(family):
    ids, mask = padded(LENGTHS, 8, "left")
    outputs = []
    for attn in ("sdpa", "eager"):
        pm = _causal_lm(family, attn=attn)
        with torch.no_grad():
            outputs.append(pm(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask)).logits)
    for a, b in zip(real_rows(outputs[0], mask), real_rows(outputs[1], mask)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", DECODER_FAMILIES)
def test_left_and_right_padding_give_the_same_rows(family):
    pm = _causal_lm(family, generator="mppg")
    results = {}
    for side in ("right", "left"):
        ids, mask = padded(LENGTHS, 8, side)
        with torch.no_grad():
            logits = pm(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask)).logits
        results[side] = real_rows(logits, mask)
    for a, b in zip(results["right"], results["left"]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["llama", "qwen2", "gpt2", "gemma"])
def test_sequence_classification_rows_and_padding(family):
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_config(decoder_config(family)).eval()
    pm = get_peft_model(model, _lpt("SEQ_CLS", generator="appg")).eval()
    logits = {}
    for side in ("right", "left"):
        ids, mask = padded(LENGTHS, 8, side)
        with torch.no_grad():
            logits[side] = pm(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask)).logits
        for r, n in enumerate(LENGTHS):  # each row alone, unpadded
            alone = ids[r][mask[r].bool()][None]
            with torch.no_grad():
                torch.testing.assert_close(pm(input_ids=alone).logits[0], logits[side][r], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits["right"], logits["left"], atol=1e-5, rtol=1e-5)
    head = {n for n, p in pm.named_parameters() if p.requires_grad and "lpt_generator" not in n}
    assert head and all(".score." in n for n in head)


@pytest.mark.parametrize("family", DECODER_FAMILIES)
@pytest.mark.parametrize("kind", ["npg", "appg", "none"])
def test_generate_cached_equals_uncached(family, kind):
    pm = _causal_lm(family, generator=kind)
    ids, mask = padded(LENGTHS, 8, "left")
    options = dict(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, pad_token_id=0,
                   output_scores=True, return_dict_in_generate=True)
    with torch.no_grad():
        cached = pm.generate(**options, use_cache=True)
        uncached = pm.generate(**options, use_cache=False)
        with pm.disable_adapter():
            plain = pm.generate(**options, use_cache=True)
    assert cached.sequences.shape == (3, 14)
    assert torch.equal(cached.sequences, uncached.sequences)
    for a, b in zip(cached.scores, uncached.scores):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(cached.scores[0], plain.scores[0], atol=1e-4)  # the late prompt changes the scores


def test_generation_prompt_is_built_once_from_the_context():
    pm = _causal_lm("llama")
    ids, mask = padded(LENGTHS, 8, "left")
    calls = []
    generator = _generator(pm)
    generator.register_forward_hook(lambda mod, args, out: calls.append(args[0].shape[1]))
    with torch.no_grad():
        pm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False, use_cache=False)
    assert calls == [8]  # once, on the 8 context positions; later uncached steps reuse it
    # the first generated token is the argmax of a plain forward over the context
    with torch.no_grad():
        first = pm(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask)).logits[:, -1]
        out = pm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=1, do_sample=False)
    assert torch.equal(out[:, -1], first.argmax(-1))


@pytest.mark.parametrize("family", ["llama", "gpt2", "qwen3"])
def test_lm_loss_covers_tokens_only_and_the_prompt_reads_the_context(family):
    pm = _causal_lm(family, generator="appg")
    ids, mask = padded((8, 8), 8, "right", seed=3)
    labels = ids.clone()
    labels[:, :5] = -100  # context: 5 tokens; the generator reads token 4 (and pools 0..4)
    out = pm(input_ids=ids, attention_mask=mask, labels=labels)
    assert out.logits.shape == (2, 8, 60)  # prompt positions carry no logits
    expected = F.cross_entropy(out.logits[:, :-1].reshape(-1, 60).float(), labels[:, 1:].reshape(-1))
    torch.testing.assert_close(out.loss, expected)
    # changing the labelled continuation changes nothing at the context positions: no future token reaches the prompt
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 7) % 57 + 3
    with torch.no_grad():
        again = pm(input_ids=changed, attention_mask=mask, labels=labels).logits
        torch.testing.assert_close(again[:, :6], out.logits[:, :6].detach(), atol=1e-6, rtol=1e-6)
        # and the prompt is the one generated at inference from the context alone
        context = pm(input_ids=ids[:, :5], attention_mask=mask[:, :5]).logits
    torch.testing.assert_close(context, out.logits[:, :5].detach(), atol=1e-5, rtol=1e-5)
    out.loss.backward()
    with_grad = {n for n, p in pm.named_parameters() if p.grad is not None}
    assert with_grad and all(".lpt_generator." in n for n in with_grad)


def test_context_source_from_labels():
    keep = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 0, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 0, 0]]).bool()
    labels = torch.tensor(
        [[-100, -100, 5, 6, 7, -100], [-100, -100, -100, -100, 8, 9], [-100] * 6, [4, 5, 6, 7, -100, -100]]
    )
    assert context_source_from_labels(labels, keep).tolist() == [1, 3, 2, 0]


def test_extend_causal_mask_forms():
    keep = torch.tensor([[False, True, True]])
    causal = torch.ones(3, 3, dtype=torch.bool).tril() & keep[:, None, :]
    bool_mask = causal[:, None]
    ext = extend_causal_mask(bool_mask, 2, prompt_rows=True)
    assert ext.shape == (1, 1, 5, 5)
    assert ext[0, 0, :2].tolist() == [[True, False, False, False, False], [True, True, False, False, False]]
    assert ext[0, 0, 2:, :2].all() and torch.equal(ext[0, 0, 2:, 2:], causal[0])
    additive = torch.zeros(bool_mask.shape).masked_fill(~bool_mask, torch.finfo(torch.float32).min)
    ext_f = extend_causal_mask(additive, 2, prompt_rows=True)
    assert torch.equal(ext_f == 0, ext)
    step = extend_causal_mask(bool_mask[:, :, -1:], 2, prompt_rows=False)  # a decoding step: keys only
    assert step.shape == (1, 1, 1, 5) and step[0, 0, 0].tolist() == [True, True, False, True, True]
    assert extend_causal_mask(None, 2, prompt_rows=True) is None
    with pytest.raises(ValueError, match="4D attention mask"):
        extend_causal_mask(torch.ones(1, 3), 2, prompt_rows=False)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
@pytest.mark.parametrize("kind", ["npg", "appg", "mppg", "none"])
def test_parameter_counts(family, kind):
    pm = _causal_lm(family, generator=kind)
    trainable, _ = pm.get_nb_trainable_parameters()
    assert trainable == generator_parameter_count(kind, 32, 8, L_PROMPT)
    assert all(".lpt_generator." in n for n, p in pm.named_parameters() if p.requires_grad)


def test_paper_counts_for_gpt2_large():
    # docs/lpt.md, "Parameter counts": GPT2-large (d = 1280), m = 128; NPG l = 5, PPG independent of l, w/o PG l = 20
    assert generator_parameter_count("npg", 1280, 128, 5) == 989_568
    assert generator_parameter_count("appg", 1280, 128, 10) == 329_088
    assert generator_parameter_count("none", 1280, 128, 20) == 25_600


@pytest.mark.parametrize(
    ("family", "task"),
    [("llama", "CAUSAL_LM"), ("gemma3_text", "CAUSAL_LM"), ("gpt2", "SEQ_CLS"), ("qwen3", "SEQ_CLS")],
)
def test_save_load_auto_class_and_unload(tmp_path, family, task):
    auto_model = AutoModelForCausalLM if task == "CAUSAL_LM" else AutoModelForSequenceClassification
    auto_peft = AutoPeftModelForCausalLM if task == "CAUSAL_LM" else AutoPeftModelForSequenceClassification
    torch.manual_seed(0)
    auto_model.from_config(decoder_config(family)).save_pretrained(tmp_path / "base")
    base = auto_model.from_pretrained(tmp_path / "base").eval()
    ids, mask = padded(LENGTHS, 8, "left")
    with torch.no_grad():
        plain = base(input_ids=ids, attention_mask=mask).logits
    torch.manual_seed(1)
    pm = get_peft_model(base, _lpt(task, generator="mppg"))
    optimizer = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=1e-2)
    labels = ids.masked_fill(mask == 0, -100) if task == "CAUSAL_LM" else torch.tensor([0, 1, 1])
    pm(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
    optimizer.step()
    pm.eval()
    with torch.no_grad():
        expected = pm(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(expected, plain)
    pm.save_pretrained(tmp_path / "adapter")
    reloaded = PeftModel.from_pretrained(auto_model.from_pretrained(tmp_path / "base"), tmp_path / "adapter")
    auto = auto_peft.from_pretrained(tmp_path / "adapter")
    for model in (reloaded, auto):
        model.eval()
        with torch.no_grad():
            torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits, expected, atol=0, rtol=0)
    unloaded = (pm if task == "CAUSAL_LM" else reloaded).unload()  # (PEFT's unload keeps a trained score head)
    assert not any(isinstance(m, LPTLayer) for m in unloaded.modules())
    assert set(unloaded.state_dict()) == set(auto_model.from_pretrained(tmp_path / "base").state_dict())
    if task == "CAUSAL_LM":
        with torch.no_grad():
            torch.testing.assert_close(unloaded(input_ids=ids, attention_mask=mask).logits, plain, atol=0, rtol=0)


def test_bad_settings_are_named():
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(decoder_config("llama"))
    with pytest.raises(ValueError, match="task_type 'SEQ_CLS' or 'CAUSAL_LM'"):
        get_peft_model(model, _lpt(task="TOKEN_CLS"))
    flex = AutoModelForCausalLM.from_config(decoder_config("llama", attn="flex_attention"))
    with pytest.raises(ValueError, match="attn_implementation 'sdpa' or 'eager'"):
        get_peft_model(flex, _lpt())
    pm = _causal_lm("llama")
    ids, mask = padded(LENGTHS, 8, "left")
    with torch.no_grad(), pm.disable_adapter():  # a cache built without the prompt
        cache = pm(input_ids=ids, attention_mask=mask, use_cache=True).past_key_values
    with pytest.raises(ValueError, match="not built through this LPT adapter"):
        pm(input_ids=ids[:, :1], attention_mask=torch.cat([mask, mask[:, :1]], 1), past_key_values=cache)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_generative_label_mode_scores_label_words_after_the_context(family):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(decoder_config(family)).eval()
    words = [7, 11, 13]
    pm = get_peft_model(model, _lpt("SEQ_CLS", head_mode="generative", label_word_ids=words)).eval()
    assert {n for n, p in pm.named_parameters() if p.requires_grad} == {
        n for n, _ in pm.named_parameters() if ".lpt_generator." in n
    }
    ids, mask = padded(LENGTHS, 8, "right")
    labels = torch.tensor([0, 2, 1])
    out = pm(input_ids=ids, attention_mask=mask, labels=labels)
    with torch.no_grad():
        vocab = pm.get_base_model()(input_ids=ids, attention_mask=mask).logits[torch.arange(3), torch.tensor([6, 4, 2])]
    torch.testing.assert_close(out.logits.detach(), vocab[:, words])
    torch.testing.assert_close(out.loss.detach(), F.cross_entropy(vocab, torch.tensor(words)[labels]))
    out.loss.backward()
    with pytest.raises(ValueError, match="causal-LM model"):
        get_peft_model(AutoModelForSequenceClassification.from_config(decoder_config(family)),
                       _lpt("SEQ_CLS", head_mode="generative", label_word_ids=words))
    with pytest.raises(ValueError, match="needs label_word_ids"):
        _lpt("SEQ_CLS", head_mode="generative")


@pytest.mark.parametrize(
    "layer_types",
    [
        ["sliding_attention", "sliding_attention", "full_attention", "full_attention"],
        ["full_attention", "full_attention", "sliding_attention", "sliding_attention"],
    ],
)
def test_cached_decoding_with_mixed_layer_types(layer_types):
    # HF sizes each mask type from its first layer; here that layer carries the prompt (index >= k) for one type
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(decoder_config("gemma3_text", layer_types=layer_types)).eval()
    pm = get_peft_model(model, _lpt()).eval()
    ids, mask = padded(LENGTHS, 8, "left")
    options = dict(input_ids=ids, attention_mask=mask, max_new_tokens=6, do_sample=False, output_scores=True,
                   return_dict_in_generate=True)
    with torch.no_grad():
        cached, uncached = (pm.generate(**options, use_cache=flag) for flag in (True, False))
    assert torch.equal(cached.sequences, uncached.sequences)
    for a, b in zip(cached.scores, uncached.scores):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_a_sliding_window_cache_that_drops_the_prompt_is_refused():
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(decoder_config("mistral", sliding_window=8)).eval()
    pm = get_peft_model(model, _lpt()).eval()
    ids, mask = padded(LENGTHS, 8, "left")
    options = dict(input_ids=ids, attention_mask=mask, max_new_tokens=3, do_sample=False)
    with torch.no_grad():
        assert pm.generate(**options, use_cache=False).shape == (3, 11)
        with pytest.raises(ValueError, match="dropped the late prompt"):
            pm.generate(**options, use_cache=True)


def test_decoding_step_mask():
    padding = torch.tensor([[False, True, True, True, True]])
    got = decoding_step_mask(padding, 2, 2)
    assert got.shape == (1, 1, 2, 7)
    assert got[0, 0].tolist() == [
        [True, True, False, True, True, True, False],
        [True, True, False, True, True, True, True],
    ]
    windowed = decoding_step_mask(padding, 1, 2, window=2)
    assert windowed[0, 0, 0].tolist() == [True, True, False, False, False, True, True]


def test_beam_search_cached_equals_uncached_and_hidden_state_lengths():
    pm = _causal_lm("qwen2", generator="mppg")
    ids, mask = padded(LENGTHS, 8, "left")
    options = dict(input_ids=ids, attention_mask=mask, max_new_tokens=5, do_sample=False, num_beams=3,
                   num_return_sequences=2)
    with torch.no_grad():
        cached, uncached = (pm.generate(**options, use_cache=flag) for flag in (True, False))
        hidden = pm(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    assert cached.shape == (6, 13) and torch.equal(cached, uncached)
    # embeddings and layers 1-2 (before the prompt): n; layer 3: l + n; the final state is stripped
    assert [h.shape[1] for h in hidden] == [8, 8, 8, 8 + L_PROMPT, 8]


def test_layers_below_the_prompt_run_without_autograd():
    pm = _causal_lm("llama")
    pm.train()
    flags = []
    for layer in _body(pm).get_base_layer().layers:
        layer.register_forward_hook(lambda mod, args, out: flags.append(out.requires_grad))
    ids, mask = padded(LENGTHS, 8, "right")
    pm(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss.backward()
    assert flags == [False, False, True, True]
    assert all(p.grad is None for n, p in pm.named_parameters() if ".lpt_generator." not in n)


def test_gradient_checkpointing_gives_the_same_generator_gradients():
    ids, mask = padded(LENGTHS, 8, "right")
    labels = ids.masked_fill(mask == 0, -100)
    grads = []
    for checkpointing in (False, True):
        pm = _causal_lm("llama").train()
        if checkpointing:
            pm.get_base_model().gradient_checkpointing_enable()
        pm(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).loss.backward()
        grads.append([p.grad for n, p in pm.named_parameters() if ".lpt_generator." in n])
    assert len(grads[0]) == 4
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b)


def test_a_static_cache_is_refused():
    pm = _causal_lm("llama")
    ids, mask = padded(LENGTHS, 8, "left")
    with pytest.raises(ValueError, match="DynamicCache"):
        pm.generate(input_ids=ids, attention_mask=mask, max_new_tokens=2, cache_implementation="static")


@pytest.mark.parametrize("model_type", MORE_DECODER_FAMILIES)
def test_more_llama_style_families(model_type):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(more_decoder_config(model_type)).eval()
    assert model.config.model_type in ROTARY_MODEL_TYPES
    torch.manual_seed(1)
    pm = get_peft_model(model, _lpt()).eval()
    ids, mask = padded(LENGTHS, 8, "left")
    positions = positions_from_mask(mask)
    body = _body(pm)
    options = dict(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False)
    with torch.no_grad():
        got = body(input_ids=ids, attention_mask=mask, position_ids=positions).last_hidden_state
        expected = reference_decoder_hidden(
            body.get_base_layer(), _generator(pm), ids, mask, positions, 2, L_PROMPT, last_valid_index(mask.bool())
        )
        cached, uncached = (pm.generate(**options, use_cache=flag) for flag in (True, False))
    for g, e in zip(real_rows(got, mask), real_rows(expected, mask)):
        torch.testing.assert_close(g, e, atol=1e-5, rtol=1e-5)
    assert torch.equal(cached, uncached)
