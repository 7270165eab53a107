"""The tokenisation rule, and the compiled scanner agreeing with it on any text."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from scalecode_dictionary import Lexicon, LexiconScorer, tokenize


def test_words_apostrophes_case_and_unicode():
    assert tokenize("Don't STOP—we’re here!") == ["don't", "stop", "we're", "here"]
    assert tokenize("'quoted' people's 'tis") == ["quoted", "people's", "tis"]
    assert tokenize("ÉCOLE Straße ΣΟΦΙΑ") == ["école", "straße", "σοφια"]
    assert tokenize("well-known e-mail") == ["well", "known", "e", "mail"]
    assert tokenize("snake_case 42nd 3.14") == ["snake_case", "42nd", "3", "14"]
    assert tokenize("emoji😀between 🇺🇳") == ["emoji", "between"]
    assert tokenize("") == [] and tokenize("... !!!") == []


EMPTY = Lexicon(name="none", categories=["x"], entries=[])
scanner = LexiconScorer(EMPTY)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=60), min_size=1, max_size=8))
def test_compiled_scanner_counts_the_same_tokens(texts):
    scores = scanner.score(texts)
    assert scores.n_tokens.tolist() == [len(tokenize(t)) for t in texts]


@settings(max_examples=200, deadline=None)
@given(
    st.text(
        alphabet=st.sampled_from(
            list("ab' ’-ÀÉàé.\n\u0301\u0308\u093eकᄀ\u1161\u200c\u200d\u00ad\u2060\ufeff")
        ),
        max_size=80,
    )
)
def test_apostrophe_and_case_edges(text):
    assert scanner.score([text]).n_tokens[0] == len(tokenize(text))
    assert np.all(scanner.score([text, text]).n_tokens == len(tokenize(text)))
