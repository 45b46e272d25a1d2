"""Test-wide settings: never touch the network, keep caches inside the test session."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def minilm_dir():
    """The real all-MiniLM-L6-v2 checkpoint installed by `make setup`."""
    from elue_hf.assets import minilm_path

    return minilm_path()


# Whole modules that take seconds per test (subprocesses, real weights, training, a browser, generate() loops, the
# transformers common suite): marked `slow`, so `make test-fast` (pytest -m "not slow") stays under a minute on two
# cores. `make test` runs everything.
SLOW_MODULES = {
    "tests/demo/",
    "tests/elasticbert/test_elasticbert_transformers_common.py",
    "tests/elasticbert/test_elasticbert_finetune.py",
    "tests/elasticbert/test_elasticbert_pretraining.py",
    "tests/elue/test_elue_verify.py",
    "tests/elue/test_elue_inference.py",
    "tests/elue/test_elue_flops_baselines.py",
    "tests/hashee/test_hashee_seq2seq.py",
    "tests/hashee/test_hashee_auto.py",
    "tests/leaderboard/test_leaderboard_browser.py",
    "tests/lpt/test_lpt_decoders.py",
    "tests/lpt/test_lpt_deberta.py",
    "tests/package/test_cli.py",
    "tests/package/test_package.py",
    "tests/hub/test_hub_push.py",
}


# Single test functions (all their parameter sets) that took 1.4 s or more in `pytest -m "not slow" --durations=0`.
SLOW_TESTS = {
    "tests/elasticbert/test_elasticbert_checkpoints.py::test_save_writes_auto_map_and_loads_without_elue_hf",
    "tests/elasticbert/test_elasticbert_modeling.py::test_batched_early_exit_equals_batch_of_one",
    "tests/elasticbert/test_elasticbert_modeling.py::test_pretraining_loss_over_exit_group",
    "tests/elasticbert/test_elasticbert_modeling.py::test_trainer_fine_tunes_all_exits",
    "tests/elasticbert/test_elasticbert_modeling.py::test_two_stage_training_freezes_the_right_parts",
    "tests/elue/test_elue_flops_architectures.py::test_deberta_matmuls_match_flop_counter_exactly",
    "tests/elue/test_elue_flops_architectures.py::test_generic_route_close_to_family_rules",
    "tests/elue/test_elue_flops_architectures.py::test_hooked_equals_analytic_per_instance_padded_batch",
    "tests/elue/test_elue_flops_architectures.py::test_modernbert_matmuls_match_flop_counter_with_the_window",
    "tests/elue/test_elue_metric.py::test_bare_name_after_install_in_a_fresh_process",
    "tests/elue/test_evaluate_families.py::test_evaluate_scores_a_local_classifier_of_each_family",
    "tests/hashee/test_hashee_flops.py::test_counter_sees_the_shrinking_shapes",
    "tests/hashee/test_hashee_model.py::test_all_tokens_to_last_layer_is_the_plain_model",
    "tests/hashee/test_hashee_model.py::test_gradients_match_between_modes",
    "tests/hashee/test_hashee_model.py::test_padding_is_masked_as_keys",
    "tests/hashee/test_hashee_model.py::test_save_load_round_trip",
    "tests/hashee/test_hashee_model.py::test_skip_equals_reference",
    "tests/hashee/test_hashee_model.py::test_trainer_trains_and_checkpoints_the_table",
    "tests/lpt/test_lpt_elasticbert.py::test_batched_early_exit_equals_rows_one_at_a_time",
    "tests/lpt/test_lpt_model.py::test_gradients_reach_only_the_generator_and_head",
    "tests/lpt/test_lpt_model.py::test_mask_forms_and_padding_give_identical_logits",
    "tests/lpt/test_lpt_model.py::test_no_activations_are_stored_below_the_prompt_layer",
    "tests/lpt/test_lpt_model.py::test_save_and_load_with_peft_and_auto_classes",
    "tests/lpt/test_lpt_model.py::test_trainer_trains_and_checkpoints_the_adapter",
    "tests/lpt/test_lpt_verbalizer.py::test_label_words_scored_by_the_frozen_mlm_head",
    "tests/package/test_saved_tokenizers.py::test_loading_without_elue_hf_never_prompts_and_names_the_fix",
    "tests/package/test_saved_tokenizers.py::test_pretrain_takes_a_tokenizer_and_saves_it",
}


def pytest_collection_modifyitems(config, items):
    root = config.rootpath
    for item in items:
        path = item.path.relative_to(root).as_posix() if item.path.is_relative_to(root) else ""
        function = f"{path}::{item.originalname}"
        if function in SLOW_TESTS or any(path == m or (m.endswith("/") and path.startswith(m)) for m in SLOW_MODULES):
            item.add_marker(pytest.mark.slow)
