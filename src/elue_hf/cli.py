"""``elue-hf`` command line: each area registers its own sub-commands (``register(subparsers)``)."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that expose ``register(subparsers)``; imported lazily so ``elue-hf --help`` stays fast.
COMMAND_MODULES = (
    "elue_hf.demo.runner",
    "elue_hf.elasticbert.pretraining",
    "elue_hf.commands.convert",
    "elue_hf.commands.train",
    "elue_hf.commands.evaluate",
    "elue_hf.commands.leaderboard",
    "elue_hf.commands.hub",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="elue-hf",
        description="Efficient NLP for the Hugging Face ecosystem: ElasticBERT, HashEE, LPT and the ELUE benchmark.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:  # an area not built yet
            if err.name and name.startswith(err.name):
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:
        print(f"elue-hf {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
