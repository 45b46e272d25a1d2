"""Exactness of the multi-exit model for every family (tiny random configs, eval mode)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForSequenceClassification

import elue_hf  # noqa: F401  (registers model_type "multiexit")
from elue_hf.elasticbert import exit_layers_from_logits, prediction_entropy
from elue_hf.multiexit import MultiExitForSequenceClassification, convert_to_multi_exit
from tests.helpers.tiny_families import FAMILIES, padded_batch, tiny_classifier

ATOL = 1e-5


@pytest.fixture(scope="module", params=FAMILIES)
def pair(request):
    """(source classifier, converted multi-exit classifier) of one family."""
    source = tiny_classifier(request.param)
    converted = convert_to_multi_exit(source)
    with torch.no_grad():  # fresh internal exits are near-uniform: sharpen them so that rows exit at different layers
        for head in converted.classifiers[:-1]:
            head.weight.mul_(300.0)
    return source, converted


def test_hidden_states_equal_the_backbones(pair):
    source, converted = pair
    ids, mask = padded_batch()
    with torch.no_grad():
        ref = source(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
        ours = converted.multiexit(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states
    assert len(ours) == len(ref) == 4
    valid = mask.bool()
    for k, (a, b) in enumerate(zip(ours, ref)):
        assert torch.allclose(a[valid], b[valid], atol=ATOL), f"layer {k}"


def test_last_exit_gives_the_fine_tuned_logits(pair):
    source, converted = pair
    ids, mask = padded_batch()
    with torch.no_grad():
        expected = source(input_ids=ids, attention_mask=mask).logits
        out = converted(input_ids=ids, attention_mask=mask)
    assert out.all_logits.shape == (4, 3, 3)
    assert torch.allclose(out.logits, expected, atol=ATOL)
    assert converted.config.id2label == source.config.id2label


@pytest.mark.parametrize("criterion", ["entropy", "patience"])
def test_batched_exit_equals_batch_one(pair, criterion):
    _, converted = pair
    ids, mask = padded_batch(lengths=(9, 2, 6, 4, 9, 3), seed=1)
    with torch.no_grad():
        full = converted(input_ids=ids, attention_mask=mask).all_logits
    if criterion == "entropy":  # a threshold between the rows' first-exit entropies: rows leave at different layers
        low, high = prediction_entropy(full[:, 0]).sort().values[2:4].tolist()
        kwargs = {"entropy_threshold": (low + high) / 2}
    else:
        kwargs = {"patience": 1}
    with torch.no_grad():
        batched = converted(input_ids=ids, attention_mask=mask, exit_criterion=criterion, **kwargs)
        single = [converted(input_ids=ids[r : r + 1, : int(mask[r].sum())], exit_criterion=criterion, **kwargs)
                  for r in range(ids.shape[0])]
    expected_layers = exit_layers_from_logits(full, [1, 2, 3], criterion, **kwargs)
    assert batched.exit_layer.tolist() == expected_layers.tolist() == [int(s.exit_layer) for s in single]
    assert torch.allclose(batched.logits, torch.cat([s.logits for s in single]), atol=ATOL)
    if criterion == "entropy":
        assert 1 in expected_layers.tolist() and len(set(expected_layers.tolist())) > 1


def test_save_and_load_through_the_auto_classes(pair, tmp_path):
    _, converted = pair
    converted.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert config.model_type == "multiexit" and "auto_map" not in config.to_dict()
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, MultiExitForSequenceClassification)
    ids, mask = padded_batch()
    with torch.no_grad():
        assert torch.allclose(loaded(input_ids=ids, attention_mask=mask).all_logits,
                              converted(input_ids=ids, attention_mask=mask).all_logits, atol=ATOL)


def test_static_model_equals_the_exit_of_the_dynamic_one(pair, tmp_path):
    _, converted = pair
    converted.save_pretrained(tmp_path)
    static = MultiExitForSequenceClassification.from_pretrained(tmp_path, num_hidden_layers=2, exit_layers=[2]).eval()
    assert static.is_static and static.config.num_hidden_layers == 2
    ids, mask = padded_batch()
    with torch.no_grad():
        dynamic = converted(input_ids=ids, attention_mask=mask).all_logits[:, 1]
        # the static model's classifier is fresh: compare the pooled exit 2 instead
        pooled_static = static.multiexit(input_ids=ids, attention_mask=mask).pooler_output
        pooled_dynamic = converted.multiexit(input_ids=ids, attention_mask=mask).exit_pooled_outputs[1]
    assert dynamic.shape == (4, 3)
    assert torch.allclose(pooled_static, pooled_dynamic, atol=ATOL)
