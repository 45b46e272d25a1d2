"""Every folder elue-hf saves for reuse carries its tokenizer.

A model folder without tokenizer files is a trap: ``BertTokenizer.from_pretrained(folder)`` then builds a tokenizer
with only the special tokens, every word becomes ``[UNK]`` and the model silently answers nonsense. The savers of
the package (conversion, fine-tuning, pre-training, HashEE, LPT adapters) therefore find the tokenizer of the source
model and save it next to the weights with :func:`save_tokenizer`, which writes a ``tokenizer_config.json`` naming a
standard transformers class (``BertTokenizer`` ...) and no ``auto_map``: loading the tokenizer never runs remote
code, so ``trust_remote_code=True`` users of a saved ElasticBERT are never asked "[y/N]" for it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

__all__ = ["TOKENIZER_FILES", "has_tokenizer_files", "load_tokenizer", "save_tokenizer"]

logger = logging.getLogger(__name__)

#: files any one of which means "this folder holds a tokenizer"
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "spiece.model", "sentencepiece.bpe.model")
# keys that describe how a tokenizer was loaded, not what it is (or that would make loading run remote code)
_DROPPED_KEYS = ("auto_map", "is_local", "local_files_only", "name_or_path", "_commit_hash")


def has_tokenizer_files(path) -> bool:
    """Whether the local folder ``path`` holds a tokenizer vocabulary (not just special-token settings)."""
    folder = Path(path)
    return folder.is_dir() and any((folder / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(tokenizer=None, source=None, required: bool = False):
    """The tokenizer to save with a model.

    Args:
        tokenizer: a tokenizer object (returned as is), or a folder / Hub id to load with ``AutoTokenizer``.
        source: where the model came from (folder or Hub id); used when ``tokenizer`` is ``None``.
        required: raise ``ValueError`` instead of returning ``None`` when no tokenizer can be found.
    """
    if tokenizer is not None and not isinstance(tokenizer, (str, os.PathLike)):
        return tokenizer
    name = tokenizer if tokenizer is not None else source
    if name is not None and not isinstance(name, (str, os.PathLike)):
        name = None  # a model object: nothing to load from
    if name is not None and (tokenizer is not None or has_tokenizer_files(name) or not Path(name).exists()):
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(str(name))
        except (OSError, ValueError) as err:
            if tokenizer is not None or required:
                raise ValueError(f"cannot load a tokenizer from {name}: {err}") from err
    if required:
        raise ValueError(
            f"no tokenizer found{f' in {name}' if name else ''}: pass one (tokenizer=... / --tokenizer PATH_OR_ID)"
        )
    return None


def _clean_config(path: Path, tokenizer) -> None:
    import transformers

    config = json.loads(path.read_text(encoding="utf-8"))
    for key in _DROPPED_KEYS:
        config.pop(key, None)
    name = config.get("tokenizer_class") or type(tokenizer).__name__
    if not hasattr(transformers, name):
        raise ValueError(
            f"tokenizer class {name!r} is not a transformers class: the saved folder could only be loaded with "
            "remote code. Save a standard tokenizer (e.g. BertTokenizer / AutoTokenizer of the base model)."
        )
    config["tokenizer_class"] = name
    path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")


def save_tokenizer(tokenizer, save_directory, what: str = "model") -> bool:
    """``tokenizer.save_pretrained(save_directory)`` with a clean ``tokenizer_config.json`` (standard class, no
    ``auto_map``). ``tokenizer=None`` logs a warning that the folder has no tokenizer and returns ``False``."""
    directory = Path(save_directory)
    if tokenizer is None:
        logger.warning(
            "The %s saved in %s has no tokenizer (none given and none found with the source model); loading one "
            "from this folder will fail. Save the base model's tokenizer there: tokenizer.save_pretrained(%r).",
            what, directory, str(directory),
        )  # fmt: skip
        return False
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(directory))
    config_path = directory / "tokenizer_config.json"
    if config_path.is_file():
        _clean_config(config_path, tokenizer)
    return True
