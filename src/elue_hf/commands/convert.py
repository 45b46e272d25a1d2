"""``elue-hf convert``: turn an encoder checkpoint into a multi-exit folder (weights and tokenizer): a BERT into an
ElasticBERT, a RoBERTa / XLM-R / CamemBERT / ELECTRA / DistilBERT / DeBERTa-v2/v3 / ModernBERT into a multi-exit model
(``elue_hf.multiexit``)."""

from __future__ import annotations

from .sources import TOKENIZER_FILES, check_source

__all__ = ["register", "cmd_convert"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "convert", help="turn an encoder checkpoint into a multi-exit model (exits on its layers) with its tokenizer",
        description="Copy an encoder into a multi-exit model: a BERT becomes an ElasticBERT; RoBERTa, XLM-R, "
        "CamemBERT, ELECTRA, DistilBERT, DeBERTa-v2/v3 and ModernBERT become multi-exit models over their own "
        "layers. Every exit's pooler starts from the model's own head; a fine-tuned classifier's head becomes the "
        "last exit, the other exit classifiers start fresh. The folder loads with the Auto classes after "
        "`import elue_hf` and holds the tokenizer; fine-tune it with `elue-hf train`.",
    )
    parser.add_argument("--model", default=None, help="encoder folder or Hub id (default: the embedded MiniLM)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder or Hub id (default: the model's own)")
    parser.add_argument("--output-dir", required=True, help="where to save the multi-exit model")
    parser.add_argument("--overwrite", action="store_true", help="write into an existing non-empty --output-dir")
    parser.add_argument("--num-labels", type=int, default=None,
                        help="labels of the exit classifiers (1 = regression; default: a fine-tuned classifier's "
                             "own, else 2)")
    parser.add_argument("--exits", default=None,
                        help="comma-separated layers with an exit, e.g. 2,4,6 (the top layer always has one; "
                             "default: every layer; a BERT takes a top range)")
    parser.add_argument("--num-output-layers", type=int, default=None,
                        help="exits on the top layers (default: every layer; 1 = a static model)")
    parser.add_argument("--pooling", choices=("cls", "mean"), default=None,
                        help="what every exit pools: [CLS] or the mean over valid tokens (for mean-pooling sentence "
                             "encoders such as all-MiniLM-L6-v2; docs/elasticbert.md); default: the family's own")
    parser.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    from ..multiexit.convert import convert_to_multi_exit
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
    exits = args.exits
    if args.num_output_layers is not None:
        if exits is not None:
            raise ValueError("give either --exits or --num-output-layers, not both")
        exits = _top_layers(source, args.num_output_layers)
    model = convert_to_multi_exit(source, exits=exits, pooling=args.pooling, num_labels=args.num_labels,
                                  save_directory=args.output_dir, tokenizer=args.tokenizer,
                                  overwrite=True)  # refused above, before any work
    config = model.config
    kind = "ElasticBERT" if config.model_type == "elasticbert" else f"multi-exit {config.backbone_type}"
    print(f"{kind} with {config.num_hidden_layers} layers, exits on layers "
          f"{[i + 1 for i in config.exit_layer_indices]} ({config.pooling} pooling), {config.num_labels} labels: "
          f"{args.output_dir}")
    return 0


def _top_layers(source: str, count: int) -> list[int]:
    """The top ``count`` layers of the model at ``source`` (``--num-output-layers``)."""
    from transformers import AutoConfig

    layers = AutoConfig.from_pretrained(source).num_hidden_layers
    if not 1 <= count <= layers:
        raise ValueError(f"--num-output-layers must lie in 1..{layers}, got {count}")
    return list(range(layers - count + 1, layers + 1))
