"""Continued multi-exit pre-training of ElasticBERT: n-gram MLM + sentence-order prediction at every exit.

Each step optimises the exits of one group (the groups cycle; the top exit is in every group), with gradient
equilibrium in the encoder. Runs on one CPU, one GPU or many through accelerate::

    accelerate launch -m elue_hf.elasticbert.pretraining --model PATH --text-file corpus.txt --output-dir out
    elue-hf pretrain --model PATH --max-steps 3            # embedded Rotten Tomatoes text, quick check

``--model`` may be an ElasticBERT checkpoint or any BERT checkpoint (converted first). The options are those of
``elue-hf pretrain`` (:mod:`elue_hf.commands.pretrain` owns them); ``python -m`` / ``accelerate launch -m`` runs this
package's ``__main__``, which goes through that command, so this module never imports the command line.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import torch

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def exit_groups(num_layers: int, num_groups: int) -> list[list[int]]:
    """Interleaved exit groups (1-based layers), the top layer in every group.

    BASE (12, 2): {1,3,5,7,9,11,12}, {2,4,6,8,10,12}; LARGE (24, 3): {1,4,...,22,24}, {2,5,...,23,24}, {3,6,...,24}.
    """
    if not 1 <= num_groups <= num_layers:
        raise ValueError(f"num_groups must be between 1 and {num_layers}, got {num_groups}")
    groups = []
    for g in range(num_groups):
        layers = [layer for layer in range(1, num_layers) if (layer - 1) % num_groups == g]
        groups.append(layers + [num_layers])
    return groups


def sop_pair(text: str, rng: random.Random) -> tuple[str, str, int] | None:
    """Split a text into two consecutive segments; swap them half of the time (label 1 = swapped, ALBERT SOP).

    Splits at a sentence boundary when there are several sentences, else at the middle word. Texts of fewer than
    four words give no pair.
    """
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
    if len(sentences) >= 2:
        cut = rng.randrange(1, len(sentences))
        first, second = " ".join(sentences[:cut]), " ".join(sentences[cut:])
    else:
        words = text.split()
        if len(words) < 4:
            return None
        cut = len(words) // 2
        first, second = " ".join(words[:cut]), " ".join(words[cut:])
    if rng.random() < 0.5:
        return second, first, 1
    return first, second, 0


def ngram_mask(
    input_ids: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    mask_token_id: int,
    vocab_size: int,
    generator: torch.Generator,
    mlm_probability: float = 0.15,
    max_ngram: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """N-gram masking (span length n <= max_ngram with p(n) proportional to 1/n) of ~mlm_probability of the tokens.

    Chosen tokens become [MASK] 80%, a random token 10%, unchanged 10%. Returns (masked ids, labels with -100 on
    positions that are not predicted).
    """
    ids = input_ids.clone()
    labels = torch.full_like(ids, -100)
    weights = torch.tensor([1.0 / n for n in range(1, max_ngram + 1)])
    for row in range(ids.shape[0]):
        candidates = (~special_tokens_mask[row].bool()).nonzero().flatten().tolist()
        budget = max(1, round(len(candidates) * mlm_probability)) if candidates else 0
        chosen: set[int] = set()
        order = torch.randperm(len(candidates), generator=generator).tolist()
        for start in order:
            if len(chosen) >= budget:
                break
            n = int(torch.multinomial(weights, 1, generator=generator)) + 1
            span = [candidates[start + k] for k in range(n) if start + k < len(candidates)]
            chosen.update(span[: budget - len(chosen)])
        for pos in chosen:
            labels[row, pos] = ids[row, pos]
            u = float(torch.rand(1, generator=generator))
            if u < 0.8:
                ids[row, pos] = mask_token_id
            elif u < 0.9:
                ids[row, pos] = int(torch.randint(vocab_size, (1,), generator=generator))
    return ids, labels


class PretrainingCollator:
    """Texts -> a batch with n-gram MLM labels and sentence-order labels."""

    def __init__(self, tokenizer, max_length: int = 128, seed: int = 0, mlm_probability: float = 0.15):
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.mlm_probability = mlm_probability
        self.rng = random.Random(seed)
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        pairs = [p for p in (sop_pair(t, self.rng) for t in texts) if p is not None]
        if not pairs:
            raise ValueError("no text in this batch is long enough for sentence-order prediction (>= 4 words)")
        first, second, order = zip(*pairs)
        enc = self.tokenizer(
            list(first), list(second), padding=True, truncation=True, max_length=self.max_length,
            return_special_tokens_mask=True, return_tensors="pt",
        )  # fmt: skip
        special = enc.pop("special_tokens_mask") | (enc["attention_mask"] == 0)
        enc["input_ids"], enc["labels"] = ngram_mask(
            enc["input_ids"], special, self.tokenizer.mask_token_id, len(self.tokenizer), self.generator,
            self.mlm_probability,
        )  # fmt: skip
        enc["sentence_order_label"] = torch.tensor(order)
        return dict(enc)


def load_pretraining_model(path: str):
    """ElasticBERT pre-training model from an ElasticBERT or a plain BERT checkpoint."""
    from transformers import AutoConfig

    from ..convert import convert_bert_to_elasticbert
    from ..modeling_elasticbert import ElasticBertForPreTraining

    config = AutoConfig.from_pretrained(path)
    if config.model_type == "bert":
        return convert_bert_to_elasticbert(path, model_class=ElasticBertForPreTraining)
    if config.model_type != "elasticbert":
        raise ValueError(f"--model must be a BERT or ElasticBERT checkpoint, got model_type={config.model_type!r}")
    return ElasticBertForPreTraining.from_pretrained(path)


def _texts(args) -> list[str]:
    if args.text_file:
        lines = Path(args.text_file).read_text(encoding="utf-8").splitlines()
        return [line for line in lines if line.strip()]
    from ...assets import load_rotten_tomatoes

    return list(load_rotten_tomatoes()["train"]["sentence"])


def run(args) -> dict:
    from accelerate import Accelerator, DistributedDataParallelKwargs

    from ...assets import minilm_path
    from ...outputs import refuse_existing
    from ...tokenizer_io import load_tokenizer, save_tokenizer
    from ...training import OptimizerSettings, train_steps

    refuse_existing(args.output_dir, "--output-dir", getattr(args, "overwrite", False))

    # each step trains one exit group: the other exits' heads get no gradient, which DDP must be told
    accelerator = Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])
    model_path = args.model or str(minilm_path())
    tokenizer = load_tokenizer(args.tokenizer, model_path, required=True)
    model = load_pretraining_model(model_path)
    groups = exit_groups(model.config.num_hidden_layers, args.num_groups)
    texts = _texts(args)
    collator = PretrainingCollator(tokenizer, args.max_length, seed=args.seed + accelerator.process_index)
    loader = torch.utils.data.DataLoader(
        texts, batch_size=args.batch_size, shuffle=True, collate_fn=collator,
        generator=torch.Generator().manual_seed(args.seed),
    )  # fmt: skip
    settings = OptimizerSettings(steps=args.max_steps, learning_rate=args.learning_rate,
                                 warmup=max(1, args.max_steps // 16))
    loader = accelerator.prepare(loader)
    history = []

    def with_exit_groups():  # each step trains one exit group, in turn; epochs repeat until the last step
        step = 0
        while True:
            for batch in loader:
                yield {**batch, "exit_group": groups[step % len(groups)]}
                step += 1

    def log(step: int, loss: float, batch: dict) -> None:
        history.append({"step": step, "group": batch["exit_group"], "loss": loss})
        if accelerator.is_main_process:
            print(f"step {step} exits {batch['exit_group']} loss {loss:.4f}", flush=True)

    train_steps(model, with_exit_groups(), settings, accelerator=accelerator, on_step=log)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        out = Path(args.output_dir)
        accelerator.unwrap_model(model).save_pretrained(out)
        save_tokenizer(tokenizer, out)
        (out / "pretraining_log.json").write_text(json.dumps(history, indent=1))
    return {"steps": len(history), "losses": [h["loss"] for h in history]}
