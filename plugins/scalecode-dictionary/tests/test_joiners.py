"""Zero-width (non-)joiners inside words, and soft hyphens and word joiners dropped from them.

Persian, Urdu and Kurdish write U+200C ZERO WIDTH NON-JOINER (ZWNJ) inside words (``می‌خواهم``,
``کتاب‌ها``); Indic scripts write U+200D ZERO WIDTH JOINER (ZWJ) inside words (Sinhala ``ශ්‍රී``,
Devanagari half forms, Bengali ya-phala after ra). Both belong to the word when a word character or a
combining mark follows them. U+00AD SOFT HYPHEN, U+2060 WORD JOINER and U+FEFF (its deprecated
twin, also the byte order mark) are invisible and dropped, so ``infor\\u00admation`` is
``information``.
"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scalecode_dictionary import (
    LexiconScorer,
    read_lexicon,
    tokenize,
    write_lexicon_csv,
)
from scalecode_dictionary.testing import checked_features as both
from scalecode_dictionary.testing import one_category_lexicon

ZWNJ = "\u200c"
ZWJ = "\u200d"
SHY = "\u00ad"
WJ = "\u2060"
BOM = "\ufeff"

MI_KHAHAM = f"می{ZWNJ}خواهم"  # 'I want': the prefix می, ZWNJ, خواهم
KETAB_HA = f"کتاب{ZWNJ}ها"  # 'books': کتاب, ZWNJ, the plural suffix ها
SRI = f"ශ්{ZWJ}රී"  # Sinhala 'sri': sha, virama (a mark), ZWJ, ra, vowel sign ii
RAB = f"র{ZWJ}্যাব"  # Bengali 'RAB': ra, ZWJ, virama (a mark), ya, ...: the ZWJ precedes a mark
KSHA = f"क्{ZWJ}ष"  # Devanagari half form of ka before ssa


def test_joiners_between_word_characters_stay_inside_the_word():
    assert tokenize(f"من {MI_KHAHAM} {KETAB_HA} را") == ["من", MI_KHAHAM, KETAB_HA, "را"]
    assert tokenize(f"{SRI} ලංකාව") == [SRI, "ලංකාව"]
    assert tokenize(f"{RAB} {KSHA}") == [RAB, KSHA]
    assert tokenize(f"a{ZWNJ}{ZWJ}b") == [f"a{ZWNJ}{ZWJ}b"]  # a run of joiners
    # A joiner that no word character or mark follows is not part of the word: it separates.
    assert tokenize(f"کتاب{ZWNJ} ها") == ["کتاب", "ها"]
    assert tokenize(f"{ZWNJ}ab{ZWJ}") == ["ab"]
    assert tokenize(f"അവന്{ZWJ} വന്നു") == ["അവന്", "വന്നു"]  # a legacy chillu at the word's end
    # Emoji sequences join pictographs, which are not word characters.
    assert tokenize(f"👨{ZWJ}👩{ZWJ}👧 family a{ZWJ}😀") == ["family", "a"]
    # Joiners and apostrophes: each must sit between word characters.
    assert tokenize(f"a{ZWNJ}'b a'{ZWNJ}b") == ["a", "b", "a", "b"]
    # U+200B ZERO WIDTH SPACE marks a word boundary (Thai, Khmer): it still separates.
    assert tokenize("a\u200bb") == ["a", "b"]


def test_soft_hyphens_and_word_joiners_are_dropped():
    assert tokenize(f"Infor{SHY}mation in{WJ}for{BOM}mation") == ["information", "information"]
    assert tokenize(f"{BOM}don{SHY}'t don'{SHY}t") == ["don't", "don't"]
    assert tokenize(f"a {SHY} b{SHY}") == ["a", "b"]
    assert tokenize(f"{SHY}\u0301a") == ["a"]  # still no word before the mark once SHY is gone
    assert tokenize(f"می{SHY}{ZWNJ}{WJ}خواهم") == [MI_KHAHAM]


@pytest.fixture
def persian(write):
    return read_lexicon(
        write(
            "fa.csv",
            f"""
            term,category
            {MI_KHAHAM},want
            خواهم,will
            {KETAB_HA},book
            کتاب,book
            می{ZWNJ}*,continuous
            {SRI},honorific
            {RAB},org
            infor{SHY}mation,info
            """,
        )
    )


def test_a_lexicon_term_with_a_joiner_matches_it(persian):
    # Entries keep their joiners; no entry is refused as "not words".
    assert [e.text for e in persian.entries] == [
        MI_KHAHAM,
        "خواهم",
        KETAB_HA,
        "کتاب",
        f"می{ZWNJ}*",
        SRI,
        RAB,
        "information",
    ]
    assert persian.warnings == []
    texts = [
        f"من {MI_KHAHAM} {KETAB_HA} را می{ZWNJ}خوانم",  # I want to read the books
        "من می خواهم",  # a space where the ZWNJ belongs: two words, so می‌خواهم does not match
        "میخواهم",  # written joined: another word
        f"میز و می{ZWNJ}روم",  # 'table' is not می‌*, 'I am going' is
        f"{SRI} ලංකාව {RAB}",
        f"Infor{SHY}mation, information",
    ]
    out = both(persian, texts, window=2, words=("نه",))
    assert out["n_tokens"].tolist() == [5, 3, 1, 3, 3, 2]
    assert out["count_want"].tolist() == [1, 0, 0, 0, 0, 0]
    assert out["count_will"].tolist() == [0, 1, 0, 0, 0, 0]  # only the spaced form has the bare word
    assert out["count_book"].tolist() == [1, 0, 0, 0, 0, 0]  # کتاب‌ها is one word, counted once
    assert out["count_continuous"].tolist() == [1, 0, 0, 1, 0, 0]
    assert out["count_honorific"].tolist() == [0, 0, 0, 0, 1, 0]
    assert out["count_org"].tolist() == [0, 0, 0, 0, 1, 0]
    assert out["count_info"].tolist() == [0, 0, 0, 0, 0, 2]


def test_a_lexicon_with_joiners_reads_back_the_same(persian, tmp_path):
    write_lexicon_csv(persian, tmp_path / "out.csv")
    again = read_lexicon(tmp_path / "out.csv")
    # Rows are written category by category, so compare the entries as a mapping.
    assert {(e.tokens, e.wildcard): e.weights for e in again.entries} == {
        (e.tokens, e.wildcard): e.weights for e in persian.entries
    }


PIECES = ["a", "b", "E", "ک", "ت", "ا", "ب", "ی", "क", "ष", "ශ", "ර", "1", "_"]
MARKS = ["\u094d", "\u0dca", "\u0dd3", "\u064e", "\u0301"]
INVISIBLE = [ZWNJ, ZWJ, SHY, WJ, BOM]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.lists(
            st.sampled_from([*PIECES, *MARKS, *INVISIBLE, " ", "'", "’", "-", "😀", "\u200b"]), max_size=40
        ),
        min_size=1,
        max_size=4,
    ),
    st.lists(
        st.lists(st.sampled_from([*PIECES, *MARKS, *INVISIBLE, " "]), min_size=1, max_size=5),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from([0, 2]),
)
def test_compiled_scorer_equals_the_reference_with_joiners(texts, terms, window):
    # Wildcards as the reader reads 'term*': a joiner before the '*' stays in the prefix.
    lexicon = one_category_lexicon(["".join(pieces) for pieces in terms], name="joiners")
    documents = ["".join(t) for t in texts]
    documents += [unicodedata.normalize("NFD", d) for d in documents]
    both(lexicon, documents, window=window, words=("a", f"a{ZWNJ}b"))
    assert LexiconScorer(lexicon).score(documents).n_tokens.tolist() == [len(tokenize(d)) for d in documents]
