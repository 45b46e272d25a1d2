"""Cross-checks of declared submissions (the `consistent` tier): parameters, row structure, token lengths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from elue_hf.elue.data import load_test_labels
from elue_hf.elue.flops.module_spec import (
    encoder_modules,
    module_spec_from_config,
    validate_module_spec,
    with_embedding_sizes,
)
from elue_hf.elue.flops.params import count_parameters, encoder_classifier_params
from elue_hf.elue.submission import SubmissionError, SubmissionFile, read_submission
from elue_hf.elue.submission.checks import (
    check_params,
    check_structure,
    check_token_lengths,
    cross_check,
    load_tokenizer,
    spec_params,
)
from elue_hf.leaderboard.store import SQLiteStore
from elue_hf.leaderboard.submit import SubmitError, server_texts, submit_file
from tests.helpers.elue_fixtures import write_synthetic_elue
from tests.helpers.leaderboard import (
    DIMS,
    TOKENIZER_ID,
    bert_base_spec,
    make_submission,
    tokenizer_root,
    true_lengths,
)

SPEC = validate_module_spec(bert_base_spec())


def declared(modules, params=1, spec=SPEC) -> SubmissionFile:
    n = len(modules)
    return SubmissionFile(path="sst-2/x.tsv", task="sst-2", label="x", predictions=np.zeros(n, dtype=np.int64),
                          mflops=np.ones(n), mean_mflops=1.0, flops_source="modules", params=params,
                          modules=list(modules), module_spec=spec)


def test_parameter_rule_matches_the_analytic_counts():
    assert spec_params(SPEC) == encoder_classifier_params(12, 12) and round(spec_params(SPEC) / 1e6, 2) == 116.00
    for k in (1, 3, 12):
        used = ["emb", *(f"layer_{i}" for i in range(1, k + 1)), f"exit_{k}"]
        assert spec_params(SPEC, used) == encoder_classifier_params(k)


def test_parameter_rule_matches_a_real_model():
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(vocab_size=97, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=48, max_position_embeddings=40, num_labels=3)
    spec = validate_module_spec(with_embedding_sizes(module_spec_from_config(config), config))
    assert spec["emb"]["vocab"] == 97 and spec_params(spec) == count_parameters(BertForSequenceClassification(config))


def test_params_must_follow_the_spec():
    rows = [encoder_modules(DIMS, 20, 6, "static")] * 3
    used = ["emb", *(f"layer_{i}" for i in range(1, 7)), "exit_6"]
    check_params(declared(rows, spec_params(SPEC, used)))  # a static point: the modules its rows run
    check_params(declared(rows, spec_params(SPEC)))  # or the whole model
    with pytest.raises(SubmissionError, match="params 31,517,186 disagree with the module spec, which implies"):
        check_params(declared(rows, encoder_classifier_params(1)))
    mixed = [encoder_modules(DIMS, 20, k, "dynamic") for k in (2, 5)]
    with pytest.raises(SubmissionError, match="disagree"):  # a dynamic point holds the whole model
        check_params(declared(mixed, spec_params(SPEC, ["emb", "layer_1", "layer_2", "exit_1", "exit_2"])))
    no_sizes = validate_module_spec(module_spec_from_config(DIMS))
    with pytest.raises(SubmissionError, match="must give vocab, positions and token_types"):
        check_params(declared(rows, 1, no_sizes))


@pytest.mark.parametrize("row, message", [
    ("(20,768),layer_1; (768),exit_1", "must start with the embedding"),
    ("(20),emb; (20,768),layer_1", "must end with an exit"),
    ("(20),emb; (20,768),layer_2; (768),exit_2", "'layer_2' where 'layer_1' should run next"),
    ("(20),emb; (20,768),layer_1; (20,768),layer_1; (768),exit_1", "'layer_1' where 'layer_2' should run next"),
    ("(20),emb; (20,768),layer_1; (20,768),layer_2; (768),exit_1", "exit 'exit_1' after layer 'layer_2'"),
    ("(20),emb; (21,768),layer_1; (768),exit_1", "sees 21 tokens, the embedding 20"),
    ("(20),emb; (768),exit_1", "exit 'exit_1' before any layer"),
])
def test_structure_rule(row, message):
    good = encoder_modules(DIMS, 20, 2, "dynamic")
    check_structure(declared([good]))
    with pytest.raises(SubmissionError, match=f"sst-2/x.tsv index 1: .*{message}"):
        check_structure(declared([good, row]))


@given(st.integers(1, 512), st.integers(1, 12), st.sampled_from(["static", "dynamic"]),
       st.lists(st.integers(1, 512), min_size=12, max_size=12))
@settings(max_examples=60, deadline=None)
def test_every_row_the_package_writes_passes_and_a_dropped_layer_fails(n, k, mode, active):
    row = encoder_modules(DIMS, n, k, mode, active_tokens=[min(a, n) for a in active])
    check_structure(declared([row]))
    if k > 1:
        entries = row.split("; ")
        broken = "; ".join(e for e in entries if not e.endswith(",layer_1"))
        with pytest.raises(SubmissionError):
            check_structure(declared([broken]))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    data = write_synthetic_elue(root / "ELUE", tasks=("sst-2",), sizes={"test": 40})
    tokenizers = tokenizer_root(root / "tokenizers")
    return data, tokenizers, true_lengths(data, ["sst-2"], tokenizers)


def test_token_lengths_against_the_servers_tokenizer(tmp_path, server):
    data, tokenizers, lengths = server
    gold = {"sst-2": load_test_labels(data, "sst-2")}
    honest = make_submission(tmp_path, gold, depths=(3,), name="honest", lengths=lengths, tokenizer=TOKENIZER_ID)
    report = cross_check(read_submission(honest), server_texts(data), [tokenizers], allow_hub=False)
    assert report["token_lengths"] == ["sst-2/sst-2-k3.tsv"] and report["skipped"] == []
    one_token = make_submission(tmp_path, gold, depths=(3,), name="short", lengths={"sst-2": np.ones(40, int)},
                                tokenizer=TOKENIZER_ID)
    with pytest.raises(SubmissionError, match=r"40 of 40 instances declare a token length that differs from the "
                                              r"named tokenizer's \(index 0: declared 1, tokenizer gives"):
        cross_check(read_submission(one_token), server_texts(data), [tokenizers], allow_hub=False)
    store = SQLiteStore(tmp_path / "lb.db")
    with pytest.raises(SubmitError, match="40 of 40 instances declare a token length"):
        submit_file(store, one_token, data, tokenizer_roots=[tokenizers])
    off_by_one = dict(lengths)
    off_by_one["sst-2"] = lengths["sst-2"].copy()
    off_by_one["sst-2"][[3, 7]] += 1
    one = make_submission(tmp_path, gold, depths=(3,), name="two-off", lengths=off_by_one, tokenizer=TOKENIZER_ID)
    with pytest.raises(SubmitError, match=r"2 of 40 instances .*index 3: .*index 7:"):
        submit_file(store, one, data, tokenizer_roots=[tokenizers])
    assert submit_file(store, honest, data, tokenizer_roots=[tokenizers]).entry.flops_tier == "consistent"


def test_the_manifest_must_name_a_safe_tokenizer(tmp_path, server):
    data, tokenizers, lengths = server
    gold = {"sst-2": load_test_labels(data, "sst-2")}
    unnamed = make_submission(tmp_path, gold, depths=(3,), name="unnamed", lengths=lengths)
    with pytest.raises(SubmissionError, match="must name its 'tokenizer'"):
        cross_check(read_submission(unnamed), server_texts(data), [tokenizers], allow_hub=False)
    for name in ("/etc", "../tokenizers/x", "a/b/c"):
        with pytest.raises(SubmissionError, match="must be a Hub id"):
            load_tokenizer(name, [tokenizers])
    with pytest.raises(SubmissionError, match="is not among this server's tokenizers .elue-tests/synthetic-wordpiece"):
        load_tokenizer("someone/else", [tokenizers], allow_hub=False)


def test_check_token_lengths_counts_rows():
    with pytest.raises(SubmissionError, match="2 rows for 3 test texts"):
        check_token_lengths(declared([encoder_modules(DIMS, 5, 1)] * 2), np.array([5, 5, 5]))
