"""Small checks shared by everything that reads untrusted JSON or numbers (submissions, leaderboard records).

Each check raises the caller's own error type (``error=``) with a message naming the field, so a hostile input ends
in :class:`~elue_hf.elue.submission.SubmissionError` / :class:`~elue_hf.leaderboard.records.RecordError`, never in a
raw ``RecursionError``, ``OverflowError`` or ``TypeError``. Bounds keep every number inside SQLite's 64-bit integers
and finite floats.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

__all__ = [
    "MAX_COUNT",
    "MAX_MFLOPS",
    "MAX_JSON_DEPTH",
    "require",
    "positive_int",
    "finite_number",
    "finite_positive",
    "json_depth",
    "load_json",
]

MAX_COUNT = 10**13  # parameters (and any other count): far above any real model, far below 2**63
MAX_MFLOPS = 1e12  # MFLOPs per instance (an exaFLOP): anything above is not a measurement
MAX_JSON_DEPTH = 32  # deepest nesting a manifest or an entry needs is ~4
_MAX_NUMBER_CHARS = 40  # a JSON number literal longer than this is refused before Python converts it
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BOM = b"\xef\xbb\xbf"


def require(cond, message: str, error: type[Exception] = ValueError) -> None:
    """Raise ``error(message)`` unless ``cond``."""
    if not cond:
        raise error(message)


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def positive_int(value, what: str, error: type[Exception] = ValueError, maximum: int = MAX_COUNT) -> int:
    """``value`` as an int in ``[1, maximum]`` (bools refused)."""
    require(_is_int(value) and 0 < int(value) <= maximum,
            f"{what} must be a positive integer of at most {maximum:,}, got {_shown(value)}", error)
    return int(value)


def _finite(value, maximum: float) -> bool:
    if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)):
        return False
    if _is_int(value):
        return abs(int(value)) <= maximum  # compared as Python ints: no float conversion, no overflow
    return math.isfinite(float(value)) and abs(float(value)) <= maximum


def finite_number(value, what: str, error: type[Exception] = ValueError, maximum: float = 1e300) -> float:
    """``value`` as a finite float of magnitude <= ``maximum`` (ints of any size checked without overflow)."""
    require(_finite(value, maximum), f"{what} must be a finite number of magnitude at most {maximum:g}, "
            f"got {_shown(value)}", error)
    return float(value)


def finite_positive(value, what: str, error: type[Exception] = ValueError, maximum: float = MAX_MFLOPS) -> float:
    """``value`` as a finite float in ``(0, maximum]``."""
    require(_finite(value, maximum) and value > 0,
            f"{what} must be a finite positive number of at most {maximum:g}, got {_shown(value)}", error)
    return float(value)


def _shown(value) -> str:
    big = _is_int(value) and abs(int(value)) >= 10**30
    text = f"an integer of {len(str(abs(int(value))))} digits" if big else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def json_depth(raw: bytes) -> int:
    """Deepest ``[``/``{`` nesting of a JSON text (strings skipped); linear time, no recursion."""
    skeleton = _STRING.sub(b'""', raw).translate(None, delete=bytes(set(range(256)) - set(b"[]{}")))
    if not skeleton:
        return 0
    steps = np.frombuffer(skeleton, dtype=np.uint8)
    return int(np.max(np.cumsum(np.where((steps == ord("[")) | (steps == ord("{")), 1, -1))))


def load_json(raw: bytes | str, what: str, error: type[Exception] = ValueError,
              max_depth: int = MAX_JSON_DEPTH):
    """Parse untrusted JSON: UTF-8 (a leading BOM allowed), at most ``max_depth`` nested levels, no NaN/Infinity,
    no number literal longer than 40 characters, no float that overflows to infinity."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if raw.startswith(_BOM):
        raw = raw[len(_BOM):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise error(f"{what} is not UTF-8 (byte {err.start})") from None
    depth = json_depth(raw)
    require(depth <= max_depth, f"{what} nests {depth} levels deep; at most {max_depth} are allowed", error)

    def number(kind):
        def parse(literal: str):
            require(len(literal) <= _MAX_NUMBER_CHARS,
                    f"{what}: the number {literal[:20]}... has {len(literal)} characters (too large)", error)
            value = kind(literal)
            require(kind is int or math.isfinite(value), f"{what}: the number {literal} is out of range", error)
            return value
        return parse

    def constant(name: str):
        raise error(f"{what}: {name} is not a valid JSON number")

    try:
        return json.loads(text, parse_int=number(int), parse_float=number(float), parse_constant=constant)
    except json.JSONDecodeError as err:
        raise error(f"{what} is not valid JSON: {err}") from None
    except RecursionError:  # unreachable after the depth check; kept so no input can escape as a raw error
        raise error(f"{what} nests too deeply") from None
