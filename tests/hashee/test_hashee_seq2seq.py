"""HashEE on seq2seq encoders under generate(): BART, T5, bert2bert (docs/hashee.md, "Seq2seq")."""

import numpy as np
import pytest
import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    EncoderDecoderConfig,
    EncoderDecoderModel,
    T5Config,
    T5ForConditionalGeneration,
)

from elue_hf.hashee import (
    HashTable,
    apply_hashee,
    get_hashee,
    hashee_config_for,
    hashee_table,
    load_hashee_model,
    random_cons_table,
    remove_hashee,
    set_hashee_mode,
)
from elue_hf.methods.hashee_flops import last_active_counts, seq2seq_flops

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module

V = 90


def bart():
    return BartForConditionalGeneration(
        BartConfig(
            vocab_size=V, d_model=32, encoder_layers=3, decoder_layers=2, encoder_attention_heads=4,
            decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
            pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=None,
        )
    )  # fmt: skip


def t5():
    return T5ForConditionalGeneration(
        T5Config(
            vocab_size=V, d_model=32, d_kv=8, d_ff=64, num_layers=3, num_decoder_layers=2, num_heads=4,
            relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        )
    )  # fmt: skip


def bert2bert():
    enc = BertConfig(vocab_size=V, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64)
    dec = BertConfig(**{**enc.to_dict(), "num_hidden_layers": 2, "is_decoder": True, "add_cross_attention": True})
    config = EncoderDecoderConfig.from_encoder_decoder_configs(enc, dec)
    config.decoder_start_token_id, config.pad_token_id, config.eos_token_id = 1, 0, 2
    return EncoderDecoderModel(config=config)


MODELS = {"bart": (bart, 1, [0, 1, 2, 3]), "t5": (t5, 0, [0, 1, 2]), "bert2bert": (bert2bert, 0, [0, 1, 2, 3])}


def scaled(model, factor=6.0):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embed" not in name and "shared" not in name and "relative" not in name:
                p.mul_(factor)
    return model.eval()


def inputs(pad, special, seed=0, b=3, n=11):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(len(special), V, (b, n), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 3:] = 0
    ids[mask == 0] = pad
    return ids, mask


def setup(name, table_seed=0):
    make, pad, special = MODELS[name]
    torch.manual_seed(0)
    model = scaled(make())
    config = hashee_config_for(model, None, special_ids=special, hash_function="random-cons", seed=table_seed)
    return model, random_cons_table(config), pad, special


def gen(model, ids, mask, **kw):
    settings = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    if isinstance(model, EncoderDecoderModel):
        settings.update(decoder_start_token_id=1, pad_token_id=0, eos_token_id=2)
    return model.generate(input_ids=ids, attention_mask=mask, **settings, **kw)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_encoder_skip_equals_reference(name):
    model, table, pad, special = setup(name)
    apply_hashee(model, table)
    ids, mask = inputs(pad, special)
    encoder = model.get_encoder()
    states = {}
    for mode in ("skip", "reference"):
        set_hashee_mode(model, mode)
        states[mode] = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    assert torch.allclose(states["skip"], states["reference"], atol=1e-5)
    assert get_hashee(model).plan.m_max[-1] < ids.shape[1]


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("beams", [1, 3])
def test_generate_cache_on_and_off_agree(name, beams):
    model, table, pad, special = setup(name)
    ids, mask = inputs(pad, special)
    scores = dict(output_scores=True, return_dict_in_generate=True)
    plain = gen(model, ids, mask, num_beams=beams, **scores)
    apply_hashee(model, table)
    cached = gen(model, ids, mask, num_beams=beams, use_cache=True, **scores)
    uncached = gen(model, ids, mask, num_beams=beams, use_cache=False, **scores)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert all(torch.allclose(a, b, atol=1e-4) for a, b in zip(cached.scores, uncached.scores))
    set_hashee_mode(model, "reference")
    assert torch.equal(gen(model, ids, mask, num_beams=beams), cached.sequences)
    assert not torch.allclose(cached.scores[0], plain.scores[0], atol=1e-4)  # the encoder really changed


@pytest.mark.parametrize("name", sorted(MODELS))
def test_all_tokens_to_last_layer_leave_the_decoder_unchanged(name):
    model, table, pad, special = setup(name)
    ids, mask = inputs(pad, special)
    plain_tokens = gen(model, ids, mask, num_beams=2)
    decoder_ids = plain_tokens[:, :4]
    plain = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
    config = table.config
    apply_hashee(model, HashTable(config, torch.full((config.vocab_size,), config.num_layers)))
    hashed = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
    assert torch.allclose(hashed, plain, atol=1e-5)
    assert torch.equal(gen(model, ids, mask, num_beams=2), plain_tokens)


def test_decoder_reads_final_encoder_states():
    """With HashEE the decoder output equals the plain decoder fed the HashEE encoder states."""
    model, table, pad, special = setup("bart")
    ids, mask = inputs(pad, special)
    decoder_ids = torch.tensor([[2, 5, 6]] * 3)
    apply_hashee(model, table)
    hashed = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids).logits
    encoder_states = model.get_encoder()(input_ids=ids, attention_mask=mask)
    remove_hashee(model)
    direct = model(encoder_outputs=encoder_states, attention_mask=mask, decoder_input_ids=decoder_ids).logits
    assert torch.allclose(hashed, direct, atol=1e-6)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_seq2seq_save_load(name, tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    model, table, pad, special = setup(name, table_seed=4)
    apply_hashee(model, table)
    ids, mask = inputs(pad, special)
    expected = gen(model, ids, mask)
    model.save_pretrained(tmp_path)
    assert model.config.model_type == f"hashee_{type(model.config).base_config_class.model_type}"
    for loaded in (load_hashee_model(tmp_path).eval(), AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()):
        assert type(loaded) is type(model) and torch.equal(hashee_table(loaded).exits, table.exits)
        assert torch.equal(gen(loaded, ids, mask), expected)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_seq2seq_flops_split(name):
    model, table, pad, special = setup(name)
    apply_hashee(model, table)
    ids, mask = inputs(pad, special)
    model.get_encoder()(input_ids=ids, attention_mask=mask)
    flops = seq2seq_flops(model.config, mask.sum(1).numpy(), last_active_counts(model), target_lengths=6)
    assert (flops["encoder"] <= flops["encoder_full"]).all() and flops["encoder"].sum() < flops["encoder_full"].sum()
    assert (flops["total"] == flops["encoder"] + flops["decoder"]).all()
    assert np.allclose(flops["total_full"] - flops["total"], flops["encoder_full"] - flops["encoder"])


def test_bert2bert_from_real_minilm(minilm_dir):
    from transformers import AutoTokenizer

    from elue_hf.hashee import frequency_table, tokenize_texts

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    model = EncoderDecoderModel.from_encoder_decoder_pretrained(str(minilm_dir), str(minilm_dir)).eval()
    texts = ["the film is a charming , funny ride .", "a dull , lifeless and overlong movie .", "worth seeing twice ."]
    config = hashee_config_for(model, tokenizer)
    assert (config.num_layers, config.vocab_size) == (6, 30522)
    apply_hashee(model, frequency_table(config, tokenize_texts(tokenizer, texts)))
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    kw = dict(
        decoder_start_token_id=tokenizer.cls_token_id, pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id, max_new_tokens=5, num_beams=2,
    )  # fmt: skip
    cached = model.generate(**batch, use_cache=True, **kw)
    assert torch.equal(cached, model.generate(**batch, use_cache=False, **kw))
    counts = last_active_counts(model)
    assert counts[:, 0].tolist() == batch["attention_mask"].sum(1).tolist() and (counts[:, -1] < counts[:, 0]).all()
