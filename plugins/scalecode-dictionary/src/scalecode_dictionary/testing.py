"""Helpers for tests of the scorers: the compiled one must count exactly as the reference loop does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from scalecode_dictionary.compile import Negation
from scalecode_dictionary.lexicon import Lexicon
from scalecode_dictionary.scorer import LexiconScorer, ReferenceScorer, features


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
