"""The compiled scorer: one pass over the UTF-8 bytes of a batch of documents, no Python per document.

For each document it decodes code points, applies the tokenisation rule of tokenize.py, hashes each
token as it goes (FNV-1a over normalised code points, so the running hash after k characters is the
hash of the token's k-character prefix), and looks tokens, prefixes and phrases up in one
open-addressing hash table. Every hit is verified against the
entry's characters, so a hash collision can never produce a false match. Matching rules:

- an exact entry beats a wildcard entry; among wildcard entries the longest prefix wins;
- a phrase (a multi-token entry) beats the single tokens inside it; phrases are found left to right,
  at their last token: the longest phrase ending there replaces earlier matches lying wholly inside
  it, but is dropped if it overlaps an earlier match that starts before it (so of two overlapping
  phrases the one that ends first wins unless it lies inside the other), and then no shorter phrase
  ending at that token is tried;
- a match is negated when a negator occurs within ``window`` tokens before its first token; a negated
  match contributes its negated weights (see compile.py).

The rule applies to text in Unicode normal form C. The kernel does not normalise: it flags each
document that may not be in NFC (one holding a code point that NFC could change or compose, or two
adjacent combining characters out of canonical order; see tokenize.nfc_tables), looking only at
non-ASCII characters, and the caller scores those documents again after normalising them (scorer.py).

Scoring runs in worker threads without the GIL (``nogil``), one contiguous range of documents each.
The arrays are unpacked from ``Tables`` once per call: reading a field of a tuple inside the loop
would cost numba a reference-count round trip per access.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from scalecode_dictionary.tokenize import IGNORED, JOINER_BASE

FNV_OFFSET = np.uint64(0xCBF29CE484222325)
FNV_PRIME = np.uint64(0x100000001B3)
PHRASE_PRIME = np.uint64(0x9E3779B97F4A7C15)
BMP = 0x10000
MAX_PREFIX = 63  # prefixes longer than this many characters are not looked up
RING = 32  # tokens remembered for phrases and negation (max phrase length + window <= RING)
RING_MASK = RING - 1
# Most tokens match nothing. A 65,536-bit filter (8 KB, resident in L1) answers "certainly absent"
# for most of them before the table (hundreds of KB) is touched.
FILTER_BITS = 16
FILTER_WORDS = (1 << FILTER_BITS) // 64

# Entry kinds. Entries of every kind share one table keyed by hash: a token's hash equals the
# hash of a word entry, a negator or a wildcard prefix spelled the same; a phrase's key folds the
# hashes of its tokens. Entries with equal keys are chained, and a lookup checks the kind.
WORD, PREFIX, PHRASE, PHRASE_PREFIX, NEGATOR = 0, 1, 2, 3, 4
# Slot flags: some phrase ends with this token exactly / with this prefix of its last token.
ENDS_PHRASE = np.uint64(1)
ENDS_WILDCARD_PHRASE = np.uint64(2)


class Tables(NamedTuple):
    """A lexicon compiled to arrays (built by compile.py)."""

    # int32[BMP]: a word character's normalised code point; a combining mark's -(that + 2); a joiner
    # JOINER_BASE - its code point; an ignorable character IGNORED; anything else -1 (tokenize.word_codes)
    word_code: np.ndarray
    nfc_check: np.ndarray  # uint64[CODE_SPACE // 64]: bit set for code points NFC could change or compose
    combining: np.ndarray  # uint8[BMP]: canonical combining class
    table: np.ndarray  # uint64[size, 2]: key (0 = empty), then flags << 32 | first entry + 1 (0 = none)
    filter: np.ndarray  # uint64[FILTER_WORDS]: bit (key >> 48) set for every key in the table
    chain: np.ndarray  # int32[entries]: the next entry with the same key, or -1
    kind: np.ndarray  # int8[entries]: WORD, PREFIX, PHRASE, PHRASE_PREFIX or NEGATOR
    entry_tokens: np.ndarray  # int32[entries]: tokens per entry
    entry_first_token: np.ndarray  # int32[entries]: index of its first token
    token_start: np.ndarray  # int32[tokens]: start of the token's code points in ``codepoints``
    token_length: np.ndarray  # int32[tokens]
    codepoints: np.ndarray  # int32[...]
    contrib_ptr: np.ndarray  # int32[2, entries + 1]: row 0 plain, row 1 negated
    contrib_category: np.ndarray  # int32[...]
    contrib_weight: np.ndarray  # float64[...]
    prefix_lengths: np.uint64  # bit k set: some single-token wildcard prefix has k characters
    phrase_prefix_lengths: np.uint64  # the same for the last token of wildcard phrases
    phrase_sizes: np.uint64  # bit L set: some phrase has L tokens
    max_phrase: np.int64
    window: np.int64  # negation window in tokens; 0 turns negation off


@numba.njit(cache=True, nogil=True)
def hash_codepoints(codepoints: np.ndarray) -> np.uint64:
    """FNV-1a over code points: what the scanner computes for a token (used to build the tables)."""
    h = FNV_OFFSET
    for cp in codepoints:
        h = (h ^ np.uint64(cp)) * FNV_PRIME
    return h


@numba.njit(cache=True, nogil=True)
def combine(h: np.uint64, token_hash: np.uint64) -> np.uint64:
    """Fold one token's hash into a phrase hash."""
    return (h ^ token_hash) * PHRASE_PRIME


@numba.njit(cache=True, nogil=True, inline="always")
def _decode(data: np.ndarray, p: int) -> tuple[np.int64, int]:
    """The code point at byte p and the position after it (invalid bytes read as U+FFFD)."""
    b = np.int64(data[p])
    n = len(data)
    if b < 0x80:
        return b, p + 1
    if b >= 0xF0 and p + 3 < n:
        cp = ((b & 0x07) << 18) | ((np.int64(data[p + 1]) & 0x3F) << 12)
        cp |= ((np.int64(data[p + 2]) & 0x3F) << 6) | (np.int64(data[p + 3]) & 0x3F)
        return cp, p + 4
    if b >= 0xE0 and p + 2 < n:
        cp = ((b & 0x0F) << 12) | ((np.int64(data[p + 1]) & 0x3F) << 6) | (np.int64(data[p + 2]) & 0x3F)
        return cp, p + 3
    if b >= 0xC0 and p + 1 < n:
        return ((b & 0x1F) << 6) | (np.int64(data[p + 1]) & 0x3F), p + 2
    return np.int64(0xFFFD), p + 1


@numba.njit(cache=True, nogil=True, inline="always")
def _visible(
    data: np.ndarray, p: int, end: int, word_code: np.ndarray, past_joiners: bool
) -> tuple[np.int64, int]:
    """The word code of the first character from byte p on that is not ignorable (nor a joiner, when
    ``past_joiners``), or -1 at ``end``; with the position it starts at, or ``end``."""
    while p < end:
        cp, q = _decode(data, p)
        c = np.int64(word_code[cp]) if cp < BMP else np.int64(-1)
        if c == IGNORED or (past_joiners and c <= JOINER_BASE):
            p = q
            continue
        return c, p
    return np.int64(-1), end


@numba.njit(cache=True, nogil=True, inline="always")
def _find(table: np.ndarray, bits: np.ndarray, h: np.uint64) -> np.uint64:
    """The value of the slot holding key h (flags << 32 | first entry + 1), or 0 when absent.

    Key 0 marks an empty slot, so a zero hash is stored as 1.
    """
    key = h if h != 0 else np.uint64(1)
    top = key >> np.uint64(64 - FILTER_BITS)
    if not (bits[top >> np.uint64(6)] >> (top & np.uint64(63))) & np.uint64(1):
        return np.uint64(0)
    mask = np.uint64(table.shape[0] - 1)
    i = key & mask
    while True:
        k = table[i, 0]
        if k == key:
            return table[i, 1]
        if k == 0:
            return np.uint64(0)
        i = (i + np.uint64(1)) & mask


@numba.njit(cache=True, nogil=True, inline="always")
def _first(value: np.uint64) -> np.int64:
    """The first entry of a slot value, or -1."""
    return np.int64(value & np.uint64(0xFFFFFFFF)) - 1


def score_range(
    data: np.ndarray,
    offsets: np.ndarray,
    first_doc: int,
    last_doc: int,
    t: Tables,
    out_tokens: np.ndarray,
    out_matched: np.ndarray,
    out_count: np.ndarray,
    out_sum: np.ndarray,
    out_nfc: np.ndarray,
) -> None:
    """Score documents [first_doc, last_doc) into the output arrays (rows indexed by document).

    ``out_nfc[d]`` is set when document d may not be in NFC (and so must be normalised and scored
    again).
    """
    _score_range(data, offsets, first_doc, last_doc, *t, out_tokens, out_matched, out_count, out_sum, out_nfc)


@numba.njit(cache=True, nogil=True)
def _score_range(
    data: np.ndarray,
    offsets: np.ndarray,
    first_doc: int,
    last_doc: int,
    word_code: np.ndarray,
    nfc_check: np.ndarray,
    combining: np.ndarray,
    table: np.ndarray,
    bits: np.ndarray,
    chain: np.ndarray,
    kind: np.ndarray,
    entry_tokens: np.ndarray,
    entry_first_token: np.ndarray,
    token_start: np.ndarray,
    token_length: np.ndarray,
    codepoints: np.ndarray,
    contrib_ptr: np.ndarray,
    contrib_category: np.ndarray,
    contrib_weight: np.ndarray,
    prefix_lengths: np.uint64,
    phrase_prefix_lengths: np.uint64,
    phrase_sizes: np.uint64,
    max_phrase: int,
    window: int,
    out_tokens: np.ndarray,
    out_matched: np.ndarray,
    out_count: np.ndarray,
    out_sum: np.ndarray,
    out_nfc: np.ndarray,
) -> None:
    # The last RING tokens of the current document, and what matched there.
    r_start = np.zeros(RING, np.int64)  # byte range of each remembered token
    r_end = np.zeros(RING, np.int64)
    r_hash = np.zeros(RING, np.uint64)
    r_negator = np.zeros(RING, np.bool_)
    r_entry = np.full(RING, -1, np.int64)  # the match ending at this token
    r_negated = np.zeros(RING, np.bool_)
    r_cover = np.full(RING, -1, np.int64)  # first token of the match covering this token
    # The current token's wildcard candidates and phrase-prefix hashes, shortest first.
    cand = np.zeros(MAX_PREFIX + 1, np.int64)
    prefix_hash = np.zeros(MAX_PREFIX + 1, np.uint64)
    check_prefixes = prefix_lengths != 0 or phrase_prefix_lengths != 0

    def token_equals(start: int, end: int, token: int, prefix: bool) -> bool:
        # Whether text bytes [start, end) spell entry token ``token`` (or begin with it).
        cs = token_start[token]
        cl = token_length[token]
        p = start
        i = 0
        while p < end:
            cp, p = _decode(data, p)
            c = word_code[cp] if cp < BMP else -1
            if c == IGNORED:
                continue  # dropped, as if absent
            if i == cl:
                return prefix
            if c < -1:
                c = -c - 2 if c > JOINER_BASE else JOINER_BASE - c  # a combining mark, a joiner
            elif c < 0:
                c = 0x27  # the only other character inside a token: an apostrophe joining two runs
            if c != codepoints[cs + i]:
                return False
            i += 1
        return i == cl

    def entry_matches(entry: int, want: int, first_tok: int) -> bool:
        # Whether ``entry`` is of kind ``want`` and the text tokens from first_tok spell it.
        if kind[entry] != want:
            return False
        n = entry_tokens[entry]
        base = entry_first_token[entry]
        wildcard = want == PREFIX or want == PHRASE_PREFIX  # noqa: PLR1714 - numba-friendly
        for i in range(n):
            slot = (first_tok + i) & RING_MASK
            if not token_equals(r_start[slot], r_end[slot], base + i, wildcard and i == n - 1):
                return False
        return True

    def walk(e: int, want: int, size: int, first_tok: int) -> int:
        # The first entry along a chain of the wanted kind and size that the text spells, or -1.
        while e >= 0:
            if entry_tokens[e] == size and entry_matches(e, want, first_tok):
                return e
            e = chain[e]
        return -1

    def apply(d: int, entry: int, negated: bool, sign: float) -> None:
        row = 1 if negated else 0
        for k in range(contrib_ptr[row, entry], contrib_ptr[row, entry + 1]):
            c = contrib_category[k]
            out_count[d, c] += sign
            out_sum[d, c] += sign * contrib_weight[k]

    for d in range(first_doc, last_doc):
        p = offsets[d]
        end = offsets[d + 1]
        tok = 0
        matched = 0
        in_token = False
        start = p
        h = FNV_OFFSET
        length = 0
        n_cand = 0
        n_prefix = 0
        maybe_not_nfc = False
        mark_end = np.int64(-1)  # the byte after the last combining character, and its class
        mark_class = 0
        join_end = np.int64(-1)  # joiners before this byte belong to the current token
        while True:
            at_end = p >= end
            c = np.int64(-1)
            cp = np.int64(-1)
            q = p
            if not at_end:
                b = np.int64(data[p])
                if b < 0x80:
                    cp = b
                    q = p + 1
                    c = np.int64(word_code[b])
                else:
                    cp, q = _decode(data, p)
                    if maybe_not_nfc:
                        pass
                    elif (nfc_check[cp >> 6] >> np.uint64(cp & 63)) & np.uint64(1):
                        maybe_not_nfc = True
                    elif cp < BMP and combining[cp] != 0:
                        if mark_end == p and combining[cp] < mark_class:
                            maybe_not_nfc = True  # NFC would reorder the two
                        mark_end = q
                        mark_class = combining[cp]
                    if cp < BMP:
                        c = np.int64(word_code[cp])
                        if c < -1:
                            if c > JOINER_BASE:  # a mark: part of the token it follows, else a separator
                                c = -c - 2 if in_token else np.int64(-1)
                            elif c == IGNORED:  # soft hyphen, word joiner: as if absent
                                p = q
                                continue
                            elif in_token:
                                # A joiner: part of the token when the run of joiners it starts is
                                # followed by a word character or a mark (looked for once per run).
                                if p >= join_end:
                                    nxt, join_end = _visible(data, q, end, word_code, True)
                                    if nxt == -1:
                                        join_end = np.int64(-1)
                                c = JOINER_BASE - c if p < join_end else np.int64(-1)
                            else:
                                c = np.int64(-1)
            if c < 0 and in_token and (cp == 0x27 or cp == 0x2019):  # noqa: PLR1714
                nxt, _ = _visible(data, q, end, word_code, False)
                if nxt >= 0:
                    c = np.int64(0x27)  # an apostrophe joining two word characters
            if c >= 0:
                if not in_token:
                    in_token = True
                    start = p
                    h = FNV_OFFSET
                    length = 0
                    n_cand = 0
                    n_prefix = 0
                h = (h ^ np.uint64(c)) * FNV_PRIME
                length += 1
                if check_prefixes and length <= MAX_PREFIX:
                    bit = np.uint64(1) << np.uint64(length)
                    if prefix_lengths & bit:
                        e = _first(_find(table, bits, h))
                        if e >= 0:
                            cand[n_cand] = e
                            n_cand += 1
                    if phrase_prefix_lengths & bit:
                        prefix_hash[n_prefix] = h
                        n_prefix += 1
                p = q
                continue
            if in_token:
                # Token ``tok`` spans bytes [start, p): remember it, then apply the match ending here.
                slot = tok & RING_MASK
                r_start[slot] = start
                r_end[slot] = p
                r_hash[slot] = h
                r_entry[slot] = -1
                r_cover[slot] = -1
                found = _find(table, bits, h)
                head = _first(found)
                r_negator[slot] = window > 0 and walk(head, NEGATOR, 1, tok) >= 0
                single = walk(head, WORD, 1, tok)
                j = n_cand - 1
                while single < 0 and j >= 0:  # the longest wildcard prefix
                    single = walk(cand[j], PREFIX, 1, tok)
                    j -= 1
                phrase = -1
                size = 0
                if tok > 0 and max_phrase > 1:
                    # Only a token that can end some phrase pays for the phrase search.
                    can_end = (found >> np.uint64(32)) & ENDS_PHRASE != 0
                    k = n_prefix - 1
                    while not can_end and k >= 0:
                        can_end = (
                            _find(table, bits, prefix_hash[k]) >> np.uint64(32)
                        ) & ENDS_WILDCARD_PHRASE != 0
                        k -= 1
                    if can_end:
                        for n_tok in range(min(max_phrase, tok + 1), 1, -1):
                            if not (phrase_sizes & (np.uint64(1) << np.uint64(n_tok))):
                                continue
                            first_tok = tok - n_tok + 1
                            ph = FNV_OFFSET
                            for jj in range(first_tok, tok):
                                ph = (ph ^ r_hash[jj & RING_MASK]) * PHRASE_PRIME
                            key = (ph ^ h) * PHRASE_PRIME
                            phrase = walk(_first(_find(table, bits, key)), PHRASE, n_tok, first_tok)
                            k = n_prefix - 1
                            while phrase < 0 and k >= 0:
                                key = (ph ^ prefix_hash[k]) * PHRASE_PRIME
                                phrase = walk(
                                    _first(_find(table, bits, key)), PHRASE_PREFIX, n_tok, first_tok
                                )
                                k -= 1
                            if phrase >= 0:
                                size = n_tok
                                break
                chosen = -1
                first_tok = tok
                if phrase >= 0:
                    phrase_start = tok - size + 1
                    overlapped = False
                    for jj in range(phrase_start, tok):
                        cover = r_cover[jj & RING_MASK]
                        if cover >= 0 and cover < phrase_start:
                            overlapped = True
                    if not overlapped:
                        chosen = phrase
                        first_tok = phrase_start
                        for jj in range(phrase_start, tok):
                            old = r_entry[jj & RING_MASK]
                            if old >= 0:  # a shorter match inside the phrase gives way
                                apply(d, old, r_negated[jj & RING_MASK], -1.0)
                                matched -= entry_tokens[old]
                                r_entry[jj & RING_MASK] = -1
                if chosen < 0:
                    chosen = single
                if chosen >= 0:
                    negated = False
                    for jj in range(max(0, first_tok - window), first_tok):
                        if r_negator[jj & RING_MASK]:
                            negated = True
                    apply(d, chosen, negated, 1.0)
                    matched += entry_tokens[chosen]
                    r_entry[slot] = chosen
                    r_negated[slot] = negated
                    for jj in range(first_tok, tok + 1):
                        r_cover[jj & RING_MASK] = first_tok
                tok += 1
                in_token = False
            if at_end:
                break
            p = q
        out_tokens[d] = tok
        out_matched[d] = matched
        out_nfc[d] = maybe_not_nfc
