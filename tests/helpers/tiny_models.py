"""A tiny BERT with a real WordPiece tokenizer over the synthetic ELUE words, saved to a folder (tests only)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

from .elue_fixtures import synthetic_vocab

__all__ = ["synthetic_tokenizer", "save_tiny_bert"]


def synthetic_tokenizer() -> BertTokenizer:
    """An uncased WordPiece tokenizer that knows every word of the synthetic ELUE fixtures."""
    return BertTokenizer(vocab=synthetic_vocab(), do_lower_case=True)


def save_tiny_bert(folder, num_layers: int = 3, num_labels: int = 2, with_tokenizer: bool = True, seed: int = 0):
    """Save a random 3-layer BERT classifier (hidden 32) and, by default, its tokenizer; returns the folder."""
    folder = Path(folder)
    tokenizer = synthetic_tokenizer()
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=num_layers, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, num_labels=num_labels)
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(folder)
    if with_tokenizer:
        tokenizer.save_pretrained(folder)
    return folder
