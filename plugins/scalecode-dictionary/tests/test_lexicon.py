"""Lexicon formats people already have: LIWC .dic, quanteda YAML, CSV/TSV, VADER/AFINN .txt."""

from __future__ import annotations

import pytest

from scalecode_dictionary import LexiconError, LexiconScorer, read_lexicon, write_lexicon_csv


def weights(lexicon):
    return {(e.text): dict(e.weights) for e in lexicon.entries}


def test_liwc_dic(write):
    path = write(
        "emo.dic",
        """
        %
        1	posemo
        2	negemo
        3	social
        %
        good	1
        hate*	2
        friend*	1	3
        kind of	1
        like	02 134/125(02 134)126	1
        """,
    )
    lexicon = read_lexicon(path)
    assert lexicon.categories == ["posemo", "negemo", "social"]
    assert weights(lexicon) == {
        "good": {"posemo": 1.0},
        "hate*": {"negemo": 1.0},
        "friend*": {"posemo": 1.0, "social": 1.0},
        "kind of": {"posemo": 1.0},
        "like": {"negemo": 1.0, "posemo": 1.0},  # 02 is category 2
    }
    assert lexicon.positive == ["posemo"] and lexicon.negative == ["negemo"]
    assert any("conditional" in w for w in lexicon.warnings)


def test_dic_with_undeclared_category_names_the_line(write):
    path = write("bad.dic", "%\n1\tpos\n%\ngood\t1\nbad\t9\n")
    with pytest.raises(LexiconError, match=r"bad\.dic:5: entry 'bad' uses category 9"):
        read_lexicon(path)


def test_quanteda_yaml_nested_and_weighted(write):
    path = write(
        "moral.yml",
        """
        care:
          virtue: [kind*, compassion]
          vice: [harm*, cruel]
        intensity:
          very: 1.5
          slightly: 0.5
        """,
    )
    lexicon = read_lexicon(path)
    assert lexicon.categories == ["care.virtue", "care.vice", "intensity"]
    assert weights(lexicon)["kind*"] == {"care.virtue": 1.0}
    assert weights(lexicon)["very"] == {"intensity": 1.5}
    assert lexicon.weighted == {"intensity"}


def test_cntext_yaml_with_prefix_matching(write):
    path = write(
        "lsd.yaml",
        """
        Name: LSD2015
        Category: [negative, positive, neg_positive, neg_negative]
        Dictionary:
          negative: [abandon, a lie]
          positive: [good]
          neg_positive: [not good]
          neg_negative: [not abandon]
        """,
    )
    lexicon = read_lexicon(path, prefix_match=True)
    assert all(e.wildcard for e in lexicon.entries)
    assert lexicon.positive == ["positive", "neg_negative"]
    assert lexicon.negative == ["negative", "neg_positive"]


def test_valence_tsv_like_vader_and_afinn(write):
    path = write(
        "vader.txt",
        "good\t1.9\t0.9\t[2, 2]\nbad\t-2.5\t0.5\t[-2]\n:)\t2.0\t0\t[2]\nGOOD\t1.0\t0\t[1]\nmeh\t0\t0\t[0]\n",
    )
    lexicon = read_lexicon(path)
    assert lexicon.categories == ["valence", "positive", "negative"]
    assert weights(lexicon)["good"] == {"valence": 1.9, "positive": 1.0}
    assert weights(lexicon)["bad"] == {"valence": -2.5, "negative": 1.0}
    assert weights(lexicon)["meh"] == {"valence": 0.0}
    assert lexicon.weighted == {"valence"}
    assert any("1 entries are not words" in w for w in lexicon.warnings)  # ":)"
    assert any("repeat an earlier entry" in w for w in lexicon.warnings)  # 'GOOD'


def test_csv_with_header_category_and_weight(write):
    path = write("mfd.csv", ",term,cat\n1,compassion,care.virtue\n2,civil rights,fairness.virtue\n")
    lexicon = read_lexicon(path)
    assert weights(lexicon)["civil rights"] == {"fairness.virtue": 1.0}
    weighted = read_lexicon(write("w.csv", "word,category,weight\ngood,tone,0.5\nbad,tone,-0.5\n"))
    assert weights(weighted)["bad"] == {"tone": -0.5} and weighted.weighted == {"tone"}


def test_csv_errors_name_line_and_value(write):
    with pytest.raises(LexiconError, match=r"w\.csv:3: weight 'lots' of 'bad' is not a number"):
        read_lexicon(write("w.csv", "term,weight\ngood,1\nbad,lots\n"))
    with pytest.raises(LexiconError, match="only a trailing"):
        read_lexicon(write("g.csv", "term,category\nab*cd,x\n"))
    with pytest.raises(LexiconError, match="cannot tell the format"):
        read_lexicon(write("x.xml", "<x/>"))
    with pytest.raises(LexiconError, match="not found"):
        read_lexicon("/nonexistent/lexicon.dic")


def test_written_lexicon_reads_back_the_same(write, tmp_path):
    lexicon = read_lexicon(
        write("w.csv", "word,category,weight\ngood,tone,0.5\nnot bad,tone,0.25\nabandon*,loss,1\n")
    )
    write_lexicon_csv(lexicon, tmp_path / "out.csv")
    again = read_lexicon(tmp_path / "out.csv")
    assert weights(again) == weights(lexicon)


@pytest.fixture(scope="module")
def real_lexicons(tmp_path_factory):
    """VADER and AFINN as published (fetched and sha256-checked), without the larger datasets."""
    from scalecode.datasets import fetch

    dest = tmp_path_factory.mktemp("lexicons")
    return {name: fetch(name, dest)[0] for name in ("vader-lexicon", "afinn-lexicon")}


def test_emoticons_with_letters_or_digits_are_not_words(write):
    emoticons = [":D", "=D", ":s", "3:(", "(-:0", "(8", ":p", "8-d", "x-d", "<3", "sweet<3", "j/k"]
    words = ["well-known", "can't stand", "self-confident", "abandon*", "xd", "o_o", "i"]
    lines = [f"{term}\t{1.0 if i % 2 else -1.0}\t0\t[1]" for i, term in enumerate(emoticons + words)]
    lexicon = read_lexicon(write("vader.txt", "\n".join(lines) + "\n"))
    assert set(weights(lexicon)) == {
        "well known",
        "can't stand",
        "self confident",
        "abandon*",
        "xd",
        "o_o",
        "i",
    }
    assert any(w.startswith(f"{len(emoticons)} entries are not words") for w in lexicon.warnings)


def test_real_vader_and_afinn_keep_words_and_drop_emoticons(real_lexicons):
    vader = read_lexicon(real_lexicons["vader-lexicon"])
    texts = set(weights(vader))
    # ':D' -> 'd', ':s' -> 's', '3:(' -> '3', '(-:0' -> '0', '(8' -> '8', ':p' -> 'p', ':c' -> 'c'...
    assert not texts & {"d", "s", "3", "0", "8", "p", "c", "o", "8 d", "x d"}
    assert {"good", "can't stand", "self confident", "cover up", "fed up", "lol", "xd"} <= texts
    assert any(w.startswith("258 entries are not words") for w in vader.warnings)

    afinn = read_lexicon(real_lexicons["afinn-lexicon"])
    assert len(afinn.entries) == 3382  # every AFINN term is words
    assert {"can't stand", "well being", "once in a lifetime", "does not work"} <= set(weights(afinn))
    assert not any("not words" in w for w in afinn.warnings)


def test_yaml_terms_stay_the_strings_written(write):
    path = write(
        "terms.yml",
        """
        no:
          - no
          - off
          - ~
          -
          - 010
          - 1_000
        yes: [yes, on, true, 2001-12-14, 0x1F]
        weighted:
          no: -1
          null: 0.5
          1e3: 2
        """,
    )
    lexicon = read_lexicon(path)
    assert lexicon.categories == ["no", "yes", "weighted"]
    by_text = weights(lexicon)
    assert by_text["no"] == {"no": 1.0, "weighted": -1.0}
    assert by_text["off"] == {"no": 1.0}
    assert by_text["010"] == by_text["1_000"] == {"no": 1.0}  # not the numbers 8 and 1000
    assert {"yes", "on", "true", "2001 12 14", "0x1f"} <= set(by_text)
    assert by_text["null"] == {"weighted": 0.5} and by_text["1e3"] == {"weighted": 2.0}
    assert "none" not in by_text and "false" not in by_text  # neither null nor a bool became a term
    assert lexicon.weighted == {"weighted"}


def test_headerless_term_category_and_weight_tables(write):
    two = read_lexicon(write("liwc.csv", "happy,posemo\nsad,negemo\nkind of,posemo\n"))
    assert weights(two) == {"happy": {"posemo": 1.0}, "sad": {"negemo": 1.0}, "kind of": {"posemo": 1.0}}
    assert two.weighted == set() and two.positive == ["posemo"]
    three = read_lexicon(write("tone.tsv", "happy\ttone\t0.5\nsad\ttone\t-0.5\n"))
    assert weights(three) == {"happy": {"tone": 0.5}, "sad": {"tone": -0.5}}
    assert three.weighted == {"tone"}
    with pytest.raises(LexiconError, match=r"w\.csv:2: weight 'lots' of 'sad' is not a number"):
        read_lexicon(write("w.csv", "happy,tone,1\nsad,tone,lots\n"))


def test_a_header_with_unknown_names_is_refused_not_read_as_a_category(write):
    """'lemma,polarity' over numbers would have made categories named 'polarity', '1.5' and '-2'."""
    with pytest.raises(LexiconError, match=r"h\.csv:1: the first row .* looks like a header"):
        read_lexicon(write("h.csv", "lemma,polarity\ngood,1.5\nbad,-2\n"))


def test_a_zero_association_flag_leaves_the_term_out_of_the_category(write):
    """NRC EmoLex lists every word for every emotion, with 1 where it belongs and 0 where not."""
    nrc = read_lexicon(write("nrc.tsv", "happy\tanger\t0\nhappy\tjoy\t1\nangry\tanger\t1\nangry\tjoy\t0\n"))
    assert weights(nrc) == {"happy": {"joy": 1.0}, "angry": {"anger": 1.0}}


def test_words_written_with_combining_marks_are_words(write):
    """Devanagari, Bengali and Thai vowel signs and Arabic harakat are marks, which \\w does not match."""
    terms = ["अच्छा", "खराब", "ভালো", "ไม่", "سَلام", "cafe\u0301"]
    lexicon = read_lexicon(write("marks.tsv", "".join(f"{t}\t1.0\n" for t in terms)))
    assert len(lexicon.entries) == len(terms)
    assert lexicon.warnings == []
    # Each is one token (the marks stay in their word), matching itself and nothing else.
    assert [e.tokens for e in lexicon.entries] == [(t,) for t in [*terms[:-1], "café"]]
    texts = [f"x {t} y" for t in terms] + ["अच्छ", "खरब", "ভল", "ไม", "سلام", "cafe"]
    scores = LexiconScorer(lexicon).score(texts)
    assert scores.n_tokens.tolist() == [3] * len(terms) + [1] * len(terms)
    assert scores.counts[:, lexicon.categories.index("valence")].tolist() == [1] * len(terms) + [0] * len(
        terms
    )


def test_columns_option_refuses_unknown_roles_and_is_named_in_errors(write):
    path = write("t.csv", "text,polarity\ngood,1\n")
    with pytest.raises(LexiconError, match=r"t\.csv: columns: unknown roles \['label'\]"):
        read_lexicon(path, columns={"term": "text", "label": "polarity"})
    with pytest.raises(LexiconError, match=r"set columns: \{term: \.\.\.\}"):
        read_lexicon(path, columns={"weight": "polarity"})
    assert weights(read_lexicon(path, columns={"term": "text"})) == {
        "good": {"valence": 1.0, "positive": 1.0}
    }


def test_a_file_that_is_not_utf8_names_the_line_and_offset(tmp_path):
    path = tmp_path / "latin.dic"
    path.write_bytes("%\n1\tposemo\n%\ncafé\t1\n".encode("latin-1"))
    with pytest.raises(
        LexiconError, match=r"latin\.dic:4: not utf-8 text: byte 0xe9 at offset 16 .*re-encode"
    ):
        read_lexicon(path)
    assert weights(read_lexicon(path, encoding="latin-1")) == {"café": {"posemo": 1.0}}
    with pytest.raises(LexiconError, match="unknown encoding 'klingon'"):
        read_lexicon(path, encoding="klingon")
