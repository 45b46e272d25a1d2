"""The multi-exit encoder interface (elue_hf.multi_exit) on its own, and the classes that implement it."""

import pytest
import torch
from torch import nn

from elue_hf import ElasticBertForSequenceClassification, ElasticBertModel
from elue_hf.elue.flops.params import count_parameters
from elue_hf.elue.inference import operating_point_params
from elue_hf.multi_exit import MultiExitEncoder, MultiExitModel, multi_exit_backbone, num_exits, run_to_exit
from tests.helpers.elasticbert import padded_batch, tiny_config


class _AffineEncoder(nn.Module):
    """A toy multi-exit encoder: layer i adds i + 1; exits on layers 1 and 3 (0-based); pool = row mean."""

    num_layers = 4
    exit_layer_indices = [1, 3]

    def run_layer(self, i, hidden_states, attention_mask=None, **kwargs):
        return hidden_states + (i + 1)

    def exit_states(self, i, hidden_states):
        return hidden_states

    def pool(self, i, hidden_states, token_mask=None):
        return hidden_states.mean(1)

    def exit_modules(self, i):
        return []


class _ToyBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = _AffineEncoder()

    def embed(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None, inputs_embeds=None):
        return input_ids.float()[..., None], None


def test_protocol_is_structural():
    toy = _ToyBackbone()
    assert isinstance(toy.encoder, MultiExitEncoder) and isinstance(toy, MultiExitModel)
    assert multi_exit_backbone(toy) is toy and num_exits(toy.encoder) == 2
    assert not isinstance(nn.Linear(2, 2), MultiExitEncoder)
    assert multi_exit_backbone(nn.Linear(2, 2)) is None
    states = run_to_exit(toy, 3, input_ids=torch.zeros(1, 2, dtype=torch.long))
    assert torch.equal(states, torch.full((1, 2, 1), 1.0 + 2 + 3 + 4))
    with pytest.raises(ValueError, match=r"layer 2 has no exit; exits are on layers \[1, 3\]"):
        run_to_exit(toy, 2, input_ids=torch.zeros(1, 2, dtype=torch.long))


def test_elasticbert_implements_it_and_the_step_api_reproduces_forward():
    torch.manual_seed(0)
    model = ElasticBertForSequenceClassification(tiny_config(num_output_layers=3)).eval()
    backbone = multi_exit_backbone(model)
    assert backbone is model.elasticbert and isinstance(backbone.encoder, MultiExitEncoder)
    assert list(backbone.encoder.exit_layer_indices) == [1, 2, 3] and backbone.encoder.num_layers == 4
    ids, mask = padded_batch()
    with torch.no_grad():
        out = backbone(input_ids=ids, attention_mask=mask)
        for j, layer in enumerate(backbone.encoder.exit_layer_indices):
            states = run_to_exit(backbone, layer, input_ids=ids, attention_mask=mask)
            torch.testing.assert_close(states, out.exit_hidden_states[j], rtol=0, atol=0)
            torch.testing.assert_close(backbone.encoder.pool(layer, states), out.exit_pooled_outputs[j], rtol=0, atol=0)


def test_backbone_without_poolers_says_so():
    backbone = ElasticBertModel(tiny_config(), add_pooling_layer=False)
    assert isinstance(backbone.encoder, MultiExitEncoder)
    with pytest.raises(ValueError, match="add_pooling_layer=False"):
        backbone.encoder.pool(3, torch.zeros(1, 2, 32))


def test_static_point_params_count_what_a_static_model_holds():
    """The ELUE runner counts a static-k point of a multi-exit model through ``exit_modules``."""
    dynamic = ElasticBertForSequenceClassification(tiny_config(num_output_layers=4))
    for k in (2, 4):
        static = ElasticBertForSequenceClassification(tiny_config(num_hidden_layers=k, num_output_layers=1))
        assert operating_point_params(dynamic, "static", k) == count_parameters(static)
