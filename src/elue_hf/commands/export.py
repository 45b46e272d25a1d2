"""``elue-hf export``: a multi-exit classifier (ElasticBERT or a converted family) as an ONNX bundle that keeps its
exits (docs/deploy.md)."""

from __future__ import annotations

__all__ = ["register", "cmd_export"]


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "export", help="export a multi-exit classifier to ONNX with its exits (optionally int8)",
        description="Write an ONNX bundle (embeddings + one graph per layer with its exit, elue_deploy.json, the "
        "tokenizer) that OnnxElasticBertForSequenceClassification runs on ONNX Runtime with early exit, without "
        "torch. MODEL is an ElasticBERT or a multi-exit RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT, DeBERTa-v2/v3 "
        "or ModernBERT (`elue-hf convert`). int8 = ONNX Runtime dynamic quantization of every graph.",
    )
    parser.add_argument("model", help="folder of a saved multi-exit classifier (`elue-hf convert` or `elue-hf train`)")
    parser.add_argument("output_dir", help="new or empty folder for the bundle")
    parser.add_argument("--quantize", choices=("int8",), default=None,
                        help="int8 dynamic quantization (ONNX Runtime; per-channel, FFN down-projections kept fp32)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18, the minimum)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    parser.set_defaults(func=cmd_export)


def cmd_export(args) -> int:
    from .sources import check_source

    check_source(args.model, "MODEL", hint="; pass a folder saved by `elue-hf convert` or `elue-hf train`")
    try:
        from ..deploy.export import DEFAULT_OPSET, export_multi_exit
    except ModuleNotFoundError as err:
        raise ValueError(f"exporting needs {err.name}: pip install \"elue-hf[export]\"") from err
    out = export_multi_exit(args.model, args.output_dir, quantize=args.quantize,
                             opset=args.opset or DEFAULT_OPSET, overwrite=args.overwrite)
    from ..deploy.bundle import load_bundle_config

    config = load_bundle_config(out)
    print(f"ONNX bundle ({args.quantize or 'fp32'}, opset {config['opset']}): {config['num_layers']} layers, exits "
          f"on {config['exit_layers']}, {config['pooling']} pooling, {config['head']} head: {out}")
    return 0
