"""transformers' own common model tests (``ModelTesterMixin`` of transformers 5.23.0) run against ElasticBERT.

The test files come from the transformers sdist at the pinned version, extracted by ``make setup`` (see
``tests/helpers/extract_transformers_tests.py``) into ``.venv/transformers_tests``; they are never copied into this
repository. Without that folder the whole module is skipped, saying how to get it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import unittest
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    return next((p for p in here.parents if (p / "pyproject.toml").is_file()), here.parent)


TESTS_DIR = Path(os.environ.get("ELUE_HF_TRANSFORMERS_TESTS", _repo_root() / ".venv" / "transformers_tests"))
if not (TESTS_DIR / "transformers_common_tests" / "test_modeling_common.py").is_file():
    pytest.skip(
        f"transformers' common model tests are not extracted at {TESTS_DIR} (run `make setup`, which downloads the "
        "transformers 5.23.0 sdist and extracts them; or set ELUE_HF_TRANSFORMERS_TESTS)",
        allow_module_level=True,
    )
sys.path.insert(0, str(TESTS_DIR))

from transformers_common_tests.test_configuration_common import ConfigTester  # noqa: E402
from transformers_common_tests.test_modeling_common import (  # noqa: E402
    ModelTesterMixin,
    ids_tensor,
    random_attention_mask,
)

from elue_hf import (  # noqa: E402
    ElasticBertConfig,
    ElasticBertForMaskedLM,
    ElasticBertForPreTraining,
    ElasticBertForSequenceClassification,
    ElasticBertModel,
)
from tests.helpers.transformers_common import run_config_common_tests  # noqa: E402


class ElasticBertModelTester:
    """Tiny dynamic ElasticBERT (an exit on each of 2 layers) and BERT-like inputs."""

    def __init__(self, parent, batch_size=3, seq_length=7, vocab_size=99, hidden_size=32, num_hidden_layers=2,
                 num_attention_heads=4, intermediate_size=37, num_labels=3, is_training=True):  # fmt: skip
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.num_labels = num_labels
        self.is_training = is_training

    def get_config(self) -> ElasticBertConfig:
        return ElasticBertConfig(
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            intermediate_size=self.intermediate_size,
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
            max_position_embeddings=64,
            type_vocab_size=2,
            max_output_layers=self.num_hidden_layers,
            num_output_layers=self.num_hidden_layers,
            num_labels=self.num_labels,
        )

    def prepare_config_and_inputs_for_common(self):
        shape = [self.batch_size, self.seq_length]
        inputs = {
            "input_ids": ids_tensor(shape, self.vocab_size),
            "token_type_ids": ids_tensor(shape, 2),
            "attention_mask": random_attention_mask(shape),
        }
        return self.get_config(), inputs


class ElasticBertCommonModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (
        ElasticBertModel,
        ElasticBertForSequenceClassification,
        ElasticBertForMaskedLM,
        ElasticBertForPreTraining,
    )

    # ElasticBERT's `_init_weights` covers every weight (the check is otherwise reserved to models added since 2023)
    test_can_init_all_missing_weights_before_2023 = True

    def setUp(self):
        self.model_tester = ElasticBertModelTester(self)
        self.config_tester = ConfigTester(self, config_class=ElasticBertConfig, hidden_size=48)

    def test_config(self):
        run_config_common_tests(self.config_tester)

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        # transformers picks labels from its own Auto mappings, which do not list remote/custom classes
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels=return_labels)
        if return_labels:
            tester = self.model_tester
            if model_class is ElasticBertForSequenceClassification:
                inputs_dict["labels"] = torch.zeros(tester.batch_size, dtype=torch.long)
            elif model_class in (ElasticBertForMaskedLM, ElasticBertForPreTraining):
                inputs_dict["labels"] = torch.zeros(tester.batch_size, tester.seq_length, dtype=torch.long)
                if model_class is ElasticBertForPreTraining:
                    inputs_dict["sentence_order_label"] = torch.zeros(tester.batch_size, dtype=torch.long)
        return inputs_dict

    # transformers leaves the base model out of its training tests only when its own MODEL_MAPPING lists it, which a
    # custom model never is: run them on the classes that return a loss.

    def test_training(self):
        with _head_classes_only(self):
            super().test_training()

    def check_training_gradient_checkpointing(self, gradient_checkpointing_kwargs=None):
        with _head_classes_only(self):
            super().check_training_gradient_checkpointing(gradient_checkpointing_kwargs)

    # transformers' own skip messages for these two would be wrong for ElasticBERT

    def test_resize_position_vector_embeddings(self):
        self.skipTest("ElasticBERT, like BERT, offers no resize_position_embeddings (its positions are a fixed table)")

    def test_sdpa_can_dispatch_composite_models(self):
        self.skipTest("ElasticBERT is not a composite model; test_sdpa_can_dispatch_non_composite_models covers SDPA")

    # RoPE checks (transformers skips them saying the tester has no `base_model_class`, i.e. no model in its mapping)
    _NO_ROPE = "ElasticBERT uses BERT's absolute position embeddings: no rotary embedding to test"

    def test_model_rope_scaling_from_config_0_linear(self):
        self.skipTest(self._NO_ROPE)

    def test_model_rope_scaling_from_config_1_dynamic(self):
        self.skipTest(self._NO_ROPE)

    def test_model_rope_scaling_from_config_2_yarn(self):
        self.skipTest(self._NO_ROPE)

    def test_model_rope_scaling_frequencies(self):
        self.skipTest(self._NO_ROPE)

    def test_vision_axial_rope(self):
        self.skipTest(self._NO_ROPE)

    def test_model_rope_with_partial_rotation(self):
        self.skipTest(self._NO_ROPE)


@contextlib.contextmanager
def _head_classes_only(test: ElasticBertCommonModelTest):
    test.all_model_classes = tuple(c for c in type(test).all_model_classes if c is not ElasticBertModel)
    try:
        yield
    finally:
        del test.all_model_classes
