"""transformers' own common model tests (``ModelTesterMixin`` of the pinned transformers) run against the multi-exit
model classes, once per backbone family, as ``tests/elasticbert/test_elasticbert_transformers_common.py`` does for
ElasticBERT (same extracted test files; without them the module is skipped, saying how to get them)."""

from __future__ import annotations

import contextlib
import unittest

import pytest
import torch

from elue_hf.multiexit import MultiExitConfig, MultiExitForSequenceClassification, MultiExitModel  # noqa: E402
from elue_hf.multiexit.adapters import adapter_for  # noqa: E402
from tests.elasticbert.test_elasticbert_transformers_common import (  # skips this module when not extracted
    ConfigTester,
    ModelTesterMixin,
    ids_tensor,
    random_attention_mask,
)
from tests.helpers.tiny_families import VOCAB, tiny_config  # noqa: E402
from tests.helpers.transformers_common import run_config_common_tests

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module


class MultiExitModelTester:
    """A tiny multi-exit model of one family (2 layers, an exit on each) and that family's inputs."""

    def __init__(self, parent, family, batch_size=3, seq_length=7, num_labels=3, is_training=True):
        self.parent, self.family = parent, family
        self.batch_size, self.seq_length, self.num_labels, self.is_training = (batch_size, seq_length, num_labels,
                                                                                is_training)
        self.vocab_size = VOCAB
        backbone = tiny_config(family, attn="eager", num_hidden_layers=2)
        self.hidden_size = backbone.hidden_size
        self.num_hidden_layers = backbone.num_hidden_layers
        self.num_attention_heads = backbone.num_attention_heads

    def get_config(self) -> MultiExitConfig:
        backbone = tiny_config(self.family, attn="eager", num_hidden_layers=2)
        del backbone._attn_implementation_internal  # the multi-exit model passes its own choice down
        settings = adapter_for(backbone.model_type).head_settings(backbone)
        return MultiExitConfig(backbone_config=backbone, exit_layers=[1, 2], num_labels=self.num_labels, **settings)

    def prepare_config_and_inputs_for_common(self):
        shape = [self.batch_size, self.seq_length]
        mask = random_attention_mask(shape)
        inputs = {"input_ids": ids_tensor(shape, self.vocab_size), "attention_mask": mask}
        return self.get_config(), inputs


class _MultiExitCommonTests(ModelTesterMixin):
    """The common tests for one family (subclasses name it)."""

    family: str
    all_model_classes = (MultiExitModel, MultiExitForSequenceClassification)
    # `_init_weights` of the multi-exit model covers every weight (the backbone's through its own `_init_weights`)
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        self.model_tester = MultiExitModelTester(self, self.family)
        self.config_tester = ConfigTester(self, config_class=MultiExitConfig, pooling="mean", patience=1,
                                          common_properties=["hidden_size", "num_hidden_layers"])

    def test_config(self):
        run_config_common_tests(self.config_tester)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        # transformers picks labels from its own Auto mappings, which do not list registered custom classes
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels and model_class is MultiExitForSequenceClassification:
            inputs_dict["labels"] = torch.zeros(self.model_tester.batch_size, dtype=torch.long)
        return inputs_dict

    def test_training(self):
        with _head_classes_only(self):
            super().test_training()

    def check_training_gradient_checkpointing(self, gradient_checkpointing_kwargs=None):
        with _head_classes_only(self):
            super().check_training_gradient_checkpointing(gradient_checkpointing_kwargs)

    # transformers' own skip messages for these would be wrong for the multi-exit model

    def test_resize_position_vector_embeddings(self):
        self.skipTest("none of the backbones offers resize_position_embeddings (fixed tables, relative or rotary)")

    def test_sdpa_can_dispatch_composite_models(self):
        self.skipTest("the backbone is built from a nested config but is not a separate sub-model with its own "
                      "attention setting; test_sdpa_can_dispatch_non_composite_models covers SDPA")

    def test_sliding_window_mask(self):
        if self.family != "modernbert":
            return super().test_sliding_window_mask()
        self.skipTest("the test checks the causal `use_sliding_window` switch of decoder configs; ModernBERT's window "
                      "is a bidirectional `local_attention` of backbone_config (tested by test_multiexit_lpt on a "
                      "sliding-window layer), and ModernBERT's own config has no such switch either")

    # RoPE checks (transformers skips them saying the tester has no `base_model_class`: a registered model is not in
    # its MODEL_MAPPING). Only ModernBERT has a rotary embedding, its backbone's own `rotary_emb`, configured in
    # `backbone_config.rope_parameters`: transformers' ModernBERT tests cover it, the multi-exit adapter calls it.

    def _no_rope(self):
        self.skipTest(
            "ModernBERT's rotary embedding is the backbone's own module, configured in backbone_config (covered by "
            "transformers' ModernBERT tests)" if self.family == "modernbert" else
            f"{self.family} has no rotary position embedding"
        )

    def test_model_rope_scaling_from_config_0_linear(self):
        self._no_rope()

    def test_model_rope_scaling_from_config_1_dynamic(self):
        self._no_rope()

    def test_model_rope_scaling_from_config_2_yarn(self):
        self._no_rope()

    def test_model_rope_scaling_frequencies(self):
        self._no_rope()

    def test_vision_axial_rope(self):
        self._no_rope()

    def test_model_rope_with_partial_rotation(self):
        self._no_rope()


@contextlib.contextmanager
def _head_classes_only(test):
    test.all_model_classes = (MultiExitForSequenceClassification,)
    try:
        yield
    finally:
        del test.all_model_classes


class RobertaMultiExitCommonTest(_MultiExitCommonTests, unittest.TestCase):
    family = "roberta"


class ElectraMultiExitCommonTest(_MultiExitCommonTests, unittest.TestCase):
    family = "electra"


class DistilBertMultiExitCommonTest(_MultiExitCommonTests, unittest.TestCase):
    family = "distilbert"


class DebertaV2MultiExitCommonTest(_MultiExitCommonTests, unittest.TestCase):
    family = "deberta-v2"


class ModernBertMultiExitCommonTest(_MultiExitCommonTests, unittest.TestCase):
    family = "modernbert"
