"""The tokenisation rule shared by the compiled scorer and the reference implementation.

Text is first put in Unicode normal form C (NFC), so that ``café`` typed as ``e`` + a combining
accent (NFD, as some macOS tools write it) is the same word as the precomposed ``café``.

A token is a maximal run of word characters, where a word character is a letter, digit or
underscore of the Basic Multilingual Plane (Python's ``str.isalnum()`` or ``_``). A combining mark
(Unicode category M: Devanagari, Bengali and Thai vowel signs and viramas, Arabic harakat, a combining
accent) belongs to the token it follows, so ``काम`` and ``كَتَبَ`` are one token each; a mark that does
not follow a word character separates tokens like any other character. A run of the joiners U+200C
ZERO WIDTH NON-JOINER and U+200D ZERO WIDTH JOINER inside a token belongs to it when a word character
or a combining mark follows the run (Persian ``می‌خواهم`` and ``کتاب‌ها``, Sinhala ``ශ්‍රී``, Bengali
``র‍্যাব``); anywhere else (at a token's end, between emoji) it separates tokens. An apostrophe (``'``
or ``’``) joins two runs into one token (``don't``, ``people's``) when a word character follows it,
but never starts or ends one. U+00AD SOFT HYPHEN, U+2060 WORD JOINER and U+FEFF ZERO WIDTH NO-BREAK
SPACE (the byte order mark) are invisible and dropped wherever they are, so ``infor\u00admation`` is
the token ``information``. Tokens are lower-cased character by character (a character whose lower
case is longer than one character is kept as it is) and ``’`` becomes ``'``. Characters outside the
Basic Multilingual Plane (emoji, for instance) separate tokens.

The compiled scorer (kernel.py) implements this rule on UTF-8 bytes, from the tables below;
``tokenize`` implements it with a regular expression built from the same tables, and tests check the
two agree on real and random text.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import NamedTuple

import numpy as np

BMP = 0x10000
APOSTROPHE = 0x27
RIGHT_SINGLE_QUOTE = 0x2019
# The compiled scorer decodes at most 21-bit code points (invalid bytes included).
CODE_SPACE = 0x200000
# Hangul vowel and final jamo compose with the syllable before them (algorithmically, so they have
# no decomposition entry to find them by).
HANGUL_V = range(0x1161, 0x1176)
HANGUL_T = range(0x11A8, 0x11C3)
# Part of a token when a word character or a combining mark follows (after any more of them).
JOINERS = (0x200C, 0x200D)  # ZERO WIDTH NON-JOINER, ZERO WIDTH JOINER
# Dropped from the text: invisible, and they never separate words. (U+200B ZERO WIDTH SPACE does: it
# marks word boundaries in Thai and Khmer, so it stays a separator.)
IGNORABLES = (0x00AD, 0x2060, 0xFEFF)  # SOFT HYPHEN, WORD JOINER, ZERO WIDTH NO-BREAK SPACE
# How ``word_codes`` writes each kind of character (see there); the ranges do not overlap.
JOINER_BASE = -(BMP + 2)  # a joiner is JOINER_BASE - its code point
IGNORED = -(2 * BMP + 2)  # an ignorable character


class CharTables(NamedTuple):
    """Per BMP code point: which kind of character it is, and the code point it normalises to."""

    is_word: np.ndarray  # letter, digit or '_'
    is_mark: np.ndarray  # a combining mark (category M) that is not a word character
    is_joiner: np.ndarray  # JOINERS
    is_ignorable: np.ndarray  # IGNORABLES
    normalise: np.ndarray  # int32: the lower case, when it is one BMP character; '’' gives "'"


@lru_cache(maxsize=1)
def tables() -> CharTables:
    """The kind of each BMP code point, and the code point it normalises to."""
    is_word = np.zeros(BMP, dtype=np.bool_)
    is_mark = np.zeros(BMP, dtype=np.bool_)
    is_joiner = np.zeros(BMP, dtype=np.bool_)
    is_ignorable = np.zeros(BMP, dtype=np.bool_)
    is_joiner[list(JOINERS)] = True
    is_ignorable[list(IGNORABLES)] = True
    normalise = np.arange(BMP, dtype=np.int32)
    for cp in range(BMP):
        char = chr(cp)
        if char.isalnum() or char == "_":
            is_word[cp] = True
        elif unicodedata.category(char).startswith("M"):
            is_mark[cp] = True
        lower = char.lower()
        if len(lower) == 1 and ord(lower) < BMP:
            normalise[cp] = ord(lower)
    normalise[RIGHT_SINGLE_QUOTE] = APOSTROPHE
    return CharTables(is_word, is_mark, is_joiner, is_ignorable, normalise)


@lru_cache(maxsize=1)
def word_codes() -> np.ndarray:
    """int32 per BMP code point, as the compiled scorer reads it.

    A word character gives its normalised code point (>= 0); a combining mark gives
    ``-(normalised + 2)`` (-2 down to ``-(BMP + 1)``; part of a token only after a word character); a
    joiner ``JOINER_BASE - code point``; an ignorable character ``IGNORED``; anything else -1.
    """
    t = tables()
    codes = np.where(t.is_word, t.normalise, np.where(t.is_mark, -(t.normalise + 2), -1))
    codes = np.where(t.is_joiner, JOINER_BASE - np.arange(BMP), codes)
    codes = np.where(t.is_ignorable, IGNORED, codes)
    return codes.astype(np.int32)


@lru_cache(maxsize=1)
def nfc_tables() -> tuple[np.ndarray, np.ndarray]:
    """(check, combining): what the compiled scorer reads to tell a text that may not be in NFC.

    ``check`` is a bitmap (uint64 words) of the code points that NFC may change or compose with the
    character before them: characters that NFC maps to something else, the second halves of the
    canonical decompositions that NFC recomposes, the Hangul jamo that compose with a syllable, and
    (to keep the scorer simple) every combining character outside the BMP. ``combining`` is each BMP
    code point's canonical combining class: NFC also reorders adjacent combining characters whose
    classes are out of order.

    A text with no checked code point and no two adjacent combining characters out of order is in
    NFC (a precomposed character followed by a combining one recomposes to itself). The scorer reads
    the tables for non-ASCII characters only, and normalises in Python just the documents they flag.
    """
    bits = np.zeros(CODE_SPACE // 64, dtype=np.uint64)
    combining = np.zeros(BMP, dtype=np.uint8)

    def mark(cp: int) -> None:
        bits[cp >> 6] |= np.uint64(1 << (cp & 63))

    for cp in range(0x80, 0x110000):
        char = chr(cp)
        composed = unicodedata.normalize("NFC", char)
        klass = unicodedata.combining(char)
        if cp < BMP:
            combining[cp] = klass
        if (klass and cp >= BMP) or composed != char:
            mark(cp)
        decomposition = unicodedata.decomposition(char)
        if decomposition and not decomposition.startswith("<") and composed == char:
            parts = decomposition.split()
            if len(parts) == 2:
                mark(int(parts[1], 16))
    for cp in (*HANGUL_V, *HANGUL_T):
        mark(cp)
    return bits, combining


@lru_cache(maxsize=1)
def _translation() -> dict[int, int | None]:
    """str.translate's table: lower case and apostrophes; ignorable characters deleted."""
    t = tables()
    changed = np.flatnonzero(t.normalise != np.arange(BMP))
    table: dict[int, int | None] = {int(cp): int(t.normalise[cp]) for cp in changed}
    table.update(dict.fromkeys(IGNORABLES))
    return table


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
    t = tables()
    word = f"[{_ranges(t.is_word)}]"
    word_or_mark = f"[{_ranges(t.is_word | t.is_mark)}]"
    joiner = f"[{_ranges(t.is_joiner)}]"
    # A word character, then word characters and marks; joiners must be followed by one of those,
    # an apostrophe by a word character. (The classes are disjoint, so nothing backtracks far.)
    return re.compile(f"{word}{word_or_mark}*(?:(?:{joiner}+{word_or_mark}|'{word}){word_or_mark}*)*")


def normalise(text: str) -> str:
    """NFC, then lower-case character by character, unify apostrophes and drop ignorable characters,
    as the scorer does."""
    return unicodedata.normalize("NFC", text).translate(_translation())


def tokenize(text: str) -> list[str]:
    """Split a text into normalised tokens (see the module docstring for the rule)."""
    return _token_pattern().findall(normalise(text))


def ends_with_word(text: str) -> bool:
    """Whether ``text`` ends with a word character, or with marks, joiners and ignorable characters
    following one."""
    t = tables()
    skip = t.is_mark | t.is_joiner | t.is_ignorable
    end = len(text)
    while end and ord(text[end - 1]) < BMP and skip[ord(text[end - 1])]:
        end -= 1
    return end > 0 and ord(text[end - 1]) < BMP and bool(t.is_word[ord(text[end - 1])])


def prefix_tokens(text: str) -> list[str]:
    """The tokens of a wildcard entry's ``text`` (without its '*'), which ``ends_with_word``.

    As ``tokenize``, except that joiners ending the text stay in the last token: the '*' stands for
    the word characters that follow them, so ``می‌*`` is the prefix ``می`` + ZWNJ, which matches
    ``می‌خواهم`` but not ``میز``.
    """
    # A word character appended continues the last token through any joiners, and NFC cannot
    # compose it with what comes before; dropping it again leaves the prefix.
    *rest, last = tokenize(text + "a")
    return [*rest, last[:-1]]
