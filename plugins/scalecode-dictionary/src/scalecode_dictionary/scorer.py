"""Scoring documents with a lexicon: counts, proportions, weighted sums and means, net tone.

``LexiconScorer`` runs the compiled kernel over Arrow string buffers in worker threads.
``ReferenceScorer`` does the same work the straightforward way, one document at a time in Python; it
is the specification the kernel is tested against and the baseline of the benchmark.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scalecode_dictionary.compile import NO_NEGATION, Negation, compile_lexicon, negated_weights
from scalecode_dictionary.kernel import score_range
from scalecode_dictionary.lexicon import Lexicon
from scalecode_dictionary.tokenize import tokenize

NET_TONE = "net_tone"


@dataclass
class Scores:
    """Raw per-document results: tokens, matched tokens, and per-category counts and weight sums."""

    categories: list[str]
    n_tokens: np.ndarray  # (D,)
    n_matched: np.ndarray  # (D,)
    counts: np.ndarray  # (D, C)
    sums: np.ndarray  # (D, C)


def features(scores: Scores, lexicon: Lexicon) -> dict[str, np.ndarray]:
    """Per-document features with stable names.

    ``n_tokens``, ``n_matched``; per category ``count_<c>`` and ``prop_<c>`` (share of tokens); per
    weighted category ``sum_<c>`` and ``mean_<c>`` (mean weight of its matches, 0 without matches);
    ``net_tone`` = log((positive + 0.5) / (negative + 0.5)) where the lexicon has polar categories
    (Lexicoder's log ratio, as in Proksch et al. 2019).
    """
    tokens = scores.n_tokens.astype(np.float64)
    out: dict[str, np.ndarray] = {
        "n_tokens": scores.n_tokens.astype(np.int64),
        "n_matched": scores.n_matched.astype(np.int64),
    }
    for i, category in enumerate(scores.categories):
        count = scores.counts[:, i]
        out[f"count_{category}"] = np.rint(count).astype(np.int64)
        out[f"prop_{category}"] = np.divide(count, tokens, out=np.zeros_like(count), where=tokens > 0)
        if category in lexicon.weighted:
            total = scores.sums[:, i]
            out[f"sum_{category}"] = total
            out[f"mean_{category}"] = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    if lexicon.positive and lexicon.negative:
        index = {c: i for i, c in enumerate(scores.categories)}
        positive = scores.counts[:, [index[c] for c in lexicon.positive]].sum(axis=1)
        negative = scores.counts[:, [index[c] for c in lexicon.negative]].sum(axis=1)
        out[NET_TONE] = np.log((positive + 0.5) / (negative + 0.5))
    return out


def _large_strings(texts: Sequence[str | None] | pa.Array | pa.ChunkedArray) -> pa.LargeStringArray:
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if not isinstance(texts, pa.Array):
        texts = pa.array(texts, type=pa.large_string())
    if texts.type != pa.large_string():
        texts = texts.cast(pa.large_string())
    if texts.null_count:
        texts = pc.fill_null(texts, "")
    return texts


class LexiconScorer:
    """Scores batches of documents with one lexicon, using ``threads`` threads."""

    def __init__(self, lexicon: Lexicon, negation: Negation = NO_NEGATION, threads: int = 1) -> None:
        self.lexicon = lexicon
        self.negation = negation
        self.tables = compile_lexicon(lexicon, negation)
        self.threads = max(1, threads)
        self._pool: ThreadPoolExecutor | None = None
        # Compile (or load the cached machine code) now, so that the first batch, or a fit timed in
        # the comparison, does not carry numba's one-time compilation.
        self.score([""])

    def score(self, texts: Sequence[str | None] | pa.Array | pa.ChunkedArray) -> Scores:
        """Score a batch; texts are put in Unicode NFC first, as ``tokenize`` does.

        The kernel flags the documents that may not be in NFC (one holding a code point that NFC
        changes or composes with the one before, or combining marks out of canonical order); only
        those are normalised here, in Python, and scored again if normalising changed them. Text
        already in NFC is seldom flagged (English never), so it pays next to nothing for this.
        """
        array = _large_strings(texts)
        scores, maybe_not_nfc = self._score_array(array)
        flagged = np.flatnonzero(maybe_not_nfc)
        if flagged.size:
            # As bytes: an Arrow array handed in directly may hold invalid UTF-8, which the kernel
            # reads as it is; such a text is left as the kernel scored it.
            originals = array.take(pa.array(flagged)).cast(pa.large_binary()).to_pylist()
            changed = []
            normalised = []
            for row, raw in zip(flagged.tolist(), originals, strict=True):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError:
                    continue
                nfc = unicodedata.normalize("NFC", text)
                if nfc != text:
                    changed.append(row)
                    normalised.append(nfc)
            if changed:
                again, _ = self._score_array(_large_strings(normalised))
                rows = np.array(changed, np.int64)
                scores.n_tokens[rows] = again.n_tokens
                scores.n_matched[rows] = again.n_matched
                scores.counts[rows] = again.counts
                scores.sums[rows] = again.sums
        return scores

    def _score_array(self, array: pa.LargeStringArray) -> tuple[Scores, np.ndarray]:
        """Scores of the texts as they are, and which of them may not be in NFC."""
        n = len(array)
        _, offset_buffer, data_buffer = array.buffers()
        offsets = np.frombuffer(offset_buffer, dtype=np.int64)[array.offset : array.offset + n + 1]
        data = (
            np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(1, np.uint8)
        )
        categories = len(self.lexicon.categories)
        n_tokens = np.zeros(n, np.int64)
        n_matched = np.zeros(n, np.int64)
        counts = np.zeros((n, categories), np.float64)
        sums = np.zeros((n, categories), np.float64)
        maybe_not_nfc = np.zeros(n, np.bool_)
        args = (self.tables, n_tokens, n_matched, counts, sums, maybe_not_nfc)
        parts = min(self.threads, max(1, n // 256))
        if parts == 1:
            score_range(data, offsets, 0, n, *args)
        else:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="lexicon")
            # Split by bytes, not documents, so threads finish together when lengths vary.
            cuts = np.searchsorted(offsets, np.linspace(offsets[0], offsets[-1], parts + 1)[1:-1])
            bounds = [0, *np.clip(cuts, 0, n).tolist(), n]
            futures = [
                self._pool.submit(score_range, data, offsets, lo, hi, *args)
                for lo, hi in pairwise(bounds)
                if hi > lo
            ]
            for future in futures:
                future.result()
        return Scores(self.lexicon.categories, n_tokens, n_matched, counts, sums), maybe_not_nfc

    def features(self, texts: Sequence[str | None] | pa.Array | pa.ChunkedArray) -> dict[str, np.ndarray]:
        return features(self.score(texts), self.lexicon)


class ReferenceScorer:
    """The same scoring, one document at a time in plain Python (the specification and the baseline)."""

    def __init__(self, lexicon: Lexicon, negation: Negation = NO_NEGATION) -> None:
        self.lexicon = lexicon
        self.window = negation.window
        self.negators = {tokenize(w)[0] for w in negation.words} if negation.window > 0 else set()
        index = {c: i for i, c in enumerate(lexicon.categories)}
        self.plain = [[(index[c], w) for c, w in e.weights] for e in lexicon.entries]
        self.negated = [
            [(index[c], w) for c, w in negated_weights(e, lexicon, negation.scale)] for e in lexicon.entries
        ]
        self.words: dict[str, int] = {}
        self.prefixes: dict[str, int] = {}
        self.phrases: dict[tuple[str, ...], int] = {}
        self.phrase_prefixes: dict[tuple[str, ...], int] = {}
        for i, entry in enumerate(lexicon.entries):
            if len(entry.tokens) == 1:
                table = self.prefixes if entry.wildcard else self.words
                table.setdefault(entry.tokens[0], i)
            else:
                table2 = self.phrase_prefixes if entry.wildcard else self.phrases
                table2.setdefault(entry.tokens, i)
        self.prefix_lengths = sorted({len(k) for k in self.prefixes}, reverse=True)
        self.phrase_prefix_lengths = sorted({len(k[-1]) for k in self.phrase_prefixes}, reverse=True)
        self.phrase_sizes = sorted({len(k) for k in [*self.phrases, *self.phrase_prefixes]}, reverse=True)

    def _single(self, token: str) -> int | None:
        if token in self.words:
            return self.words[token]
        for length in self.prefix_lengths:
            if length <= len(token) and token[:length] in self.prefixes:
                return self.prefixes[token[:length]]
        return None

    def _phrase(self, tokens: list[str], t: int) -> tuple[int, int] | None:
        for size in self.phrase_sizes:
            if size > t + 1:
                continue
            key = tuple(tokens[t - size + 1 : t + 1])
            if key in self.phrases:
                return self.phrases[key], size
            for length in self.phrase_prefix_lengths:
                if length <= len(key[-1]):
                    prefixed = (*key[:-1], key[-1][:length])
                    if prefixed in self.phrase_prefixes:
                        return self.phrase_prefixes[prefixed], size
        return None

    def score_one(self, text: str) -> tuple[int, int, list[float], list[float]]:
        categories = len(self.lexicon.categories)
        counts = [0.0] * categories
        sums = [0.0] * categories
        tokens = tokenize(text)  # NFC, then the tokenisation rule
        match_at: dict[int, tuple[int, bool]] = {}  # last token -> (entry, negated)
        cover = [-1] * len(tokens)
        matched = 0

        def apply(entry: int, negated: bool, sign: float) -> None:
            for c, w in (self.negated if negated else self.plain)[entry]:
                counts[c] += sign
                sums[c] += sign * w

        for t, token in enumerate(tokens):
            chosen, first = None, t
            found = self._phrase(tokens, t)
            if found is not None:
                entry, size = found
                start = t - size + 1
                if all(cover[j] < 0 or cover[j] >= start for j in range(start, t)):
                    chosen, first = entry, start
                    for j in range(start, t):
                        if j in match_at:
                            old, old_negated = match_at.pop(j)
                            apply(old, old_negated, -1.0)
                            matched -= len(self.lexicon.entries[old].tokens)
            if chosen is None:
                chosen, first = self._single(token), t
            if chosen is not None:
                lo = max(0, first - self.window)
                negated = self.window > 0 and any(tokens[j] in self.negators for j in range(lo, first))
                apply(chosen, negated, 1.0)
                matched += len(self.lexicon.entries[chosen].tokens)
                match_at[t] = (chosen, negated)
                for j in range(first, t + 1):
                    cover[j] = first
        return len(tokens), matched, counts, sums

    def score(self, texts: Sequence[str | None]) -> Scores:
        rows = [self.score_one(text or "") for text in texts]
        categories = len(self.lexicon.categories)
        return Scores(
            self.lexicon.categories,
            np.array([r[0] for r in rows], np.int64),
            np.array([r[1] for r in rows], np.int64),
            np.array([r[2] for r in rows], np.float64).reshape(len(rows), categories),
            np.array([r[3] for r in rows], np.float64).reshape(len(rows), categories),
        )
