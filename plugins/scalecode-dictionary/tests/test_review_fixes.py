"""Fixes after review: combining marks and Unicode normalisation, non-finite weights, YAML duplicate
keys and aliases, LIWC conditional codes, and write_lexicon_csv reading back the same lexicon."""

from __future__ import annotations

import time
import unicodedata

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalecode_dictionary import (
    Entry,
    Lexicon,
    LexiconError,
    LexiconScorer,
    read_lexicon,
    tokenize,
    write_lexicon_csv,
)
from scalecode_dictionary.testing import checked_features as both
from scalecode_dictionary.testing import one_category_lexicon


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


def weights(lexicon):
    return {e.text: dict(e.weights) for e in lexicon.entries}


# 1. Combining marks are part of the word they follow; text and entries are NFC-normalised.


def test_combining_marks_stay_inside_their_word():
    assert tokenize("काम") == ["काम"]  # 'work': the vowel sign ा is a mark (Mc)
    assert tokenize("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]  # virama and vowel signs
    assert tokenize("كَتَبَ") == ["كَتَبَ"]  # Arabic harakat
    assert tokenize("ভালো ไม่") == ["ভালো", "ไม่"]
    assert tokenize("अंतर्राष्ट्रीय संबंध") == ["अंतर्राष्ट्रीय", "संबंध"]
    # A mark that follows no word character separates, like any other non-word character.
    assert tokenize("\u0301abc \u0301d -\u0301e") == ["abc", "d", "e"]
    # An apostrophe joins only word characters: a mark after it does not continue the token.
    assert tokenize("a'\u0301b") == ["a", "b"]


def test_decomposed_text_and_entries_are_normalised():
    assert tokenize(nfd("café")) == ["café"] == tokenize("café")
    assert tokenize(nfd("ÉCOLE")) == ["école"]


def test_words_with_marks_match_only_themselves(write):
    lexicon = read_lexicon(write("hi.yml", f"work: [काम]\nfood: [café]\ndrink: [{nfd('thé')}]\n"))
    assert [e.tokens for e in lexicon.entries] == [("काम",), ("café",), ("thé",)]
    texts = ["मुझे काम है", "किम", "कम", "un café", nfd("un café"), "un thé", nfd("UN THÉ")]
    out = both(lexicon, texts)
    assert out["count_work"].tolist() == [1, 0, 0, 0, 0, 0, 0]  # not 'किम' (kim) nor 'कम' (less)
    assert out["count_food"].tolist() == [0, 0, 0, 1, 1, 0, 0]
    assert out["count_drink"].tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert out["n_tokens"].tolist() == [3, 1, 1, 2, 2, 2, 2]
    assert out["prop_work"][0] == pytest.approx(1 / 3)


def test_a_two_word_hindi_phrase_is_a_two_token_entry(write):
    lexicon = read_lexicon(write("hi.tsv", "अंतर्राष्ट्रीय संबंध\t1.0\nअच्छा\t2.0\n"))
    assert [len(e.tokens) for e in lexicon.entries] == [2, 1]
    out = both(lexicon, ["अंतर्राष्ट्रीय संबंध अच्छा हैं", "संबंध"])
    assert out["sum_valence"].tolist() == [3.0, 0.0]
    assert out["n_matched"].tolist() == [3, 0]


def test_wildcards_and_negation_with_marks(write):
    # 'अच्छा*' ends in a vowel sign (a mark): the '*' still makes it a prefix.
    lexicon = read_lexicon(write("p.yml", "positive: [अच्छ*, सुंदर]\nnegative: [बुरा*]\n"))
    assert [e.text for e in lexicon.entries] == ["अच्छ*", "सुंदर", "बुरा*"]
    out = both(lexicon, ["अच्छा सुंदर", "नहीं अच्छा", "बुराई", "अचछा"], window=2, words=("नहीं",))
    assert out["count_positive"].tolist() == [2, 0, 0, 0]
    assert out["count_negative"].tolist() == [0, 1, 1, 0]


MARKED = ["\u0301", "\u0308", "\u0327", "\u093e", "\u094d", "\u0902", "\u064e", "\u0e34", "\u20dd", "\u0345"]
JOINERS = ["\u200c", "\u200d", "\u00ad", "\u2060", "\ufeff"]  # see test_joiners.py
PIECES = ["a", "e", "c", "E", "क", "म", "ب", "ก", "ᄀ", "\u1161", "\u11a8", "가", "Ω", "\u2126", "é", "ñ"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.lists(
            st.sampled_from([*PIECES, *MARKED, " ", "'", "-", "😀", "\U0001d165", *JOINERS]), max_size=30
        ),
        min_size=1,
        max_size=4,
    ),
    st.lists(
        st.lists(st.sampled_from([*PIECES, *MARKED, *JOINERS]), min_size=1, max_size=4),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([0, 2]),
)
def test_compiled_scorer_equals_the_reference_with_marks_and_decomposed_text(texts, terms, window):
    lexicon = one_category_lexicon(["".join(pieces) for pieces in terms], name="marks")
    documents = ["".join(t) for t in texts]
    documents += [nfd(d) for d in documents] + [unicodedata.normalize("NFC", d) for d in documents]
    both(lexicon, documents, window=window, words=("a",))
    assert LexiconScorer(lexicon).score(documents).n_tokens.tolist() == [len(tokenize(d)) for d in documents]


# 2. Non-finite weights are refused, naming the file, line and term.


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "v.csv",
            "term,weight\ngood,1\nmeh,nan\n",
            r"v\.csv:3: weight 'nan' of 'meh' is not a finite number",
        ),
        ("v.tsv", "good\t2\nbad\t-2\nmeh\tNaN\n", r"v\.tsv:3: weight 'NaN' of 'meh' is not a finite number"),
        ("v.txt", "great\tinf\n", r"v\.txt:1: weight 'inf' of 'great' is not a finite number"),
        ("c.csv", "term,category,weight\na,x,1\nb,x,-Infinity\n", r"c\.csv:3: weight '-Infinity' of 'b'"),
        ("w.yml", "tone:\n  good: 1\n  meh: .nan\n", r"w\.yml:3: weight '\.nan' of 'meh' is not a finite"),
        ("i.yml", "tone: {good: 1, bad: -.inf}\n", r"i\.yml:1: weight '-\.inf' of 'bad' is not a finite"),
        ("h.yml", f"tone:\n  good: 1{'0' * 400}\n", r"h\.yml:2: weight '1000+' of 'good' is not a finite"),
    ],
)
def test_non_finite_weights_are_refused_with_file_line_and_term(write, name, text, message):
    with pytest.raises(LexiconError, match=message):
        read_lexicon(write(name, text))


def test_the_scorer_refuses_a_non_finite_weight_built_in_code():
    lexicon = Lexicon(
        name="x", categories=["tone"], entries=[Entry(("meh",), False, (("tone", float("nan")),))]
    )
    with pytest.raises(ValueError, match="entry 'meh' has a non-finite weight nan in category 'tone'"):
        LexiconScorer(lexicon)


# 3 and 4. YAML: repeated keys and aliases are refused, naming the line.


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "positive: [good, great]\nnegative: [bad]\npositive: [fine]\n",
            r"d\.yml:3: key 'positive' repeats the key on line 1",
        ),
        (
            "care:\n  virtue: [kind]\n  vice: [harm]\n  virtue: [fair]\n",
            r"d\.yml:4: category 'care': key 'virtue' repeats the key on line 2",
        ),
        ("tone: {good: 1, bad: -1, good: 2}\n", r"d\.yml:1: category 'tone': key 'good' repeats"),
        ("Dictionary:\n  pos: [a]\n  pos: [b]\n", r"d\.yml:3: key 'pos' repeats"),
    ],
)
def test_repeated_yaml_keys_are_refused(write, text, message):
    with pytest.raises(LexiconError, match=message):
        read_lexicon(write("d.yml", text))


def laughs(depth: int) -> str:
    lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, depth)]
    return "\n".join(lines) + "\n"


def test_yaml_aliases_are_refused_before_they_expand(write):
    path = write("laughs.yml", laughs(7))  # 9**7 terms once expanded
    started = time.perf_counter()
    with pytest.raises(LexiconError, match=r"laughs\.yml:2: YAML aliases \(\*l0\) are not supported"):
        read_lexicon(path)
    assert time.perf_counter() - started < 1.0
    with pytest.raises(LexiconError, match=r"a\.yml:2: YAML aliases \(\*p\) are not supported"):
        read_lexicon(write("a.yml", "pos: &p [good]\nalso: *p\n"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pos: [good, [bad, worse]]\n", r"n\.yml:1: category 'pos': list item \[bad, worse\] is not a term"),
        ("pos:\n  - good\n  - {bad: 1}\n", r"n\.yml:3: category 'pos': list item \{bad: 1\} is not a term"),
    ],
)
def test_list_items_that_are_not_terms_are_refused(write, text, message):
    with pytest.raises(LexiconError, match=message):
        read_lexicon(write("n.yml", text))


# 5. LIWC conditional codes never leak into categories or hide an entry.

HEADER = "%\n1\tfunct\n2\tpronoun\n125\tverb\n126\tposemo\n134\tnegemo\n%\n"


def test_liwc_conditional_codes_are_ignored_whole(write):
    path = write(
        "cond.dic",
        HEADER
        + "like\t(02 134 125)126/125\n"  # only a conditional code: no category
        + "kind\t2 (02 134)126/125\n"
        + "love 126 (02 134)126/125\n"  # space-separated, conditional code last
        + "good 126\n",
    )
    lexicon = read_lexicon(path)
    assert weights(lexicon) == {
        "kind": {"pronoun": 1.0},
        "love": {"posemo": 1.0},
        "good": {"posemo": 1.0},
    }
    assert any(
        w.startswith("3 conditional category codes (LIWC2007 style, such as '(02 134 125)126/125' on line 8)")
        for w in lexicon.warnings
    ), lexicon.warnings


# 6. write_lexicon_csv reads back as the same lexicon, with the same scores.


def same_lexicon(a: Lexicon, b: Lexicon) -> None:
    assert weights(b) == weights(a)
    assert b.categories == a.categories
    assert b.weighted == a.weighted
    assert (b.positive, b.negative) == (a.positive, a.negative)


TEXTS = ["some kind of good day", "a bad, bad crisis", "kind of fine", "nothing", "not good at all"]


def test_afinn_written_and_read_back_is_the_same_lexicon(data_dir, tmp_path):
    afinn = read_lexicon(data_dir / "lexicons" / "AFINN-en-165.txt")
    write_lexicon_csv(afinn, tmp_path / "afinn.csv")
    again = read_lexicon(tmp_path / "afinn.csv")
    assert len(again.entries) == len(afinn.entries) == 3382
    same_lexicon(afinn, again)
    for window in (0, 3):
        one, two = both(afinn, TEXTS, window=window), both(again, TEXTS, window=window)
        assert list(one) == list(two)
        for name in one:
            np.testing.assert_array_equal(one[name], two[name], err_msg=name)
    assert both(again, TEXTS)["mean_valence"][0] == 1.5  # 'kind of' (0) and 'good' (3)


def test_category_lexicons_read_back_the_same(write, tmp_path):
    lexicon = read_lexicon(
        write(
            "mixed.yml",
            """
            negative: [bad, a lie]
            positive: [good*, well-known]
            topic: {taxes: 1.5, jobs: 0, war: -2}
            flags: [kind of]
            """,
        )
    )
    assert lexicon.weighted == {"topic"}
    write_lexicon_csv(lexicon, tmp_path / "mixed.csv")
    again = read_lexicon(tmp_path / "mixed.csv")
    same_lexicon(lexicon, again)
    texts = ["good jobs and taxes, a lie", "war is bad", "kind of well known"]
    one, two = both(lexicon, texts, window=2), both(again, texts, window=2)
    for name in one:
        np.testing.assert_array_equal(one[name], two[name], err_msg=name)
    assert two["mean_topic"].tolist() == [0.75, -2.0, 0.0]  # jobs (0) counts as a match


def test_empty_weights_are_counts_and_zero_is_a_weight_outside_flag_categories(write):
    lexicon = read_lexicon(
        write(
            "t.csv",
            "term,category,weight\ngood,tone,0.5\nmeh,tone,0\nbad,tone,-1\nnice,positive,\n"
            "happy,joy,1\nsad,joy,0\n",
        )
    )
    assert weights(lexicon) == {
        "good": {"tone": 0.5},
        "meh": {"tone": 0.0},  # tone has other weights than 0 and 1: 0 is a weight
        "bad": {"tone": -1.0},
        "nice": {"positive": 1.0},
        "happy": {"joy": 1.0},  # joy's weights are all 0 or 1: association flags, 0 leaves 'sad' out
    }
    assert lexicon.weighted == {"tone", "joy"}
    assert both(lexicon, ["meh good"])["mean_tone"].tolist() == [0.25]


def test_arrow_text_with_invalid_utf8_is_scored_as_the_kernel_reads_it(tmp_path):
    """An Arrow array handed in directly may hold bytes that are not UTF-8; a text the kernel flags
    for normalising is then left as the kernel scored it, not a crash of the batch."""
    import pyarrow as pa

    path = tmp_path / "food.tsv"
    path.write_text("term\tweight\ncafé\t1\n", encoding="utf-8")
    scorer = LexiconScorer(read_lexicon(path))
    docs = [b"un cafe\xcc\x81 \xff ok", b"un caf\xc3\xa9 \xff ok", "un cafe\u0301 ok".encode()]
    offsets = np.cumsum([0] + [len(d) for d in docs]).astype(np.int64)
    array = pa.LargeStringArray.from_buffers(
        len(docs), pa.py_buffer(offsets.tobytes()), pa.py_buffer(b"".join(docs))
    )
    scores = scorer.score(array)
    assert scores.counts[1:, 0].tolist() == [1.0, 1.0]  # NFC as written, and NFD made NFC
