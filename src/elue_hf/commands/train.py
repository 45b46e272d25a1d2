"""``elue-hf train``: fine-tune every exit of an ElasticBERT (or a converted BERT) on a classification dataset.

    elue-hf train --model PATH --data-dir ELUE --task sst-2 --output-dir out
    elue-hf train --model PATH --dataset csv --data-files train=a.csv,validation=b.csv --text-columns text
    accelerate launch -m elue_hf.commands.train --model PATH --dataset glue --dataset-config sst2 ...

The logic is in :mod:`elue_hf.finetune`; heavy imports happen inside the command.
"""

from __future__ import annotations

import argparse
import json

from .sources import TOKENIZER_FILES, check_source
from .task_arg import task_arg

__all__ = ["register", "build_parser", "cmd_train"]

_MULTI_EXIT = ("gradient_equilibrium", "weighted", "two_stage")


def _columns(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not 1 <= len(names) <= 2:
        raise argparse.ArgumentTypeError(f"--text-columns takes one or two column names, got {text!r}")
    return names


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="elue-hf train", description=__doc__,
                                               formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_argument_group("model")
    model.add_argument("--model", required=True, help="ElasticBERT or BERT checkpoint (folder or Hub id)")
    model.add_argument("--tokenizer", default=None, help="tokenizer folder or Hub id (default: the model's own)")
    model.add_argument("--num-output-layers", type=int, default=None,
                       help="exits on the top layers when converting a BERT (default: every layer)")
    model.add_argument("--multi-exit-training", choices=_MULTI_EXIT, default="gradient_equilibrium",
                       help="how the exits train together (default: gradient equilibrium)")
    data = parser.add_argument_group("data (an ELUE task folder or a datasets dataset)")
    data.add_argument("--data-dir", default=None, help="ELUE data folder holding <Task>/train.tsv and dev.tsv")
    data.add_argument("--task", default=None, type=task_arg,
                      help="ELUE task with --data-dir: sst-2, imdb, mrpc, sts-b, snli, scitail")
    data.add_argument("--dataset", default=None,
                      help="Hub dataset id, a builder (csv, json, parquet) with --data-files, or one local file")
    data.add_argument("--dataset-config", default=None, help="configuration name of a Hub dataset")
    data.add_argument("--data-files", default=None, help="FILE or SPLIT=FILE[,SPLIT=FILE] for csv/json/parquet")
    data.add_argument("--text-columns", type=_columns, default=None,
                      help="one or two text columns (default: guessed: text, sentence, sentence1,sentence2, ...)")
    data.add_argument("--label-column", default="label")
    data.add_argument("--train-split", default="train")
    data.add_argument("--eval-split", default=None,
                      help="evaluation split (default: validation, else 10%% of train held out)")
    train = parser.add_argument_group("training (transformers.Trainer)")
    train.add_argument("--output-dir", default="elue_hf_outputs/train")
    train.add_argument("--overwrite", action="store_true", help="write into an existing non-empty --output-dir")
    train.add_argument("--learning-rate", type=float, default=2e-5)
    train.add_argument("--epochs", type=float, default=3.0)
    train.add_argument("--max-steps", type=int, default=-1, help="stop after this many steps (overrides --epochs)")
    train.add_argument("--batch-size", type=int, default=32, help="per device")
    train.add_argument("--max-length", type=int, default=128)
    train.add_argument("--warmup", type=float, default=0.1, help="warm-up: a fraction (< 1) or a number of steps")
    train.add_argument("--logging-steps", type=int, default=50)
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--report-to", default="none", help="Trainer loggers (none, tensorboard, wandb, ...)")
    train.add_argument("--use-cpu", action="store_true", help="train on the CPU even when a GPU is present")
    return parser


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="fine-tune every exit of an ElasticBERT (or a converted BERT) on a classification dataset",
        description="Fine-tune all exits with transformers.Trainer (accelerate launch scales it), evaluate every "
        "exit, and save the model with its tokenizer.",
    )
    build_parser(parser)
    parser.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from ..outputs import refuse_existing

    refuse_existing(args.output_dir, "--output-dir", args.overwrite)  # before any loading or training
    check_source(args.model, "--model")
    if args.tokenizer:
        check_source(args.tokenizer, "--tokenizer", TOKENIZER_FILES, "tokenizer")
    from ..finetune import (
        FinetuneSettings,
        finetune,
        load_classification_data,
        load_model_for_finetuning,
        parse_data_files,
    )

    data = load_classification_data(
        data_dir=args.data_dir, task=args.task, dataset=args.dataset, data_files=parse_data_files(args.data_files),
        dataset_config=args.dataset_config, text_columns=args.text_columns, label_column=args.label_column,
        train_split=args.train_split, eval_split=args.eval_split, seed=args.seed,
    )  # fmt: skip
    overrides = {"multi_exit_training": args.multi_exit_training}
    if args.num_output_layers is not None:
        overrides["num_output_layers"] = args.num_output_layers
    data_name = data.task.key if data.task is not None else "the data"
    model, tokenizer = load_model_for_finetuning(args.model, data.num_labels, data.label_names, args.tokenizer,
                                                 data_name=data_name, **overrides)
    settings = FinetuneSettings(
        output_dir=args.output_dir, learning_rate=args.learning_rate, num_train_epochs=args.epochs,
        max_steps=args.max_steps, batch_size=args.batch_size, max_length=args.max_length, warmup=args.warmup,
        logging_steps=args.logging_steps, seed=args.seed, report_to=args.report_to, overwrite=args.overwrite,
        extra={"use_cpu": True} if args.use_cpu else {},
    )  # fmt: skip
    metrics = finetune(model, tokenizer, data, settings)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}, indent=1))
    print(f"saved model + tokenizer: {args.output_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return cmd_train(build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
