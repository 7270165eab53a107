"""Helpers for tests of the scorers: the compiled one must count exactly as the reference loop does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scalecode_dictionary.compile import Negation
from scalecode_dictionary.lexicon import Entry, Lexicon
from scalecode_dictionary.scorer import LexiconScorer, ReferenceScorer, features
from scalecode_dictionary.tokenize import prefix_tokens, tokenize

# What the lexicon reader refuses: a phrase of more tokens, a last token of more characters.
MAX_TOKENS = 8
MAX_LAST_TOKEN = 63


def checked_features(lexicon: Lexicon, texts: Sequence[str | None], **negation: Any) -> Any:
    """Features of ``texts`` from the compiled scorer, after checking that its token, match and
    category counts and weight sums equal the reference loop's."""
    fast = LexiconScorer(lexicon, Negation(**negation)).score(texts)
    slow = ReferenceScorer(lexicon, Negation(**negation)).score(texts)
    np.testing.assert_array_equal(fast.n_tokens, slow.n_tokens)
    np.testing.assert_array_equal(fast.n_matched, slow.n_matched)
    np.testing.assert_array_equal(fast.counts, slow.counts)
    np.testing.assert_array_equal(fast.sums, slow.sums)
    return features(fast, lexicon)


def one_category_lexicon(terms: Sequence[str], name: str = "fuzz") -> Lexicon:
    """A lexicon of ``terms`` (as generated text, say) in one weighted category ``tone``, every third
    a wildcard read as ``term*`` is; terms the reader would refuse or that give no token are left out,
    and a term repeated keeps its first weight."""
    weights: dict[tuple[tuple[str, ...], bool], float] = {}
    for i, term in enumerate(terms):
        wildcard = i % 3 == 0
        tokens = tuple(prefix_tokens(term) if wildcard else tokenize(term))
        if tokens and all(tokens) and len(tokens) <= MAX_TOKENS and len(tokens[-1]) <= MAX_LAST_TOKEN:
            weights.setdefault((tokens, wildcard), 1.0 + i)
    entries = [Entry(tokens, wildcard, (("tone", w),)) for (tokens, wildcard), w in weights.items()]
    return Lexicon(name=name, categories=["tone"], entries=entries, weighted={"tone"})
