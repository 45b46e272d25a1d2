"""HashEE on encoders: skip mode = reference mode, exact semantics, save/load, Trainer (docs/hashee.md)."""

import logging

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    BertForSequenceClassification,
    BertModel,
    GPT2Config,
    GPT2LMHeadModel,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from elue_hf.elasticbert import ElasticBertConfig, ElasticBertForSequenceClassification
from elue_hf.hashee import (
    HashEEConfig,
    HashTable,
    apply_hashee,
    get_hashee,
    hashee_config_for,
    hashee_table,
    is_hashee_model,
    load_hashee_model,
    random_cons_table,
    random_incons_table,
    remove_hashee,
    set_hashee_mode,
)

V, SPECIAL = 97, [0, 1, 2, 3]  # pad, cls, sep, unk
DIMS = dict(vocab_size=V, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def bert(**kw):
    return BertForSequenceClassification(BertConfig(**{**DIMS, "num_labels": 3, **kw}))


def roberta(**kw):
    config = RobertaConfig(**{**DIMS, "max_position_embeddings": 40, "pad_token_id": 1, "num_labels": 2, **kw})
    return RobertaForSequenceClassification(config)


def elasticbert(**kw):
    config = ElasticBertConfig(**{**DIMS, "max_output_layers": 4, "num_output_layers": 1, "num_labels": 2, **kw})
    return ElasticBertForSequenceClassification(config)


def table_for(model, seed=0, **kw):
    config = hashee_config_for(model, None, special_ids=SPECIAL, hash_function="random-cons", seed=seed, **kw)
    return random_cons_table(config)


def batch(seed, b=5, n=13, pad=0, cls=1):
    """Random ids with ragged padding (row 0 is never padded, so the longest row fills n)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, V, (b, n), generator=g)
    lengths = torch.randint(2, n + 1, (b,), generator=g)
    lengths[0] = n
    mask = (torch.arange(n)[None] < lengths[:, None]).long()
    ids[:, 0] = cls
    ids[mask == 0] = pad
    return ids, mask


def logits_both_modes(model, ids, mask):
    set_hashee_mode(model, "skip")
    skip = model(input_ids=ids, attention_mask=mask).logits
    set_hashee_mode(model, "reference")
    ref = model(input_ids=ids, attention_mask=mask).logits
    set_hashee_mode(model, "skip")
    return skip, ref


def scaled(model, factor=8.0):
    """Larger random weights, so that the exit decisions visibly change the outputs."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 and "embeddings" not in name:
                p.mul_(factor)
    return model


# ------------------------------------------------------------------------------------------------ skip == reference


@pytest.mark.slow
@pytest.mark.parametrize("make,pad", [(bert, 0), (roberta, 1), (elasticbert, 0)])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_skip_equals_reference(make, pad, attn):
    torch.manual_seed(0)
    model = scaled(make()).eval()
    model.set_attn_implementation(attn)
    apply_hashee(model, table_for(model))
    for seed in range(4):
        ids, mask = batch(seed, b=1 + 3 * seed, pad=pad, cls=0 if pad == 1 else 1)
        skip, ref = logits_both_modes(model, ids, mask)
        assert torch.allclose(skip, ref, atol=1e-5), (skip - ref).abs().max()
    plan = get_hashee(model).plan
    assert plan.m_max[-1] < ids.shape[1]  # the skipping path really ran


@pytest.mark.parametrize("device", DEVICES)
def test_hidden_states_semantics(device):
    """Exited tokens keep their state; pads are never updated; both modes agree on every layer."""
    torch.manual_seed(1)
    model = scaled(bert()).eval().to(device)
    table = table_for(model, seed=3)
    apply_hashee(model, table)
    ids, mask = (t.to(device) for t in batch(7, b=6))
    exits = table.lookup(ids.cpu()).to(device)
    outs = {}
    for mode in ("skip", "reference"):
        set_hashee_mode(model, mode)
        outs[mode] = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    for a, b in zip(outs["skip"], outs["reference"]):
        assert torch.allclose(a, b, atol=1e-5)
    hidden = torch.stack(outs["skip"])  # (L + 1, b, n, d)
    for layer in range(1, 5):
        frozen = (exits < layer) | (mask == 0)
        assert torch.equal(hidden[layer][frozen], hidden[layer - 1][frozen])
        moved = (exits >= layer) & (mask == 1)
        assert ((hidden[layer][moved] - hidden[layer - 1][moved]).abs().amax(-1) > 0).all()


@pytest.mark.slow
def test_padding_is_masked_as_keys():
    """A padded row gives the same result as the same row alone without padding."""
    torch.manual_seed(2)
    model = scaled(bert()).eval()
    apply_hashee(model, table_for(model))
    ids, mask = batch(3, b=4)
    full = model(input_ids=ids, attention_mask=mask).logits
    for row in range(4):
        n = int(mask[row].sum())
        alone = model(input_ids=ids[row : row + 1, :n]).logits
        assert torch.allclose(full[row], alone[0], atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("make", [bert, elasticbert])
def test_all_tokens_to_last_layer_is_the_plain_model(make):
    torch.manual_seed(3)
    model = scaled(make()).eval()
    ids, mask = batch(5)
    plain = model(input_ids=ids, attention_mask=mask).logits
    config = hashee_config_for(model, None, special_ids=SPECIAL)
    apply_hashee(model, HashTable(config, torch.full((V,), 4)))
    skip, ref = logits_both_modes(model, ids, mask)
    assert torch.allclose(skip, plain, atol=1e-5) and torch.allclose(ref, plain, atol=1e-5)
    remove_hashee(model)
    apply_hashee(model, table_for(model))
    assert not torch.allclose(model(input_ids=ids, attention_mask=mask).logits, plain, atol=1e-3)


@pytest.mark.slow
def test_gradients_match_between_modes():
    torch.manual_seed(4)
    model = bert(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = scaled(model, 3.0).train()
    apply_hashee(model, table_for(model))
    ids, mask = batch(2, b=3)
    labels = torch.tensor([0, 1, 2])
    grads = {}
    for mode in ("skip", "reference"):
        set_hashee_mode(model, mode)
        model.zero_grad()
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        grads[mode] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert grads["skip"].keys() == grads["reference"].keys()
    for name, g in grads["skip"].items():
        assert torch.allclose(g, grads["reference"][name], atol=1e-5), name


def test_random_incons_runs_and_changes_between_calls():
    torch.manual_seed(5)
    model = scaled(bert()).eval()
    config = hashee_config_for(model, None, special_ids=SPECIAL, hash_function="random-incons")
    apply_hashee(model, random_incons_table(config))
    ids, mask = batch(1, b=3)
    first = model(input_ids=ids, attention_mask=mask).logits
    second = model(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(first, second)


# ------------------------------------------------------------------------------------------------ errors


def test_errors_are_clear():
    model = bert()
    with pytest.raises(ValueError, match="encoder has 4"):
        apply_hashee(model, random_cons_table(HashEEConfig(num_layers=3, num_buckets=3, vocab_size=V)))
    with pytest.raises(ValueError, match="vocab_size=97"):
        apply_hashee(model, random_cons_table(HashEEConfig(num_layers=4, num_buckets=4, vocab_size=50)))
    with pytest.raises(TypeError, match="HashTable"):
        apply_hashee(model, torch.ones(V))
    apply_hashee(model, table_for(model))
    with pytest.raises(ValueError, match="already runs HashEE"):
        apply_hashee(model, table_for(model))
    with pytest.raises(ValueError, match="inputs_embeds"):
        model(inputs_embeds=torch.zeros(1, 3, 32))
    with pytest.raises(ValueError, match="Unknown HashEE mode"):
        set_hashee_mode(model, "fast")
    with pytest.raises(ValueError, match="static ElasticBERT"):
        apply_hashee(elasticbert(num_output_layers=4), table_for(model))
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4))
    with pytest.raises(ValueError, match="HashEE"):
        apply_hashee(gpt, table_for(model))
    with pytest.raises(RuntimeError, match="outside its encoder's forward"):
        fresh = bert()
        apply_hashee(fresh, table_for(fresh))
        fresh.bert.encoder.layer[0](torch.zeros(1, 3, 32))


def test_remove_restores_the_plain_model():
    torch.manual_seed(6)
    model = scaled(bert()).eval()
    ids, mask = batch(0)
    plain = model(input_ids=ids, attention_mask=mask).logits
    keys = set(model.state_dict())
    apply_hashee(model, table_for(model))
    assert set(model.state_dict()) == keys | {"hashee_exit_table"}
    assert is_hashee_model(model) and model.config.hashee["hash_function"] == "random-cons"
    remove_hashee(model)
    assert not is_hashee_model(model) and set(model.state_dict()) == keys and not hasattr(model.config, "hashee")
    assert torch.equal(model(input_ids=ids, attention_mask=mask).logits, plain)


def test_base_model_without_head():
    torch.manual_seed(7)
    model = BertModel(BertConfig(**DIMS)).eval()
    apply_hashee(model, table_for(model))
    ids, mask = batch(4)
    set_hashee_mode(model, "skip")
    a = model(input_ids=ids, attention_mask=mask).last_hidden_state
    set_hashee_mode(model, "reference")
    assert torch.allclose(a, model(input_ids=ids, attention_mask=mask).last_hidden_state, atol=1e-5)


# ------------------------------------------------------------------------------------------------ save / load


@pytest.mark.slow
@pytest.mark.parametrize("make", [bert, roberta, elasticbert])
def test_save_load_round_trip(make, tmp_path):
    torch.manual_seed(8)
    model = scaled(make()).eval()
    table = table_for(model, seed=11)
    apply_hashee(model, table)
    model.save_pretrained(tmp_path)
    loaded = load_hashee_model(tmp_path).eval()
    assert type(loaded) is type(model)
    saved = hashee_table(loaded)
    assert saved.config == table.config and torch.equal(saved.exits, table.exits)
    pad = 1 if make is roberta else 0
    ids, mask = batch(9, pad=pad, cls=0 if pad else 1)
    expected = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(loaded(input_ids=ids, attention_mask=mask).logits, expected)


def test_layers_are_declared_subclasses_and_remove_restores_the_originals():
    model = bert().eval()
    originals = list(model.bert.encoder.layer)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    apply_hashee(model, table_for(model))
    layers = list(model.bert.encoder.layer)
    assert all(type(layer).__name__ == "HashEEBertLayer" and isinstance(layer, type(originals[0])) for layer in layers)
    assert all("forward" not in vars(layer) for layer in layers)  # no instance-level patching
    assert all(new.attention is old.attention for new, old in zip(layers, originals))  # shared sub-modules
    assert "hashee_controller" in vars(model) and get_hashee(model) is model.hashee_controller
    assert set(model.state_dict()) == set(before) | {"hashee_exit_table"}  # the plain keys, plus the table
    remove_hashee(model)
    assert all(a is b for a, b in zip(model.bert.encoder.layer, originals))
    after = model.state_dict()
    assert all(torch.equal(v, before[k]) for k, v in after.items()) and len(after) == len(before)


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.text = []

    def emit(self, record):
        self.text.append(record.getMessage())


def test_load_reports_nothing_unexpected_and_keeps_the_class(tmp_path):
    model = bert().eval()
    apply_hashee(model, table_for(model))
    model.save_pretrained(tmp_path)
    records, logger = _Records(), logging.getLogger("transformers")
    logger.addHandler(records)
    try:
        BertForSequenceClassification.from_pretrained(tmp_path)  # the plain class reports the table key ...
        assert any("hashee_exit_table" in line for line in records.text)
        records.text.clear()
        loaded = load_hashee_model(tmp_path, num_labels=3)  # ... the HashEE loader reads it
    finally:
        logger.removeHandler(records)
    assert not any("hashee_exit_table" in line for line in records.text)
    assert type(loaded) is BertForSequenceClassification  # no class swap


def _fake_hub_cache(cache, repo_id: str, folder) -> str:
    """Lay ``folder`` out as huggingface_hub's cache holds a downloaded snapshot of ``repo_id`` (offline test)."""
    import shutil

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    return commit


def test_load_from_a_hub_repo_id_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants

    model = bert().eval()
    table = table_for(model, seed=4)
    apply_hashee(model, table)
    model.save_pretrained(tmp_path / "saved")
    cache = tmp_path / "hub"
    _fake_hub_cache(cache, "someone/tiny-hashee", tmp_path / "saved")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    loaded = load_hashee_model("someone/tiny-hashee").eval()
    assert torch.equal(hashee_table(loaded).exits, table.exits)
    ids, mask = batch(2)
    expected = model(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(loaded(input_ids=ids, attention_mask=mask).logits, expected)
    auto = AutoModelForSequenceClassification.from_pretrained("someone/tiny-hashee", cache_dir=str(cache)).eval()
    assert is_hashee_model(auto) and torch.equal(hashee_table(auto).exits, table.exits)
    assert torch.equal(auto(input_ids=ids, attention_mask=mask).logits, expected)
    with pytest.raises(OSError, match="someone/missing"):
        load_hashee_model("someone/missing")
    with pytest.raises(FileNotFoundError, match="No saved model directory"):
        load_hashee_model(tmp_path / "nowhere")


def test_load_rejects_plain_checkpoints(tmp_path):
    bert().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="is not a saved HashEE model: model_type .bert."):
        load_hashee_model(tmp_path)


# ------------------------------------------------------------------------------------------------ Trainer


@pytest.mark.slow
def test_trainer_trains_and_checkpoints_the_table(tmp_path):
    import datasets
    from transformers import Trainer, TrainingArguments

    torch.manual_seed(9)
    model = elasticbert(hidden_dropout_prob=0.0)
    table = table_for(model, seed=2)
    apply_hashee(model, table)
    g = np.random.default_rng(0)
    rows = [[1] + g.integers(4, V, size=int(g.integers(3, 12))).tolist() + [2] for _ in range(24)]
    data = datasets.Dataset.from_dict({"input_ids": rows, "labels": [len(r) % 2 for r in rows]})

    def collate(features):
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.tensor([f["input_ids"] + [0] * (width - len(f["input_ids"])) for f in features])
        labels = torch.tensor([f["labels"] for f in features])
        return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": labels}

    args = TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=8, max_steps=3, learning_rate=1e-3, save_steps=3,
        logging_steps=1, use_cpu=True, report_to="none",
    )  # fmt: skip
    before = model.classifier.weight.detach().clone()
    trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=collate)
    trainer.train()
    assert not torch.equal(before, model.classifier.weight)
    assert get_hashee(model).plan is not None  # hashing ran during training
    loaded = load_hashee_model(tmp_path / "checkpoint-3")
    assert torch.equal(hashee_table(loaded).exits, table.exits)


def test_gradient_checkpointing_gives_the_same_gradients():
    torch.manual_seed(10)
    model = scaled(bert(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0), 3.0).train()
    apply_hashee(model, table_for(model))
    ids, mask = batch(6, b=3)
    labels = torch.tensor([2, 0, 1])
    grads = []
    for checkpointing in (False, True):
        if checkpointing:
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.zero_grad()
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        grads.append(model.bert.encoder.layer[2].output.dense.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
