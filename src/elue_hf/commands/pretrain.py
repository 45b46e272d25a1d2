"""``elue-hf pretrain``: continued multi-exit pre-training (registered by ``elue_hf.cli``; the work is in
:mod:`elue_hf.elasticbert.pretraining`). ``accelerate launch -m elue_hf.elasticbert.pretraining`` runs this command
too (that package's ``__main__``), so the options live here only. Import stays light."""

from __future__ import annotations

import argparse
from pathlib import Path

from .sources import TOKENIZER_FILES, check_source

__all__ = ["register", "add_arguments", "cmd_pretrain"]


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", default=None, help="BERT or ElasticBERT checkpoint (default: the embedded MiniLM)")
    parser.add_argument("--tokenizer", default=None,
                        help="tokenizer folder or Hub id (default: the one saved with --model); saved with the output")
    parser.add_argument("--text-file", default=None, help="UTF-8 text, one document per line (default: RT snippets)")
    parser.add_argument("--output-dir", default="elue_hf_outputs/pretrain")
    parser.add_argument("--overwrite", action="store_true", help="write into an existing non-empty --output-dir")
    parser.add_argument("--max-steps", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=32, help="per device")
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--num-groups", type=int, default=2, help="exit groups cycled over steps (1 = all exits)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def register(subparsers) -> None:
    parser = subparsers.add_parser("pretrain", help="continued multi-exit pre-training (MLM + SOP at every exit)")
    add_arguments(parser)
    parser.set_defaults(func=cmd_pretrain)


def cmd_pretrain(args) -> int:
    from ..elasticbert.pretraining import run

    if args.model:
        check_source(args.model, "--model")
    if args.tokenizer:
        check_source(args.tokenizer, "--tokenizer", TOKENIZER_FILES, "tokenizer")
    if args.text_file and not Path(args.text_file).is_file():
        raise FileNotFoundError(f"--text-file {args.text_file}: no such file")

    return 0 if run(args) else 1
