"""HashEE FLOPs: worked example, ELUE counter vs analytic, modules column, submission (docs/hashee.md, "FLOPs")."""

import numpy as np
import pytest
import torch
from transformers import (
    BertConfig,
    BertForSequenceClassification,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from elue_hf.elue.flops import ElueFlopsCounter
from elue_hf.elue.flops.module_spec import modules_macs
from elue_hf.elue.submission import PredictionFile, read_submission, write_submission
from elue_hf.hashee import (
    apply_hashee,
    hashee_config_for,
    random_cons_table,
    set_hashee_mode,
)
from elue_hf.methods.hashee_flops import (
    active_token_counts,
    classifier_flops,
    last_active_counts,
    module_spec,
    modules_column,
    unpadded_lengths,
)

V, SPECIAL = 80, [0, 1, 2]


def test_worked_example_of_the_spec():
    six_layers = BertConfig(num_hidden_layers=6, num_labels=2)  # d 768, d_ff 3072, h 12
    active = [[128, 107, 86, 65, 44, 23]]
    hashee = classifier_flops(six_layers, [128], active)[0]
    assert hashee == pytest.approx(7341.01, abs=0.01)
    bert_base = classifier_flops(BertConfig(num_labels=2), [128])[0]
    assert bert_base == pytest.approx(22367.70, abs=0.01)
    assert round(bert_base / hashee, 2) == 3.05
    assert classifier_flops(six_layers, [128])[0] == pytest.approx(11184.64, abs=0.01)
    # at m = n the token-level formula is ELUE's full layer cost
    assert classifier_flops(six_layers, [128], [[128] * 6])[0] == classifier_flops(six_layers, [128])[0]


def _model(make_config, **kw):
    torch.manual_seed(0)
    config = make_config(vocab_size=V, hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                         intermediate_size=64, num_labels=3, **kw)  # fmt: skip
    cls = BertForSequenceClassification if make_config is BertConfig else RobertaForSequenceClassification
    model = cls(config).eval()
    config = hashee_config_for(model, None, special_ids=SPECIAL, hash_function="random-cons", seed=1)
    apply_hashee(model, random_cons_table(config))
    return model


def _batch(pad=0):
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(3, V, (6, 14), generator=g)
    lengths = torch.tensor([14, 9, 3, 12, 6, 14])
    mask = (torch.arange(14)[None] < lengths[:, None]).long()
    ids[:, 0] = 1 if pad == 0 else 0
    ids[mask == 0] = pad
    return ids, mask


@pytest.mark.slow
@pytest.mark.parametrize("make_config,pad", [(BertConfig, 0), (RobertaConfig, 1)])
def test_counter_sees_the_shrinking_shapes(make_config, pad):
    kw = {"pad_token_id": 1, "max_position_embeddings": 40} if pad else {}
    model = _model(make_config, **kw)
    ids, mask = _batch(pad)
    with torch.no_grad(), ElueFlopsCounter(model) as counter:
        model(input_ids=ids, attention_mask=mask)
    lengths = mask.sum(1).numpy()
    counts = last_active_counts(model)
    analytic = classifier_flops(model.config, lengths, counts)
    assert counts[:, -1].sum() < counts[:, 0].sum()
    assert counter.mflops == pytest.approx(analytic.sum(), rel=0.01)
    assert counter.mflops < classifier_flops(model.config, lengths).sum()
    per_instance = []
    for row in range(len(ids)):  # one unpadded instance per forward: per-instance figures
        with torch.no_grad(), ElueFlopsCounter(model) as counter:
            model(input_ids=ids[row : row + 1, : int(lengths[row])])
        per_instance.append(counter.per_instance_mflops[0])
    assert np.allclose(per_instance, analytic, rtol=0.01)
    set_hashee_mode(model, "reference")  # same function at full cost
    with torch.no_grad(), ElueFlopsCounter(model) as counter:
        model(input_ids=ids, attention_mask=mask)
    assert counter.mflops == pytest.approx(classifier_flops(model.config, lengths).sum(), rel=1e-9)


def test_active_counts_from_the_table_match_the_forward():
    model = _model(BertConfig)
    ids, mask = _batch()
    model(input_ids=ids, attention_mask=mask)
    assert np.array_equal(active_token_counts(model, ids, mask), last_active_counts(model))
    assert unpadded_lengths(ids, mask).tolist() == [14, 9, 3, 12, 6, 14] == last_active_counts(model)[:, 0].tolist()
    assert unpadded_lengths(ids).tolist() == [14] * 6


def test_modules_column_and_submission(tmp_path):
    model = _model(BertConfig)
    ids, mask = _batch()
    with torch.no_grad():
        preds = model(input_ids=ids, attention_mask=mask).logits.argmax(-1)[:, None].clamp(max=1).flatten()
    lengths = mask.sum(1).numpy()
    counts = last_active_counts(model)
    column = modules_column(model.config, lengths, counts, num_labels=2)
    spec = module_spec(model.config, num_labels=2)
    assert "(" in column[0] and any(f",{n},32),layer_4" in c for c, n in zip(column, lengths))
    analytic = classifier_flops(model.config, lengths, counts, num_labels=2)
    assert np.allclose([2 * modules_macs(c, spec) / 1e6 for c in column], analytic)
    out = write_submission(
        tmp_path / "sub", "tiny HashEE", "random weights; synthetic ids", sum(p.numel() for p in model.parameters()),
        {"hashee": PredictionFile(task="sst-2", predictions=preds.tolist(), modules=column)}, module_spec=spec,
    )  # fmt: skip
    parsed = read_submission(out)
    assert parsed.files[0].flops_tier == "consistent" and parsed.files[0].mean_mflops == pytest.approx(analytic.mean())
    with pytest.raises(ValueError, match="active_counts must have shape"):
        modules_column(model.config, lengths, counts[:, :2])
