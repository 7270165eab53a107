"""Matching rules on tiny lexicons, and the compiled scorer equal to the reference loop on real data."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalecode_dictionary import LexiconScorer, Negation, ReferenceScorer, features, read_lexicon


@pytest.fixture
def sentiment(write):
    return read_lexicon(
        write(
            "s.csv",
            """
        term,category,weight
        good,tone,1
        great*,tone,2
        gre*,tone,0.5
        bad,tone,-1
        not bad,tone,0.5
        a lie,tone,-3
        dont like,tone,-2
        """,
        )
    )


def score(lexicon, texts, **negation):
    scorer = LexiconScorer(lexicon, Negation(**negation))
    result = scorer.score(texts)
    reference = ReferenceScorer(lexicon, Negation(**negation)).score(texts)
    np.testing.assert_array_equal(result.counts, reference.counts)
    np.testing.assert_array_equal(result.sums, reference.sums)
    np.testing.assert_array_equal(result.n_matched, reference.n_matched)
    return result


def test_exact_beats_wildcard_and_longest_prefix_wins(sentiment):
    result = score(sentiment, ["good", "greatest", "green", "grea", "GREAT!"])
    assert result.sums[:, 0].tolist() == [1.0, 2.0, 0.5, 0.5, 2.0]


def test_phrase_beats_its_words_and_overlaps_resolve_left_to_right(sentiment):
    result = score(sentiment, ["not bad", "bad", "not bad at all, a lie", "it is a lie"])
    assert result.sums[:, 0].tolist() == [0.5, -1.0, -2.5, -3.0]
    assert result.n_matched.tolist() == [2, 1, 4, 2]


def test_overlapping_phrases_resolve_as_documented(write):
    # docs/dictionary.md: the phrase that ends first wins, unless it lies inside the other.
    lexicon = read_lexicon(write("p.csv", "term,category\na b,ab\nb c d,bcd\nb c,bc\nc d,cd\n"))
    result = score(lexicon, ["a b c d", "b c d", "x b c"])
    by_category = [dict(zip(lexicon.categories, row, strict=True)) for row in result.counts.tolist()]
    assert by_category == [
        {"ab": 1, "bcd": 0, "bc": 0, "cd": 0},  # 'b c d' overlaps 'a b'; 'c d' is not tried
        {"ab": 0, "bcd": 1, "bc": 0, "cd": 0},  # 'b c' lies inside 'b c d'
        {"ab": 0, "bcd": 0, "bc": 1, "cd": 0},
    ]


def test_phrases_match_the_tokenised_text(sentiment):
    # "don't" is one token, "dont like" two: only the second text has the phrase.
    result = score(sentiment, ["I don't like it", "I dont like it"])
    assert result.sums[:, 0].tolist() == [0.0, -2.0]


def test_negation_flips_weighted_matches_within_the_window(write):
    lexicon = read_lexicon(write("v.txt", "good\t2\nbad\t-1\n"))
    texts = ["not good", "not very very good", "not very very very good", "good not", "never bad", "good"]
    result = score(lexicon, texts, window=3)
    index = lexicon.categories.index
    assert result.sums[:, index("valence")].tolist() == [-2.0, -2.0, 2.0, 2.0, 1.0, 2.0]
    # negated positives count as negative, and the other way round
    assert result.counts[:, index("negative")].tolist() == [1, 1, 0, 0, 0, 0]
    assert result.counts[:, index("positive")].tolist() == [0, 0, 1, 1, 1, 1]
    assert score(lexicon, texts, window=0).sums[:, index("valence")].tolist() == [
        2.0,
        2.0,
        2.0,
        2.0,
        -1.0,
        2.0,
    ]
    scaled = score(lexicon, ["not good"], window=3, scale=-0.5)
    assert scaled.sums[0, index("valence")] == -1.0


def test_negation_leaves_topical_categories_alone(write):
    lexicon = read_lexicon(write("t.yml", "taxes: [tax*]\npositive: [fair]\nnegative: [unfair]\n"))
    result = score(lexicon, ["not about taxes, not fair"], window=3)
    counts = dict(zip(lexicon.categories, result.counts[0], strict=True))
    assert counts == {"taxes": 1, "positive": 0, "negative": 1}


def test_features_counts_proportions_means_and_net_tone(write):
    lexicon = read_lexicon(write("v.txt", "good\t2\nbad\t-1\nfine\t1\n"))
    out = features(LexiconScorer(lexicon).score(["good good bad and more", "", "nothing here"]), lexicon)
    assert out["n_tokens"].tolist() == [5, 0, 2]
    assert out["count_valence"].tolist() == [3, 0, 0]
    assert out["prop_positive"].tolist() == [0.4, 0.0, 0.0]
    assert out["mean_valence"].tolist() == [1.0, 0.0, 0.0]
    assert out["sum_valence"].tolist() == [3.0, 0.0, 0.0]
    assert out["net_tone"][0] == pytest.approx(np.log(2.5 / 1.5))
    assert out["net_tone"][1] == 0.0


def test_null_texts_and_threads_give_the_same_scores(write, sentiment):
    texts = ["good and great", None, "bad", "not bad"] * 300
    one = LexiconScorer(sentiment).score(texts)
    two = LexiconScorer(sentiment, threads=2).score(texts)
    np.testing.assert_array_equal(one.sums, two.sums)
    assert one.n_tokens[1] == 0


@pytest.fixture(scope="module")
def real(data_dir):
    sentences = pl.read_parquet(data_dir / "sotu-sentences.parquet")["text"].head(4000).to_list()
    nyt = pl.read_parquet(data_dir / "nyt-editorials.parquet")["text"].to_list()
    return sentences + nyt


@pytest.mark.parametrize("lexicon_name", ["vader_lexicon.txt", "AFINN-en-165.txt"])
@pytest.mark.parametrize("window", [0, 3])
def test_compiled_scorer_equals_the_reference_on_real_text(data_dir, real, lexicon_name, window):
    lexicon = read_lexicon(data_dir / "lexicons" / lexicon_name)
    fast = LexiconScorer(lexicon, Negation(window=window), threads=2).score(real)
    slow = ReferenceScorer(lexicon, Negation(window=window)).score(real)
    np.testing.assert_array_equal(fast.n_tokens, slow.n_tokens)
    np.testing.assert_array_equal(fast.counts, slow.counts)
    np.testing.assert_array_equal(fast.sums, slow.sums)
    assert fast.counts.sum() > 1000


def test_prefix_lexicon_equals_the_reference_on_real_text(data_dir, real, write):
    # LSD2015-style: every entry a prefix, with multi-word entries whose last word is a prefix.
    lexicon = read_lexicon(
        write(
            "lsd.yml",
            """
        negative: [abandon, a lie, war, crisis, threat, fail, weak]
        positive: [prosper, peace, success, strong, hope, great]
        neg_positive: [not prosper, no peace, not success]
        neg_negative: [not abandon, no war, not fail]
        """,
        ),
        prefix_match=True,
    )
    fast = LexiconScorer(lexicon).score(real)
    slow = ReferenceScorer(lexicon).score(real)
    np.testing.assert_array_equal(fast.counts, slow.counts)
    assert fast.counts.sum() > 500


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.lists(
            st.sampled_from(
                [
                    "good",
                    "great",
                    "gre",
                    "greatly",
                    "not",
                    "bad",
                    "a",
                    "lie",
                    "dont",
                    "like",
                    " ",
                    " ",
                    ",",
                    "'",
                    "É",
                    "\u0301",  # combining acute: joins the word before it (and NFC composes it)
                    "e\u0301",
                    "\u093e",  # Devanagari vowel sign aa
                    "\u200c",  # zero width non-joiner: inside a word when a word character follows
                    "\u200d",  # zero width joiner: the same
                    "\u00ad",  # soft hyphen: dropped
                    "\u2060",  # word joiner: dropped
                ]
            ),
            max_size=40,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_compiled_scorer_equals_the_reference_on_adversarial_sequences(sentiment, texts):
    # The lexicon fixture is read-only, so sharing it across generated inputs is safe.
    score(sentiment, ["".join(t) for t in texts], window=2)
