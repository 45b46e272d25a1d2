"""Verbalizer templates and label words for LPT's MLM-head mode (docs/lpt.md, "Templates and label words").

A template is one text with ``{s1}``, optionally ``{s2}``, and exactly one ``{mask}``; pair tasks are encoded as one
text, not as a segment pair. Only the sentences are truncated, never the template (the [MASK] always survives).
Label words are listed in label-id order and must be single tokens of the tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Template", "TEMPLATES", "get_template", "label_word_ids", "render_template", "encode_with_template"]


@dataclass(frozen=True)
class Template:
    """A cloze template: ``text`` with ``{s1}``, optional ``{s2}`` and one ``{mask}``; ``label_words[i]`` verbalises
    label ``i``."""

    text: str
    label_words: tuple[str, ...]
    source: str = ""

    def __post_init__(self):
        if self.text.count("{mask}") != 1 or "{s1}" not in self.text:
            raise ValueError(f"A template needs '{{s1}}' and exactly one '{{mask}}': {self.text!r}")
        if len(self.label_words) < 2:
            raise ValueError("A template needs at least two label words.")

    @property
    def is_pair(self) -> bool:
        return "{s2}" in self.text


_SINGLE_PAPER = "{s1} It was {mask} ."
_NLI = "{s1} ? {mask} , {s2}"

#: Paper templates [LPT-paper Tab. 7] (RoBERTa/DeBERTa; words get the BPE leading space via ``label_word_ids``) and the
#: elue_hf decisions for ELUE tasks on BERT-uncased backbones (keys prefixed ``elue-``).
TEMPLATES: dict[str, Template] = {
    "sst-2": Template(_SINGLE_PAPER, ("terrible", "great"), "LPT-paper Tab. 7"),
    "mpqa": Template(_SINGLE_PAPER, ("terrible", "great"), "LPT-paper Tab. 7"),
    "mr": Template(_SINGLE_PAPER, ("terrible", "great"), "LPT-paper Tab. 7"),
    "subj": Template(_SINGLE_PAPER, ("subjective", "objective"), "LPT-paper Tab. 7"),
    "trec": Template(
        "{mask} : {s1}", ("Description", "Entity", "Expression", "Human", "Location", "Number"), "LPT-code process.py"
    ),
    "mnli": Template(_NLI, ("Yes", "Maybe", "No"), "LPT-paper Tab. 7"),
    "qnli": Template(_NLI, ("Yes", "No"), "LPT-paper Tab. 7"),
    "rte": Template(_NLI, ("Yes", "No"), "LPT-paper Tab. 7"),
    "mrpc": Template("{s1} {mask} , {s2}", ("No", "Yes"), "LPT-paper Tab. 7 (label 1 = equivalent)"),
    "qqp": Template("{s1} {mask} , {s2}", ("No", "Yes"), "LPT-paper Tab. 7 (label 1 = duplicate)"),
    "elue-sst-2": Template("{s1} it was {mask} .", ("terrible", "great"), "elue_hf decision"),
    "elue-imdb": Template("{s1} it was {mask} .", ("terrible", "great"), "elue_hf decision"),
    "elue-snli": Template(_NLI, ("yes", "maybe", "no"), "elue_hf decision (0 entailment, 1 neutral, 2 contradiction)"),
    "elue-scitail": Template(_NLI, ("no", "yes"), "elue_hf decision (0 neutral, 1 entails)"),
    "elue-mrpc": Template("{s1} {mask} , {s2}", ("no", "yes"), "elue_hf decision (1 = paraphrase)"),
}


def get_template(task: str) -> Template:
    """The template of ``task`` (case-insensitive key of :data:`TEMPLATES`)."""
    key = task.strip().lower()
    if key not in TEMPLATES:
        raise KeyError(f"No LPT template for task {task!r}; known: {sorted(TEMPLATES)}. STS-B is [CLS]-head only.")
    return TEMPLATES[key]


def _is_byte_level_bpe(tokenizer) -> bool:
    """True when a leading space changes the tokens (GPT-2/RoBERTa BPE), False for WordPiece."""
    probe = "great"
    return tokenizer.tokenize(" " + probe) != tokenizer.tokenize(probe)


def label_word_ids(tokenizer, words, prefix_space: bool | None = None) -> list[int]:
    """Vocabulary ids of single-token label words, in order.

    ``prefix_space`` (default: automatic, True for byte-level BPE) encodes each word as it appears after a space in
    the template (" great"); WordPiece words are plain lower-case tokens. Raises ``ValueError`` for multi-token words.
    """
    if isinstance(words, Template):
        words = words.label_words
    if prefix_space is None:
        prefix_space = _is_byte_level_bpe(tokenizer)
    ids = []
    for word in words:
        pieces = tokenizer(" " + word if prefix_space else word, add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            tokens = tokenizer.convert_ids_to_tokens(pieces)
            raise ValueError(f"Label word {word!r} is not a single token for this tokenizer (got {tokens}).")
        if tokenizer.unk_token_id is not None and pieces[0] == tokenizer.unk_token_id:
            raise ValueError(f"Label word {word!r} is not in the tokenizer's vocabulary (it maps to the unknown token)")
        ids.append(int(pieces[0]))
    return ids


def render_template(template: Template, mask_token: str, first: str, second: str | None = None) -> str:
    """The template text with the sentence(s) and the tokenizer's mask token filled in."""
    if template.is_pair and second is None:
        raise ValueError(f"Template {template.text!r} needs a second sentence.")
    return template.text.format(s1=first.strip(), s2=(second or "").strip(), mask=mask_token)


def _shorten(tokenizer, text: str, drop: int) -> str:
    tokens = tokenizer.tokenize(text)
    return tokenizer.convert_tokens_to_string(tokens[: max(0, len(tokens) - drop)]).strip()


def _encode_one(tokenizer, template: Template, first: str, second: str | None, max_length: int) -> list[int]:
    mask_token = tokenizer.mask_token
    for _ in range(64):
        ids = tokenizer(render_template(template, mask_token, first, second), truncation=False)["input_ids"]
        overflow = len(ids) - max_length
        if overflow <= 0:
            if ids.count(tokenizer.mask_token_id) != 1:
                raise ValueError("The rendered template does not contain exactly one mask token.")
            return ids
        if not first and not second:
            raise ValueError(f"The template alone is longer than max_length={max_length}: {template.text!r}")
        # longest-first: shorten the longer sentence, re-tokenise and check again (decoding may merge tokens)
        n_first = len(tokenizer.tokenize(first)) if first else 0
        n_second = len(tokenizer.tokenize(second)) if second else 0
        if n_first >= n_second:
            first = _shorten(tokenizer, first, overflow)
        else:
            second = _shorten(tokenizer, second, overflow)
    raise RuntimeError("Template truncation did not converge.")  # pragma: no cover - defensive


def encode_with_template(
    tokenizer, template: Template, texts, texts_pair=None, max_length: int = 128, return_tensors: str | None = "pt"
):
    """Tokenise a batch through ``template`` (one text per example), truncating sentences only, padded to the batch.

    Returns what ``tokenizer.pad`` returns (``input_ids``, ``attention_mask``, ...). Every row holds one mask token.
    """
    if tokenizer.mask_token is None:
        raise ValueError("The tokenizer has no mask token; verbalizer mode needs one.")
    if isinstance(texts, str):
        texts = [texts]
        texts_pair = [texts_pair] if isinstance(texts_pair, str) else texts_pair
    if template.is_pair and texts_pair is None:
        raise ValueError(f"Template {template.text!r} is for sentence pairs: pass texts_pair.")
    pairs = texts_pair if texts_pair is not None else [None] * len(texts)
    if len(pairs) != len(texts):
        raise ValueError(f"texts ({len(texts)}) and texts_pair ({len(pairs)}) differ in length.")
    encoded = [{"input_ids": _encode_one(tokenizer, template, a, b, max_length)} for a, b in zip(texts, pairs)]
    return tokenizer.pad(encoded, padding=True, return_tensors=return_tensors, return_attention_mask=True)
