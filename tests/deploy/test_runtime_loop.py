"""The runtime's exit loop (batch-1 fast paths, shared memory arena) gives exactly what the plain loop gives: the
reference below gathers the remaining rows and trims padding after every exit, as the runtime did before."""

from __future__ import annotations

import numpy as np
import pytest

from tests.deploy.conftest import random_batch, tiny_model


def reference_forward(runtime, ids, mask, types, **options):
    """The plain exit loop: run, decide, gather the rows left and trim padding at every exit."""
    from elue_hf.deploy.policy import NumpyExitPolicy, resolve_exit_options, trim_padding

    criterion, threshold, patience, regression_threshold, static = resolve_exit_options(runtime.config, **options)
    policy = NumpyExitPolicy(criterion, threshold, patience, regression_threshold, runtime.config["num_labels"] == 1)
    last = static if criterion == "static" else runtime.num_layers
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    hidden = runtime.embeddings.run(None, {i.name: feeds[i.name] for i in runtime.embeddings.get_inputs()})[0]
    rows = np.arange(ids.shape[0])
    logits_out = np.zeros((ids.shape[0], runtime.config["num_labels"]), dtype=np.float32)
    exit_layer = np.full(ids.shape[0], last)
    for i in range(last):
        outputs = runtime.layers[i].run(None, {"hidden_states": hidden, "attention_mask": mask})
        hidden = outputs[0]
        if len(outputs) == 1 or (criterion not in ("entropy", "patience") and i + 1 != last):
            continue
        done = policy.step(outputs[1], last=i + 1 == last)
        logits_out[rows[done]] = outputs[1][done]
        exit_layer[rows[done]] = i + 1
        keep = ~done
        if not keep.any():
            break
        hidden, mask, rows = hidden[keep], mask[keep], rows[keep]
        policy.select(keep)
        hidden, mask = trim_padding(hidden, mask)
    return logits_out, exit_layer


def test_session_options_share_one_arena_only_when_asked():
    from elue_hf.deploy.runtime import session_options, shared_cpu_arena

    assert shared_cpu_arena() is True and shared_cpu_arena() is True  # registered once, then reused
    assert session_options(1, shared_arena=True).get_session_config_entry("session.use_env_allocators") == "1"
    with pytest.raises(Exception):  # entry not set: the session keeps its own arena
        session_options(1).get_session_config_entry("session.use_env_allocators")


OPTIONS = [
    {},
    {"exit_layer": 2},
    {"exit_criterion": "entropy", "entropy_threshold": 0.3},
    {"exit_criterion": "entropy", "entropy_threshold": 0.6},
    {"exit_criterion": "entropy", "entropy_threshold": 1e-9},  # nobody exits early: no-drop steps
    {"exit_criterion": "entropy", "entropy_threshold": 10.0},  # everybody exits at the first exit
    {"exit_criterion": "patience", "patience": 1},
    {"exit_criterion": "patience", "patience": 2},
]


@pytest.mark.slow  # exports ONNX graphs (seconds each)
@pytest.mark.parametrize("shared_arena", [True, False])
@pytest.mark.parametrize("key", [("cls", 2), ("mean", 3), ("cls", 1)])
def test_forward_equals_the_plain_loop_batched_and_at_batch_1(bundles, key, shared_arena):
    from elue_hf.deploy import OnnxElasticBertForSequenceClassification

    runtime = OnnxElasticBertForSequenceClassification.from_pretrained(bundles[key][1], threads=1,
                                                                       shared_arena=shared_arena)
    ids, mask, types = (t.numpy() for t in random_batch())
    mask[:, -3:] = 0  # trailing columns padded in every row: trimmed at the first exit
    for options in OPTIONS:
        if key == ("cls", 1) and options.get("exit_criterion") == "entropy":
            continue  # entropy is undefined for regression
        if key == ("cls", 1) and options.get("exit_criterion") == "patience":
            options = {**options, "regression_threshold": 0.5}
        batches = [(ids, mask, types)] + [(ids[r : r + 1], mask[r : r + 1], types[r : r + 1]) for r in range(3)]
        for batch in batches:
            out = runtime.forward(*batch, **options)
            logits, layers = reference_forward(runtime, *batch, **options)
            np.testing.assert_array_equal(out.exit_layer, layers)
            np.testing.assert_array_equal(out.logits, logits)


@pytest.mark.slow
def test_layers_without_an_exit_are_passed_through(tmp_path):
    from elue_hf.deploy import OnnxElasticBertForSequenceClassification, export_elasticbert

    folder = export_elasticbert(tiny_model(num_output_layers=2), tmp_path / "bundle", overwrite=True)
    runtime = OnnxElasticBertForSequenceClassification.from_pretrained(folder, threads=1)
    assert len(runtime.exit_layers) == 2
    ids, mask, types = (t.numpy() for t in random_batch())
    static = {"exit_layer": runtime.exit_layers[0]}
    for options in ({}, {"exit_criterion": "entropy", "entropy_threshold": 0.5}, static):
        for batch in [(ids, mask, types), (ids[:1], mask[:1], types[:1])]:
            out = runtime.forward(*batch, **options)
            logits, layers = reference_forward(runtime, *batch, **options)
            np.testing.assert_array_equal(out.exit_layer, layers)
            np.testing.assert_array_equal(out.logits, logits)
