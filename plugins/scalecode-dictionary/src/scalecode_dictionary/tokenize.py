"""The tokenisation rule shared by the compiled scorer and the reference implementation.

A token is a maximal run of word characters, where a word character is a letter, digit or
underscore of the Basic Multilingual Plane (Python's ``str.isalnum()`` or ``_``). An apostrophe
(``'`` or ``’``) joins two runs into one token (``don't``, ``people's``), but never starts or ends
one. Tokens are lower-cased character by character (a character whose lower case is longer than one
character is kept as it is) and ``’`` becomes ``'``. Characters outside the Basic Multilingual Plane
(emoji, for instance) separate tokens.

The compiled scorer (kernel.py) implements this rule on UTF-8 bytes; ``tokenize`` below implements
it with a regular expression, and tests check the two agree on real and random text.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

BMP = 0x10000
APOSTROPHE = 0x27
RIGHT_SINGLE_QUOTE = 0x2019


@lru_cache(maxsize=1)
def tables() -> tuple[np.ndarray, np.ndarray]:
    """(is_word, normalise): a bool per BMP code point, and the code point each maps to."""
    is_word = np.zeros(BMP, dtype=np.bool_)
    normalise = np.arange(BMP, dtype=np.int32)
    for cp in range(BMP):
        char = chr(cp)
        if char.isalnum() or char == "_":
            is_word[cp] = True
        lower = char.lower()
        if len(lower) == 1 and ord(lower) < BMP:
            normalise[cp] = ord(lower)
    normalise[RIGHT_SINGLE_QUOTE] = APOSTROPHE
    return is_word, normalise


@lru_cache(maxsize=1)
def _translation() -> dict[int, int]:
    _, normalise = tables()
    changed = np.flatnonzero(normalise != np.arange(BMP))
    return {int(cp): int(normalise[cp]) for cp in changed}


def _ranges(mask: np.ndarray) -> str:
    """A regex character class body covering the code points where ``mask`` is true."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    parts = []
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        first, last = re.escape(chr(start)), re.escape(chr(stop - 1))
        parts.append(first if start == stop - 1 else f"{first}-{last}")
    return "".join(parts)


@lru_cache(maxsize=1)
def _token_pattern() -> re.Pattern[str]:
    is_word, _ = tables()
    word = f"[{_ranges(is_word)}]"
    return re.compile(f"{word}+(?:'{word}+)*")


def normalise(text: str) -> str:
    """Lower-case character by character and unify apostrophes, as the scorer does."""
    return text.translate(_translation())


def tokenize(text: str) -> list[str]:
    """Split a text into normalised tokens (see the module docstring for the rule)."""
    return _token_pattern().findall(normalise(text))
