"""The token-length cache the web app reads: filled by ``prepare`` (the ``elue-hf leaderboard-prepare`` step), keyed by
a hash of the tokenizer's files and of the test set, and never counting in a cache built with ``compute=False``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from elue_hf.elue.data import token_lengths
from elue_hf.elue.submission.format import SubmissionError
from elue_hf.elue.submission.lengths import LengthsNotReady, ServerTexts, TokenLengthCache, prepare
from elue_hf.elue.submission.tokenizers import TokenizerAllowList
from elue_hf.elue.tasks import get_task
from tests.helpers.elue_fixtures import write_synthetic_elue
from tests.helpers.leaderboard import TOKENIZER_ID, tokenizer_root

OTHER_ID = "elue-tests/other-wordpiece"
SST2, MRPC = get_task("sst-2"), get_task("mrpc")


@pytest.fixture
def server(tmp_path):
    data = write_synthetic_elue(tmp_path / "ELUE", tasks=("sst-2", "mrpc"), sizes={"test": 30})
    root = tokenizer_root(tmp_path / "tokenizers")
    shutil.copytree(root / TOKENIZER_ID.replace("/", "--"), root / OTHER_ID.replace("/", "--"))
    return data, root, tmp_path / "token-lengths"


def reader(root, folder, calls=None) -> TokenLengthCache:
    """The web app's cache: reads only; records the cold (tokenizer, task) pairs in ``calls``."""
    return TokenLengthCache(TokenizerAllowList([root]), folder, compute=False,
                            when_cold=None if calls is None else lambda name, task: calls.append((name, task.key)))


def test_prepare_counts_every_allowed_tokenizer_and_test_set_once(server):
    data, root, folder = server
    rows = prepare([root], data, folder)
    assert sorted((r["tokenizer"], r["task"], r["status"]) for r in rows) == [
        (OTHER_ID, "mrpc", "counted"), (OTHER_ID, "sst-2", "counted"),
        (TOKENIZER_ID, "mrpc", "counted"), (TOKENIZER_ID, "sst-2", "counted")]
    assert {r["status"] for r in prepare([root], data, folder)} == {"cached"}  # a second run counts nothing
    assert len(list(folder.glob("*.npy"))) == 4
    web, texts = reader(root, folder), ServerTexts(data)
    tokenizer = TokenizerAllowList([root]).load(TOKENIZER_ID)
    for task in (SST2, MRPC):  # a single-sentence and a pair task
        for max_length in (5, 512):
            expected = token_lengths(tokenizer, task, texts(task), max_length)
            assert np.array_equal(web.lengths(TOKENIZER_ID, task, texts, max_length), expected)
    assert web.computed == 0 and web.tokenizers._loaded == {}  # the reader never loaded a tokenizer


def test_a_cold_reader_refuses_in_one_sentence_and_asks_for_the_job(server):
    data, root, folder = server
    calls = []
    web = reader(root, folder, calls)
    with pytest.raises(LengthsNotReady, match=r"^this server is still counting the token lengths of the SST-2 test "
                                              r"set under tokenizer 'elue-tests/synthetic-wordpiece' \(a background "
                                              r"job\); nothing was checked or stored: try again in a minute$"):
        web.lengths(TOKENIZER_ID, SST2, ServerTexts(data), 128)
    assert calls == [(TOKENIZER_ID, "sst-2")] and web.computed == 0 and web.tokenizers._loaded == {}
    assert not folder.exists() or not list(folder.glob("*.npy"))
    with pytest.raises(SubmissionError, match="is not among this server's tokenizers"):  # the allow-list still first
        web.lengths("bert-base-uncased", SST2, ServerTexts(data), 128)
    with pytest.raises(ValueError, match="needs server tokenizer folders and a cache folder"):
        TokenLengthCache(TokenizerAllowList([root], allow_hub=True), folder, compute=False)


def test_changing_a_tokenizer_file_or_the_test_set_invalidates_the_lengths(server):
    data, root, folder = server
    prepare([root], data, folder)
    texts, web = ServerTexts(data), reader(root, folder)
    before = web.lengths(TOKENIZER_ID, SST2, texts, 512)
    config = root / TOKENIZER_ID.replace("/", "--") / "tokenizer_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "comment": "edited"}))  # any file: a new key
    with pytest.raises(LengthsNotReady):
        web.lengths(TOKENIZER_ID, SST2, texts, 512)
    assert web.lengths(OTHER_ID, SST2, texts, 512) is not None  # the other tokenizer's lengths still hold
    assert {r["status"] for r in prepare([root], data, folder) if r["tokenizer"] == TOKENIZER_ID} == {"counted"}
    assert np.array_equal(web.lengths(TOKENIZER_ID, SST2, texts, 512), before)  # same vocabulary in use
    test_file = texts.path(SST2)
    lines = test_file.read_text().splitlines()
    test_file.write_text("\n".join([lines[0], lines[2], lines[1], *lines[3:]]) + "\n")  # rows swapped
    with pytest.raises(LengthsNotReady):
        web.lengths(TOKENIZER_ID, SST2, texts, 512)
    prepare([root], data, folder)
    after = web.lengths(TOKENIZER_ID, SST2, texts, 512)
    assert after[0] == before[1] and after[1] == before[0]


def test_a_tokenizer_that_cannot_be_loaded_is_refused_by_the_reader_with_the_jobs_sentence(server):
    data, root, folder = server
    broken = root / "owner--broken"
    broken.mkdir()
    (broken / "tokenizer.json").write_text(json.dumps({"model": {"type": "WordPiece"}}))
    (broken / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizerFast"}))
    rows = [r for r in prepare([root], data, folder) if r["tokenizer"] == "owner/broken"]
    assert len(rows) == 1 and rows[0]["status"] == "refused" and "cannot be loaded" in rows[0]["why"]
    with pytest.raises(SubmissionError, match=r"^tokenizer 'owner/broken' cannot be loaded \(") as caught:
        reader(root, folder).lengths("owner/broken", MRPC, ServerTexts(data), 128)
    assert not isinstance(caught.value, LengthsNotReady)  # a refusal, not "try again"
