"""Compiling a Lexicon (and the negation settings) into the arrays the kernel reads.

Negation: a negated match of a category on the positive side counts for the first category on the
negative side and vice versa (when the lexicon has both sides); a weighted category that is not polar
keeps its category and has its weight multiplied by ``scale`` (-1 flips the sign); other categories
are unaffected: "not about taxes" is still about taxes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from scalecode_dictionary.kernel import (
    ENDS_PHRASE,
    ENDS_WILDCARD_PHRASE,
    FILTER_BITS,
    FILTER_WORDS,
    MAX_PREFIX,
    NEGATOR,
    PHRASE,
    PHRASE_PREFIX,
    PREFIX,
    RING,
    WORD,
    Tables,
    combine,
    hash_codepoints,
)
from scalecode_dictionary.lexicon import MAX_PHRASE_TOKENS, Entry, Lexicon
from scalecode_dictionary.tokenize import nfc_tables, tokenize, word_codes

MAX_WINDOW = RING - MAX_PHRASE_TOKENS

# English negators; contractions are single tokens under the tokenisation rule (don't, isn't).
DEFAULT_NEGATORS = (
    "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "cannot", "without",
    "ain't", "aren't", "can't", "couldn't", "didn't", "doesn't", "don't", "hadn't", "hasn't", "haven't",
    "isn't", "mightn't", "mustn't", "needn't", "shan't", "shouldn't", "wasn't", "weren't", "won't",
    "wouldn't", "aint", "arent", "cant", "couldnt", "didnt", "doesnt", "dont", "hadnt", "hasnt", "havent",
    "isnt", "shouldnt", "wasnt", "werent", "wont", "wouldnt",
)  # fmt: skip


@dataclass(frozen=True)
class Negation:
    """Negation handling: off unless ``window`` > 0."""

    window: int = 0
    words: tuple[str, ...] = DEFAULT_NEGATORS
    scale: float = -1.0


NO_NEGATION = Negation()


def _token_hash(token: str) -> np.uint64:
    # numba hands uint64 results back as Python ints; keep them uint64 for the next call.
    value: np.uint64 = np.uint64(hash_codepoints(np.array([ord(c) for c in token], dtype=np.int64)))
    return value


def _phrase_key(tokens: Sequence[str]) -> np.uint64:
    h: np.uint64 = np.uint64(0xCBF29CE484222325)
    for token in tokens:
        h = np.uint64(combine(h, _token_hash(token)))
    return h


def _hash_table(
    keyed: list[tuple[int, int]], flags: dict[int, int], chain: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Open addressing with linear probing, power-of-two size, twice as many slots as keys.

    A slot holds the key (0 marks an empty slot, so a zero key is stored as 1) and the value
    ``flags << 32 | first entry + 1``; entries sharing a key are chained through ``chain``.
    """
    groups: dict[int, list[int]] = {}
    for key, entry in keyed:
        groups.setdefault(key or 1, []).append(entry)
    for key in flags:
        groups.setdefault(key or 1, [])
    size = 8
    while size < 2 * len(groups):
        size *= 2
    table = np.zeros((size, 2), np.uint64)
    bits = np.zeros(FILTER_WORDS, np.uint64)
    for key, entries in groups.items():
        top = key >> (64 - FILTER_BITS)
        bits[top >> 6] |= np.uint64(1 << (top & 63))
        i = key & (size - 1)
        while table[i, 0] != 0:
            i = (i + 1) & (size - 1)
        table[i, 0] = key
        first = entries[0] + 1 if entries else 0
        table[i, 1] = (flags.get(key, 0) << 32) | first
        for a, b in pairwise(entries):
            chain[a] = b
    return table, bits


def negated_weights(entry: Entry, lexicon: Lexicon, scale: float) -> list[tuple[str, float]]:
    polar = bool(lexicon.positive) and bool(lexicon.negative)
    out = []
    for category, weight in entry.weights:
        if polar and category in lexicon.positive:
            out.append((lexicon.negative[0], weight))
        elif polar and category in lexicon.negative:
            out.append((lexicon.positive[0], weight))
        elif category in lexicon.weighted:
            out.append((category, weight * scale))
        else:
            out.append((category, weight))
    return out


def _contributions(
    plain: list[list[tuple[str, float]]], negated: list[list[tuple[str, float]]], index: dict[str, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR layout: contributions of entry e when plain are ptr[0, e]:ptr[0, e+1], when negated ptr[1, ...]."""
    ptr = np.zeros((2, len(plain) + 1), np.int32)
    categories: list[int] = []
    weights: list[float] = []
    for row, rows in enumerate((plain, negated)):
        ptr[row, 0] = len(categories)
        for e, contributions in enumerate(rows):
            for category, weight in contributions:
                categories.append(index[category])
                weights.append(weight)
            ptr[row, e + 1] = len(categories)
    return ptr, np.array(categories, np.int32), np.array(weights, np.float64)


def compile_lexicon(lexicon: Lexicon, negation: Negation = NO_NEGATION) -> Tables:
    """Build the kernel's tables for a lexicon and negation settings."""
    if not 0 <= negation.window <= MAX_WINDOW:
        raise ValueError(f"negation window must be between 0 and {MAX_WINDOW} tokens")
    for entry in lexicon.entries:  # read_lexicon refuses these; a lexicon built in code may not
        for category, weight in entry.weights:
            if not math.isfinite(weight):
                raise ValueError(
                    f"entry {entry.text!r} has a non-finite weight {weight} in category {category!r}"
                )
    negator_entries = []
    if negation.window > 0:
        for word in negation.words:
            tokens = tokenize(word)
            if len(tokens) != 1:
                raise ValueError(f"negator {word!r} must be a single token")
            negator_entries.append(Entry((tokens[0],), False, ()))
    entries = [*lexicon.entries, *negator_entries]
    n_lexicon = len(lexicon.entries)

    keyed: list[tuple[int, int]] = []
    flags: dict[int, int] = {}
    kinds: list[int] = []
    prefix_lengths = phrase_prefix_lengths = phrase_sizes = 0
    entry_tokens: list[int] = []
    entry_first: list[int] = []
    token_start: list[int] = []
    token_length: list[int] = []
    codepoints: list[int] = []
    for i, entry in enumerate(entries):
        entry_tokens.append(len(entry.tokens))
        entry_first.append(len(token_start))
        for token in entry.tokens:
            token_start.append(len(codepoints))
            token_length.append(len(token))
            codepoints.extend(ord(c) for c in token)
        last = entry.tokens[-1]
        if entry.wildcard and len(last) > MAX_PREFIX:
            raise ValueError(f"wildcard entry {entry.text!r} is longer than {MAX_PREFIX} characters")
        last_hash = int(_token_hash(last))
        if i >= n_lexicon:
            kind, key = NEGATOR, last_hash
        elif len(entry.tokens) == 1:
            kind, key = (PREFIX if entry.wildcard else WORD), last_hash
            if entry.wildcard:
                prefix_lengths |= 1 << len(last)
        else:
            kind = PHRASE_PREFIX if entry.wildcard else PHRASE
            key = int(_phrase_key(entry.tokens))
            phrase_sizes |= 1 << len(entry.tokens)
            flag = ENDS_WILDCARD_PHRASE if entry.wildcard else ENDS_PHRASE
            flags[last_hash or 1] = flags.get(last_hash or 1, 0) | int(flag)
            if entry.wildcard:
                phrase_prefix_lengths |= 1 << len(last)
        kinds.append(kind)
        keyed.append((key, i))
    chain = np.full(len(entries), -1, np.int32)
    table, bits = _hash_table(keyed, flags, chain)

    index = {name: i for i, name in enumerate(lexicon.categories)}
    plain = [list(e.weights) for e in entries]
    negated = [negated_weights(e, lexicon, negation.scale) for e in entries]
    contrib_ptr, contrib_category, contrib_weight = _contributions(plain, negated, index)
    nfc_check, combining = nfc_tables()
    return Tables(
        word_code=word_codes(),
        nfc_check=nfc_check,
        combining=combining,
        table=table,
        filter=bits,
        chain=chain,
        kind=np.array(kinds, np.int8),
        entry_tokens=np.array(entry_tokens, np.int32),
        entry_first_token=np.array(entry_first, np.int32),
        token_start=np.array(token_start, np.int32),
        token_length=np.array(token_length, np.int32),
        codepoints=np.array(codepoints, np.int32),
        contrib_ptr=contrib_ptr,
        contrib_category=contrib_category,
        contrib_weight=contrib_weight,
        prefix_lengths=np.uint64(prefix_lengths),
        phrase_prefix_lengths=np.uint64(phrase_prefix_lengths),
        phrase_sizes=np.uint64(phrase_sizes),
        max_phrase=np.int64(max((len(e.tokens) for e in lexicon.entries), default=1)),
        window=np.int64(negation.window),
    )
