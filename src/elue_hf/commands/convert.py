"""``elue-hf convert``: turn a BERT checkpoint into an ElasticBERT folder (weights, remote code and tokenizer)."""

from __future__ import annotations

from .sources import TOKENIZER_FILES, check_source

__all__ = ["register", "cmd_convert"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert", help="turn a BERT checkpoint into an ElasticBERT (an exit on every layer) with its tokenizer",
        description="Copy a BERT backbone into an ElasticBERT: every exit's pooler starts from BERT's pooler, the "
        "exit classifiers start fresh. The folder loads with the Auto classes (after `import elue_hf`, or with "
        "trust_remote_code=True) and holds the tokenizer; fine-tune it with `elue-hf train`.",
    )
    parser.add_argument("--model", default=None, help="BERT folder or Hub id (default: the embedded MiniLM)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder or Hub id (default: the model's own)")
    parser.add_argument("--output-dir", required=True, help="where to save the ElasticBERT")
    parser.add_argument("--overwrite", action="store_true", help="write into an existing non-empty --output-dir")
    parser.add_argument("--num-labels", type=int, default=2, help="labels of the exit classifiers (1 = regression)")
    parser.add_argument("--num-output-layers", type=int, default=None,
                        help="exits on the top layers (default: every layer; 1 = a static model)")
    parser.add_argument("--pooling", choices=("cls", "mean"), default="cls",
                        help="what every exit pools: [CLS] (ElasticBERT's own) or the mean over valid tokens (for "
                             "mean-pooling sentence encoders such as all-MiniLM-L6-v2; docs/elasticbert.md)")
    parser.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    from ..elasticbert.convert import convert_bert_to_elasticbert
    from ..outputs import refuse_existing

    refuse_existing(args.output_dir, "--output-dir", args.overwrite)
    source = args.model
    if source is not None:
        check_source(source, "--model")
    if args.tokenizer:
        check_source(args.tokenizer, "--tokenizer", TOKENIZER_FILES, "tokenizer")
    if source is None:
        from ..assets import minilm_path

        source = str(minilm_path())
    model = convert_bert_to_elasticbert(source, num_labels=args.num_labels, num_output_layers=args.num_output_layers,
                                        save_directory=args.output_dir, tokenizer=args.tokenizer,
                                        pooling=args.pooling, overwrite=True)  # checked above
    config = model.config
    print(f"ElasticBERT with {config.num_hidden_layers} layers, exits on layers "
          f"{[i + 1 for i in config.exit_layer_indices]} ({config.pooling} pooling), {config.num_labels} labels: "
          f"{args.output_dir}")
    return 0
