"""Shared pieces of the runs of transformers' common model tests against the package's model classes."""

from __future__ import annotations


def run_config_common_tests(tester) -> None:
    """``ConfigTester.run_common_tests`` minus ``check_config_arguments_init``, whose ``config_common_kwargs`` live in
    tests/utils/test_configuration_utils.py, a file the transformers sdist does not ship."""
    tester.create_and_test_config_common_properties()
    tester.create_and_test_config_to_json_string()
    tester.create_and_test_config_to_json_file()
    tester.create_and_test_config_from_and_save_pretrained()
    tester.create_and_test_config_from_and_save_pretrained_subfolder()
    tester.create_and_test_config_from_and_save_pretrained_composite()
    tester.create_and_test_config_with_num_labels()
    tester.create_and_test_config_from_pretrained_custom_kwargs()
    tester.check_config_can_be_init_without_params()
