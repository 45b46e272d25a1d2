"""``elue-hf model-card | space-card | push-model | push-adapter | push-space`` (to be listed in ``elue_hf.cli``)."""

from __future__ import annotations

from pathlib import Path

from .sources import check_source, load_from

__all__ = ["register", "cmd_model_card", "cmd_space_card", "cmd_push_model", "cmd_push_adapter", "cmd_push_space"]

_SPACES = {"leaderboard": "leaderboard_space_card", "metric": "metric_space_card"}


def register(subparsers) -> None:
    mc = subparsers.add_parser("model-card", help="render a model card (ElasticBERT, HashEE, LPT adapter)")
    mc.add_argument("kind", choices=["elasticbert", "hashee", "lpt"])
    mc.add_argument("--variant", default="base", help="elasticbert: base, large or chinese-base")
    mc.add_argument("--repo-id", default=None, help="the repo the card is for (default: the released checkpoint)")
    mc.add_argument("--base-model", default=None, help="hashee / lpt: the backbone")
    mc.add_argument("--output", default=None, help="file to write (default: print)")
    mc.add_argument("--overwrite", action="store_true", help="replace an existing --output file")
    mc.set_defaults(func=cmd_model_card)

    sc = subparsers.add_parser("space-card", help="write the README.md (Space card) of a Space folder")
    sc.add_argument("space", choices=sorted(_SPACES))
    sc.add_argument("--output", required=True, help="Space folder (README.md is written inside)")
    sc.add_argument("--overwrite", action="store_true", help="replace an existing README.md in --output")
    sc.set_defaults(func=cmd_space_card)

    pm = subparsers.add_parser("push-model", help="push an ElasticBERT model with auto_map and an ELUE model card")
    pm.add_argument("model", help="local ElasticBERT model directory")
    pm.add_argument("--repo-id", required=True)
    pm.add_argument("--tokenizer", default=None, help="tokenizer folder or Hub id (default: the model's own)")
    pm.add_argument("--submission", default=None, help="its ELUE submission (zip or dir) for the card's results")
    pm.add_argument("--data-dir", default=None, help="ELUE data with <Task>/test_full.tsv to score --submission")
    pm.add_argument("--private", action="store_true")
    pm.set_defaults(func=cmd_push_model)

    pa = subparsers.add_parser("push-adapter", help="push an LPT adapter with an ELUE model card")
    pa.add_argument("adapter", help="local adapter directory (adapter_config.json)")
    pa.add_argument("--base-model", required=True, help="backbone the adapter was trained on")
    pa.add_argument("--num-labels", type=int, default=2)
    pa.add_argument("--tokenizer", default=None,
                    help="tokenizer folder or Hub id (default: the adapter's, else the base model's)")
    pa.add_argument("--repo-id", required=True)
    pa.add_argument("--submission", default=None)
    pa.add_argument("--data-dir", default=None)
    pa.add_argument("--private", action="store_true")
    pa.set_defaults(func=cmd_push_adapter)

    ps = subparsers.add_parser("push-space", help="push a Space folder (spaces/leaderboard, spaces/elue-metric)")
    ps.add_argument("folder")
    ps.add_argument("--repo-id", required=True)
    ps.add_argument("--private", action="store_true")
    ps.add_argument("--wheel-dir", default="dist", help="folder holding the elue-hf wheel the Space installs "
                    "(build it with `make space-wheel`)")
    ps.set_defaults(func=cmd_push_space)


def cmd_model_card(args) -> int:
    from ..hub.cards import elasticbert_card, hashee_card, lpt_adapter_card
    from ..outputs import refuse_existing

    if args.output:
        refuse_existing(args.output, "--output", args.overwrite)
    if args.kind == "elasticbert":
        card = elasticbert_card(args.variant, repo_id=args.repo_id)
    elif not (args.repo_id and args.base_model):
        raise ValueError(f"a {args.kind} card needs --repo-id and --base-model")
    elif args.kind == "hashee":
        card = hashee_card(args.repo_id, args.base_model)
    else:
        card = lpt_adapter_card(args.repo_id, {"base_model_name_or_path": args.base_model, "prompt_layer": None,
                                               "num_prompt_tokens": None})
    if args.output:
        card.save(args.output)
        print(f"wrote {args.output}")
    else:
        print(str(card))
    return 0


def cmd_space_card(args) -> int:
    from ..hub import cards
    from ..outputs import refuse_existing

    folder = Path(args.output)
    refuse_existing(folder / "README.md", "--output", args.overwrite)
    folder.mkdir(parents=True, exist_ok=True)
    card = getattr(cards, _SPACES[args.space])()
    card.save(str(folder / "README.md"))
    print(f"wrote {folder / 'README.md'}")
    return 0


def _score(args):
    if not args.submission:
        return None
    if not args.data_dir:
        raise ValueError("--submission needs --data-dir (gold labels) to be scored")
    from ..elue.score import score_submission

    return score_submission(args.submission, args.data_dir)


def cmd_push_model(args) -> int:
    from transformers import AutoModelForSequenceClassification

    import elue_hf  # noqa: F401  (registers ElasticBERT)

    from ..hub.push import push_elasticbert
    from ..tokenizer_io import load_tokenizer

    model = load_from(AutoModelForSequenceClassification.from_pretrained, args.model, "model")
    tokenizer = load_tokenizer(args.tokenizer, args.model)
    info = push_elasticbert(model, args.repo_id, tokenizer=tokenizer, score=_score(args), private=args.private)
    print(f"pushed {args.model} to {args.repo_id}: {getattr(info, 'commit_url', info)}")
    return 0


def cmd_push_adapter(args) -> int:
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification

    import elue_hf  # noqa: F401  (registers LPT with PEFT)

    from ..hub.push import push_lpt_adapter
    from ..tokenizer_io import has_tokenizer_files, load_tokenizer

    check_source(args.adapter, "adapter", ("adapter_config.json",), "adapter")
    base = load_from(lambda src: AutoModelForSequenceClassification.from_pretrained(src, num_labels=args.num_labels),
                     args.base_model, "--base-model")
    model = PeftModel.from_pretrained(base, args.adapter)
    tokenizer = load_tokenizer(args.tokenizer, args.adapter if has_tokenizer_files(args.adapter) else args.base_model)
    info = push_lpt_adapter(model, args.repo_id, tokenizer=tokenizer, score=_score(args), num_labels=args.num_labels,
                            private=args.private)
    print(f"pushed {args.adapter} to {args.repo_id}: {getattr(info, 'commit_url', info)}")
    return 0


def cmd_push_space(args) -> int:
    from ..hub.push import push_space

    info = push_space(args.folder, args.repo_id, private=args.private, wheel_dir=args.wheel_dir)
    print(f"pushed {args.folder} to spaces/{args.repo_id}: {getattr(info, 'commit_url', info)}")
    return 0
