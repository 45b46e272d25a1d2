"""The ``elue-hf`` command line: fast help with defaults, and ordinary mistakes end in one sentence + exit code 2."""

import json
import os
import socket
import subprocess
import sys

import pytest

from elue_hf.cli import COMMAND_MODULES, build_parser, main

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module

HEAVY = ("torch", "transformers", "peft", "numpy", "datasets", "gradio", "matplotlib", "evaluate", "accelerate")


def _commands():
    return sorted(build_parser()._subparsers._group_actions[0].choices)


def test_help_of_every_command_imports_no_heavy_library(tmp_path):
    code = (
        "import sys, json, contextlib, io\n"
        "from elue_hf.cli import build_parser\n"
        "parser = build_parser()\n"
        "out = {}\n"
        "for argv in [['--help']] + [[c, '--help'] for c in sys.argv[1:]]:\n"
        "    buf = io.StringIO()\n"
        "    with contextlib.redirect_stdout(buf):\n"
        "        try: parser.parse_args(argv)\n"
        "        except SystemExit as e: out[' '.join(argv)] = e.code\n"
        f"print(json.dumps({{'codes': out, 'heavy': [m for m in {HEAVY!r} if m in sys.modules]}}))\n"
    )
    commands = _commands()
    done = subprocess.run([sys.executable, "-c", code, *commands], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["heavy"] == []  # what made `elue-hf --help` take 9 s
    assert set(result["codes"].values()) == {0} and len(result["codes"]) == len(commands) + 1
    assert {"evaluate", "pretrain", "demo", "leaderboard", "score"} <= set(commands)
    assert len(COMMAND_MODULES) >= 5


def test_help_shows_defaults(capsys):
    for argv, wanted in ((["evaluate", "--help"], "default: 32"), (["leaderboard", "--help"], "(default: 7860)"),
                         (["pretrain", "--help"], "default: elue_hf_outputs/pretrain"),
                         (["demo", "--help"], "(default: 3200)")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 0
        assert wanted in " ".join(capsys.readouterr().out.split()), argv


def _one_sentence_error(capsys, argv, expected):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err, err


def test_missing_model_folder_and_wrong_task_name(tmp_path, capsys):
    base = ["evaluate", "--task", "sst-2", "--data-dir", str(tmp_path), "--output", str(tmp_path / "out")]
    _one_sentence_error(capsys, ["evaluate", "--model", str(tmp_path / "nope"), *base[1:]],
                        f"elue-hf evaluate: error: --model {tmp_path / 'nope'}: no such folder")
    _one_sentence_error(capsys, ["evaluate", "--model", "./models/nope", *base[1:]], "no such folder")
    _one_sentence_error(capsys, ["evaluate", "--model", str(tmp_path), *base[1:]],
                        "the folder has no model files (config.json, adapter_config.json)")
    _one_sentence_error(capsys, ["pretrain", "--model", str(tmp_path / "nope")], "--model")
    _one_sentence_error(capsys, ["push-model", str(tmp_path / "nope"), "--repo-id", "me/x"],
                        f"elue-hf push-model: error: model {tmp_path / 'nope'}: no such folder")
    _one_sentence_error(capsys, ["push-adapter", str(tmp_path), "--base-model", "b", "--repo-id", "me/x"],
                        "has no adapter files (adapter_config.json)")
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", "m", "--task", "sst3", "--data-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --task: unknown ELUE task 'sst3'; known tasks: sst-2, imdb" in err and "Traceback" not in err


def test_busy_port_is_refused_before_the_app_starts(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        _one_sentence_error(capsys, ["leaderboard", "--port", str(port), "--db", str(tmp_path / "x.db")],
                            f"cannot listen on 127.0.0.1:{port}")
    assert not (tmp_path / "x.db").exists()


def test_offline_hub_and_unknown_hub_model_end_in_one_sentence(tmp_path):
    code = (
        "import sys\n"
        "from elue_hf.cli import main\n"
        "data = main(['evaluate', '--model', sys.argv[1], '--task', 'sst-2', '--hub', '--output', sys.argv[2]])\n"
        "model = main(['evaluate', '--model', 'nobody/no-such-model', '--task', 'sst-2', '--data-dir', sys.argv[3],"
        " '--output', sys.argv[2] + '2'])\n"
        "print('codes', data, model)\n"
    )
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    from tests.helpers.elue_fixtures import synthetic_vocab, write_synthetic_elue

    data_dir = write_synthetic_elue(tmp_path / "data", ["sst-2"], sizes={"test": 4})
    model_dir = tmp_path / "model"
    BertForSequenceClassification(BertConfig(vocab_size=len(synthetic_vocab()), hidden_size=16, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=32)).save_pretrained(model_dir)
    BertTokenizer(vocab=synthetic_vocab()).save_pretrained(model_dir)
    done = subprocess.run(
        [sys.executable, "-c", code, str(model_dir), str(tmp_path / "out"), str(data_dir)], capture_output=True,
        text=True, timeout=300, env={**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
                                     "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.stdout.strip().splitlines()[-1] == "codes 2 2", done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("elue-hf evaluate: error:")]
    assert "Traceback" not in done.stderr and len(errors) == 2
    assert "could not be loaded from the Hub (stanfordnlp/sst" in errors[0] and "give --data-dir" in errors[0]
    assert ("--model nobody/no-such-model: not a local folder, and no such model is in the local Hugging Face cache "
            "while Hub access is off (HF_HUB_OFFLINE=1)") in errors[1]
