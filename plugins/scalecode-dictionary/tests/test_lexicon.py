"""Lexicon formats people already have: LIWC .dic, quanteda YAML, CSV/TSV, VADER/AFINN .txt."""

from __future__ import annotations

import pytest

from scalecode_dictionary import LexiconError, read_lexicon, write_lexicon_csv


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
    assert any("no word characters" in w for w in lexicon.warnings)  # ':)'
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
