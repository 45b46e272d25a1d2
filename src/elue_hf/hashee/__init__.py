"""HashEE: hash-based token-level early exit (Sun et al., 2022) for BERT-family encoders and seq2seq ``generate()``.

>>> from elue_hf.hashee import HashEEConfig, build_hash_table, apply_hashee, hashee_config_for
>>> config = hashee_config_for(model, tokenizer)                 # L = B = encoder depth, V = embedding rows
>>> table = build_hash_table(config, train_ids, dev_ids)          # frequency hash (default)
>>> apply_hashee(model, table)                                   # in place; Trainer / generate() work as usual
>>> save_hashee_model(model, out_dir, tokenizer)              # config.json model_type "hashee_<base type>"
>>> model = load_hashee_model(out_dir)                           # or, with elue_hf imported, AutoModel*.from_pretrained

Their ELUE FLOPs (token-level rule) are counted by :mod:`elue_hf.methods.hashee_flops`. Importing this package
registers the HashEE model types with the Auto classes (:func:`register_hashee`).
"""

from .auto import register_hashee
from .config import HASH_FUNCTIONS, HashEEConfig
from .configuration_hashee import HashEEModelConfig, base_model_type, hashee_config_class, is_hashee_config
from .hashing import (
    HashTable,
    build_hash_table,
    cluster_table,
    frequency_table,
    kmeans,
    mi_table,
    random_cons_table,
    random_incons_table,
    tokenize_texts,
)
from .model import (
    apply_hashee,
    get_hashee,
    hashee_config_for,
    hashee_table,
    is_hashee_model,
    load_hashee_model,
    remove_hashee,
    save_hashee_model,
    set_hashee_mode,
)

register_hashee()

__all__ = [
    "HASH_FUNCTIONS",
    "HashEEConfig",
    "HashEEModelConfig",
    "hashee_config_class",
    "is_hashee_config",
    "base_model_type",
    "register_hashee",
    "HashTable",
    "build_hash_table",
    "random_cons_table",
    "random_incons_table",
    "frequency_table",
    "mi_table",
    "cluster_table",
    "kmeans",
    "tokenize_texts",
    "apply_hashee",
    "remove_hashee",
    "get_hashee",
    "is_hashee_model",
    "hashee_table",
    "hashee_config_for",
    "set_hashee_mode",
    "load_hashee_model",
    "save_hashee_model",
]
