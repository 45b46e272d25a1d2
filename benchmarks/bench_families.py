"""Batched early exit vs full depth for each family of the multi-exit model, at the family's base shape.

Random weights (a vocabulary of 1,000: the embedding table does not change the speed), batch 16, sequence 128, an
exit on every layer. The entropy threshold is calibrated on the batch so that the mean exit layer lands near 40 % of
the depth (``bench_dynamic_exit.calibrate_threshold``); the ratio is compared with depth / mean exit layer. XLM-R and
CamemBERT run RoBERTa's modules (only the vocabulary differs), so RoBERTa stands for the three.

    .venv/bin/python benchmarks/bench_families.py [--families roberta,modernbert] [--repeats 2] [--threads 2]

The "1-row layer" column is the time of one layer on a single row over its time on the whole batch: 1 / batch when a
layer's cost is proportional to the rows, higher when part of it is fixed per layer (what batched exit cannot save).
``--relative-per-layer`` adds a DeBERTa-v3 row whose relative positions and embeddings are rebuilt at every layer (the
multi-exit path before they were computed once per forward), timed in the same run.
"""

from __future__ import annotations

import argparse
import contextlib

import torch
from bench_dynamic_exit import calibrate_threshold, timed
from transformers import DebertaV2Config, DistilBertConfig, ElectraConfig, ModernBertConfig, RobertaConfig

import elue_hf  # noqa: F401
from elue_hf.multiexit import MultiExitConfig, MultiExitForSequenceClassification
from elue_hf.multiexit.adapters.deberta_v2 import DebertaV2Adapter

_VOCAB = dict(vocab_size=1000)
BASE_SHAPES = {
    "roberta": lambda: RobertaConfig(**_VOCAB, max_position_embeddings=514, pad_token_id=1),
    "electra": lambda: ElectraConfig(**_VOCAB, hidden_size=768, num_attention_heads=12, intermediate_size=3072,
                                     embedding_size=768),
    "distilbert": lambda: DistilBertConfig(**_VOCAB),
    "deberta-v3": lambda: DebertaV2Config(**_VOCAB, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                          intermediate_size=3072, relative_attention=True, position_buckets=256,
                                          max_relative_positions=-1, pos_att_type=["p2c", "c2p"],
                                          norm_rel_ebd="layer_norm", share_att_key=True, type_vocab_size=0),
    "modernbert": lambda: ModernBertConfig(**_VOCAB, pad_token_id=0, bos_token_id=1, eos_token_id=2, cls_token_id=1,
                                           sep_token_id=2),
}


def build(family: str) -> MultiExitForSequenceClassification:
    torch.manual_seed(0)
    model = MultiExitForSequenceClassification(MultiExitConfig(BASE_SHAPES[family](), num_labels=2)).eval()
    with torch.no_grad():  # spread the random exits' confidences so that a threshold separates rows
        for head in model.classifiers:
            head.weight.normal_(0, 0.5)
    return model


class _PerLayer:
    """DeBERTa's relative positions and embeddings rebuilt at every layer (the comparison row)."""

    def rel_pos(self, encoder, hidden):
        return encoder.get_rel_pos(hidden)

    def rel_embedding(self, encoder):
        return encoder.get_rel_embedding()


@contextlib.contextmanager
def relative_per_layer():
    cache, DebertaV2Adapter.relative = DebertaV2Adapter.relative, _PerLayer()
    try:
        yield
    finally:
        DebertaV2Adapter.relative = cache


def fixed_share(model, ids, mask, repeats: int) -> float:
    """Time of the middle layer on one row / on the whole batch."""
    multiexit = model.multiexit
    i = multiexit.encoder.num_layers // 2
    with torch.no_grad():
        hidden, layer_mask = multiexit.embed(ids, mask)
        whole = timed(lambda: multiexit.encoder.run_layer(i, hidden, layer_mask), repeats, "cpu")
        row_mask = None if layer_mask is None else layer_mask[:1]  # None: no padding (SDPA)
        one = timed(lambda: multiexit.encoder.run_layer(i, hidden[:1], row_mask), repeats, "cpu")
    return one / whole


def measure(family: str, batch: int, seq: int, repeats: int) -> dict:
    model = build(family)
    depth = model.config.num_hidden_layers
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(10, 1000, (batch, seq), generator=g)
    ids[:, 0] = 2
    mask = torch.ones_like(ids)
    with torch.no_grad():
        all_logits = model(input_ids=ids, attention_mask=mask).all_logits
    threshold, _ = calibrate_threshold(all_logits, 0.4 * depth)

    def full():
        with torch.no_grad():
            model(input_ids=ids, attention_mask=mask, exit_criterion="none")

    def batched():
        with torch.no_grad():
            return model(input_ids=ids, attention_mask=mask, exit_criterion="entropy", entropy_threshold=threshold)

    mean_layer = float(batched().exit_layer.float().mean())
    t_full, t_batched = timed(full, repeats, "cpu"), timed(batched, repeats, "cpu")
    return {"family": family, "depth": depth, "mean_layer": mean_layer, "full": batch / t_full,
            "batched": batch / t_batched, "ratio": t_full / t_batched, "ideal": depth / mean_layer,
            "fixed": fixed_share(model, ids, mask, repeats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", default=",".join(BASE_SHAPES))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--relative-per-layer", action="store_true",
                        help="also time DeBERTa-v3 with its relative positions / embeddings rebuilt per layer")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"random weights, base shapes, batch {args.batch_size}, seq {args.seq_len}, {args.threads} CPU threads")
    print(f"{'family':<22} {'layers':>6} {'mean exit':>9} {'full inst/s':>11} {'batched inst/s':>14} "
          f"{'speed-up':>8} {'ideal':>6} {'1-row layer':>11}")
    runs = [(family, contextlib.nullcontext) for family in args.families.split(",")]
    if args.relative_per_layer:
        runs.append(("deberta-v3", relative_per_layer))
    for family, setting in runs:
        with setting():
            r = measure(family, args.batch_size, args.seq_len, args.repeats)
        label = family + (" (per layer)" if setting is relative_per_layer else "")
        print(f"{label:<22} {r['depth']:>6} {r['mean_layer']:>9.2f} {r['full']:>11.1f} {r['batched']:>14.1f} "
              f"{r['ratio']:>7.2f}x {r['ideal']:>5.2f}x {r['fixed']:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
