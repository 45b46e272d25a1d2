"""The server's tokenizers for the token-length check: an allow-list, malformed and degenerate tokenizers refused as
the package's error, and token lengths counted once per (tokenizer, task), in memory and on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest

from elue_hf.elue.data import load_test_labels, token_lengths
from elue_hf.elue.submission import read_submission
from elue_hf.elue.submission.checks import cross_check
from elue_hf.elue.submission.format import SubmissionError
from elue_hf.elue.submission.lengths import TokenLengthCache
from elue_hf.elue.submission.tokenizers import TokenizerAllowList
from elue_hf.elue.tasks import get_task
from elue_hf.leaderboard.submit import server_texts
from tests.helpers.elue_fixtures import write_synthetic_elue
from tests.helpers.leaderboard import TOKENIZER_ID, make_submission, tokenizer_root, true_lengths


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("server")
    data = write_synthetic_elue(root / "ELUE", tasks=("sst-2", "mrpc"), sizes={"test": 40})
    return data, tokenizer_root(root / "tokenizers")


def test_only_the_servers_tokenizers_are_loaded(server):
    _, root = server
    allowed = TokenizerAllowList([root])
    assert allowed.known() == [TOKENIZER_ID] and allowed.load(TOKENIZER_ID) is allowed.load(TOKENIZER_ID)  # once
    with pytest.raises(SubmissionError, match=r"'bert-base-uncased' is not among this server's tokenizers "
                                              r"\(elue-tests/synthetic-wordpiece\)"):
        allowed.load("bert-base-uncased")  # never fetched from the Hub in the web process
    with pytest.raises(SubmissionError, match="must be a Hub id"):
        allowed.load("../../etc")


def test_a_malformed_tokenizer_is_the_packages_error(tmp_path):
    folder = tmp_path / "owner--broken"
    folder.mkdir()
    (folder / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordPiece"}}))  # no vocab: a KeyError inside
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizerFast"}))
    with pytest.raises(SubmissionError, match=r"tokenizer 'owner/broken' cannot be loaded \("):
        TokenizerAllowList([tmp_path]).load("owner/broken")


def test_a_degenerate_tokenizer_is_refused(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    whole = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    whole.pre_tokenizer = pre_tokenizers.Split("\n", "isolated")  # a text without newlines is one token
    PreTrainedTokenizerFast(tokenizer_object=whole, unk_token="[UNK]").save_pretrained(tmp_path / "owner--whole")
    with pytest.raises(SubmissionError, match="splits a 10-word sentence into 1 token"):
        TokenizerAllowList([tmp_path]).load("owner/whole")


def test_lengths_are_counted_once_and_equal_truncated_tokenisation(server, tmp_path, monkeypatch):
    monkeypatch.setattr("elue_hf.elue.submission.tokenizers.CHUNK_ROWS", 7)  # several chunks, a partial last one
    data, root = server
    texts = server_texts(data)
    cache = TokenLengthCache(TokenizerAllowList([root]), tmp_path / "lengths")
    tokenizer = TokenizerAllowList([root]).load(TOKENIZER_ID)
    for task in (get_task("sst-2"), get_task("mrpc")):  # a single-sentence and a pair task
        for max_length in (4, 9, 512):
            expected = token_lengths(tokenizer, task, texts(task), max_length)
            assert np.array_equal(cache.lengths(TOKENIZER_ID, task, texts, max_length), expected)
    assert cache.computed == 2  # one tokenisation per task, whatever the max lengths
    assert len(list((tmp_path / "lengths").glob("*.npy"))) == 2
    again = TokenLengthCache(TokenizerAllowList([root]), tmp_path / "lengths")  # a restarted server
    again.lengths(TOKENIZER_ID, get_task("sst-2"), texts, 128)
    assert again.computed == 0  # read from disk


def test_many_files_tokenise_the_test_set_once(server, tmp_path):
    data, root = server
    gold = {"sst-2": load_test_labels(data, "sst-2")}
    lengths = true_lengths(data, ["sst-2"], root)
    honest = make_submission(tmp_path, gold, depths=(1, 2, 3), name="many", lengths=lengths, tokenizer=TOKENIZER_ID)
    cache = TokenLengthCache(TokenizerAllowList([root]))
    report = cross_check(read_submission(honest), server_texts(data), [root], lengths=cache)
    assert len(report["token_lengths"]) == 3 and cache.computed == 1


def test_a_load_error_never_shows_the_server_folder(tmp_path, monkeypatch):
    (tmp_path / "owner--x").mkdir()

    def fails(path, **kwargs):
        raise OSError(f"Can't load tokenizer for '{path}'. Make sure that '{path}' is a correct folder")

    monkeypatch.setattr("transformers.AutoTokenizer.from_pretrained", fails)
    with pytest.raises(SubmissionError, match=r"cannot be loaded \(OSError: Can't load tokenizer for "
                                              r"'<tokenizers>/owner--x'") as caught:
        TokenizerAllowList([tmp_path]).load("owner/x")
    assert str(tmp_path) not in str(caught.value)
