"""``elue-hf`` command line: each area registers its own sub-commands (``register(subparsers)``).

Building the parser imports no heavy library (``elue-hf --help`` and ``elue-hf <command> --help`` stay fast):
command modules import torch, transformers, datasets or gradio inside their command functions.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that expose ``register(subparsers)``; their imports must stay light.
COMMAND_MODULES = (
    "elue_hf.demo.runner",
    "elue_hf.commands.pretrain",
    "elue_hf.commands.convert",
    "elue_hf.commands.train",
    "elue_hf.commands.evaluate",
    "elue_hf.commands.leaderboard",
    "elue_hf.commands.hub",
    "elue_hf.commands.verify",
    "elue_hf.commands.export",
)


def _shows_default(action) -> bool:
    return not any(action.default is v for v in (None, False, argparse.SUPPRESS))


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, unless it is None/False or the help text already names it."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not _shows_default(action) or "default" in text:
            return text
        return super()._get_help_string(action)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with :class:`HelpFormatter`; sub-command parsers inherit it."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        if action.help is None and action.option_strings and _shows_default(action):
            action.help = "default: %(default)s"  # argparse prints no default for an option without help
        return action


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="elue-hf",
        description="Efficient NLP for the Hugging Face ecosystem: ElasticBERT, HashEE, LPT and the ELUE benchmark.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as err:  # ordinary mistakes: one sentence, no traceback
        print(f"elue-hf {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"elue-hf {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
