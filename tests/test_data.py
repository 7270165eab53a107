"""Bad gold input gets a clear error naming file, row, id and column; nothing is dropped silently."""

from __future__ import annotations

import polars as pl
import pytest

from scalecode.config import GoldConfig, TableConfig
from scalecode.data import inspect_corpus, load_gold, read_table
from scalecode.errors import DataError
from scalecode.readers import BUILTIN_READERS, find_invalid_utf8
from scalecode.task import Task, TaskType

READERS = list(BUILTIN_READERS)
CLASSIFY = Task(type=TaskType.CLASSIFICATION, labels=["pos", "neg"])
MULTI = Task(type=TaskType.MULTILABEL, labels=["economy", "health", "security"])
SCORE = Task(type=TaskType.REGRESSION, scale={"min": -4, "max": 4})


def gold(path, task=CLASSIFY, **kwargs):
    return load_gold(GoldConfig(path=str(path), **kwargs), task, READERS)


def failure(path, task=CLASSIFY, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        gold(path, task, **kwargs)
    message = str(info.value)
    assert str(path) in message
    return message


def test_reads_csv_tsv_jsonl_parquet_alike(tmp_path):
    frame = pl.DataFrame({"id": ["a", "b"], "text": ['good, "quoted"', "bad\ttab"], "label": ["pos", "neg"]})
    frame.write_csv(tmp_path / "g.csv")
    frame.write_ndjson(tmp_path / "g.jsonl")
    frame.write_parquet(tmp_path / "g.parquet")
    (tmp_path / "g.tsv").write_text('id\ttext\tlabel\na\tgood, "quoted"\tpos\nb\tbad\tneg\n')
    for name in ("g.csv", "g.jsonl", "g.parquet", "g.tsv"):
        result = gold(tmp_path / name)
        assert result.ids == ["a", "b"]
        assert result.targets == ["pos", "neg"]
        assert result.texts[0] == 'good, "quoted"'


def test_numeric_ids_become_strings_and_keep_leading_zeros(tmp_path):
    (tmp_path / "g.csv").write_text("id,text,label\n007,good,pos\n8,bad,neg\n")
    assert gold(tmp_path / "g.csv").ids == ["007", "8"]


def test_custom_column_names(tmp_path):
    (tmp_path / "g.csv").write_text("doc,body,code\n1,good,pos\n")
    result = gold(tmp_path / "g.csv", id_column="doc", text_column="body", label_column="code")
    assert result.targets == ["pos"]


def test_missing_column_names_the_key_and_lists_columns(tmp_path):
    (tmp_path / "g.csv").write_text("id,body,label\n1,good,pos\n")
    message = failure(tmp_path / "g.csv")
    assert "'text' (data.gold.text_column) not found" in message
    assert "the columns are: id, body, label" in message


def test_null_and_empty_text_name_rows_and_ids(tmp_path):
    pl.DataFrame({"id": ["a", "b", "c"], "text": ["good", None, "   "], "label": ["pos"] * 3}).write_parquet(
        tmp_path / "g.parquet"
    )
    message = failure(tmp_path / "g.parquet")
    assert "null or empty text" in message
    assert "row 2 (id 'b')" in message
    assert "row 3 (id 'c')" in message


def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    rows = b'{"id": "a", "text": "good", "label": "pos"}\n{"id": "b", "text": "bad", "label": "neg"}\n'
    (tmp_path / "g.jsonl").write_bytes(b"\xef\xbb\xbf" + rows)
    (tmp_path / "g.csv").write_bytes(b"\xef\xbb\xbfid,text,label\na,good,pos\nb,bad,neg\n")
    for name in ("g.jsonl", "g.csv"):
        assert gold(tmp_path / name).ids == ["a", "b"]


def test_a_jsonl_line_that_is_not_an_object_is_named(tmp_path):
    good = '{"id": "a", "text": "good", "label": "pos"}\n'
    (tmp_path / "g.jsonl").write_text(good + '{"id": "b", "text": oops}\n')
    assert "line 2: not JSON" in failure(tmp_path / "g.jsonl")
    (tmp_path / "g.jsonl").write_text(good + "\n[1, 2, 3]\n")
    assert "line 3: not a JSON object: '[1, 2, 3]'" in failure(tmp_path / "g.jsonl")


def test_duplicate_ids_are_named(tmp_path):
    (tmp_path / "g.csv").write_text("id,text,label\nx,good,pos\ny,bad,neg\nx,also,neg\n")
    message = failure(tmp_path / "g.csv")
    assert "1 duplicate id(s)" in message
    assert "'x'" in message


def test_null_or_blank_id(tmp_path):
    pl.DataFrame({"id": ["a", None], "text": ["t", "u"], "label": ["pos", "neg"]}).write_parquet(
        tmp_path / "g.parquet"
    )
    assert "null or empty id in column 'id' at row 2" in failure(tmp_path / "g.parquet")
    (tmp_path / "g.jsonl").write_text(
        '{"id": "a", "text": "t", "label": "pos"}\n{"id": " ", "text": "u", "label": "neg"}\n'
    )
    assert "null or empty id in column 'id' at row 2" in failure(tmp_path / "g.jsonl")


def test_undecodable_bytes_name_the_line(tmp_path):
    path = tmp_path / "g.csv"
    path.write_bytes(b"id,text,label\n1,good,pos\n2,caf\xe9 au lait,neg\n")
    message = failure(path)
    assert "line 3" in message
    assert "not UTF-8" in message
    assert find_invalid_utf8(path)[0] == 3


def test_declared_encoding_is_decoded(tmp_path):
    path = tmp_path / "g.csv"
    path.write_bytes("id,text,label\n1,café au lait,pos\n".encode("latin-1"))
    assert gold(path, encoding="latin-1").texts == ["café au lait"]


def test_label_not_in_codebook(tmp_path):
    (tmp_path / "g.csv").write_text("id,text,label\n1,good,pos\n2,meh,neutral\n")
    message = failure(tmp_path / "g.csv")
    assert "'neutral'" in message
    assert "not in the codebook (pos, neg)" in message
    assert "row 2 (id '2')" in message


def test_missing_code(tmp_path):
    pl.DataFrame({"id": ["a", "b"], "text": ["t", "u"], "label": ["pos", None]}).write_parquet(
        tmp_path / "g.parquet"
    )
    assert "no code in column 'label' at row 2 (id 'b')" in failure(tmp_path / "g.parquet")


def test_score_that_is_not_a_number(tmp_path):
    (tmp_path / "g.csv").write_text("id,text,score\n1,good,1.5\n2,bad,very bad\n3,ok,nan\n")
    message = failure(tmp_path / "g.csv", SCORE, label_column="score")
    assert "not a finite number" in message
    assert "row 2 (id '2'): 'very bad'" in message
    assert "row 3 (id '3'): 'nan'" in message


def test_score_outside_the_scale(tmp_path):
    (tmp_path / "g.csv").write_text("id,text,score\n1,good,1.5\n2,bad,-9\n")
    assert "outside the task's scale [-4.0, 4.0] at row 2" in failure(
        tmp_path / "g.csv", SCORE, label_column="score"
    )


def test_scores_are_read_exactly(tmp_path):
    (tmp_path / "g.csv").write_text("id,text,score\n1,good, 1.5\n2,bad,-2\n")
    assert gold(tmp_path / "g.csv", SCORE, label_column="score").targets == [1.5, -2.0]


def test_multilabel_from_separated_strings_and_lists(tmp_path):
    (tmp_path / "g.csv").write_text("id,text,label\n1,a,economy;health\n2,b,\n3,c,security\n")
    with pytest.raises(DataError, match="no code"):
        gold(tmp_path / "g.csv", MULTI, label_separator=";")
    (tmp_path / "g.csv").write_text("id,text,label\n1,a,economy;health\n3,c,security\n")
    assert gold(tmp_path / "g.csv", MULTI, label_separator=";").targets == [
        ("economy", "health"),
        ("security",),
    ]
    with pytest.raises(DataError, match="label_separator"):
        gold(tmp_path / "g.csv", MULTI)
    pl.DataFrame({"id": ["1"], "text": ["a"], "label": [["health", "sports"]]}).write_parquet(
        tmp_path / "m.parquet"
    )
    assert "'sports'" in failure(tmp_path / "m.parquet", MULTI)


def test_group_column(tmp_path):
    (tmp_path / "g.csv").write_text("id,text,label,speech\n1,a,pos,s1\n2,b,neg,\n")
    assert "null group in column 'speech' at row 2" in failure(tmp_path / "g.csv", group_column="speech")


def test_a_folder_of_files_is_one_table_and_errors_name_the_file(tmp_path):
    folder = tmp_path / "gold"
    folder.mkdir()
    (folder / "a.csv").write_text("id,text,label\n1,good,pos\n")
    (folder / "b.csv").write_text("id,text,label\n2,bad,neg\n3,,neg\n")
    with pytest.raises(DataError, match=r"b\.csv row 2 \(id '3'\)"):
        gold(folder)
    (folder / "b.csv").write_text("id,text,label\n2,bad,neg\n")
    assert gold(folder).ids == ["1", "2"]


def test_unknown_format(tmp_path):
    (tmp_path / "g.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"unknown file type '\.xlsx'"):
        read_table(TableConfig(path=str(tmp_path / "g.xlsx")), READERS)


def test_corpus_inspection_checks_columns_and_duplicates_without_reading_texts(tmp_path):
    pl.DataFrame({"id": [1, 2, 2], "text": ["a", "b", "c"]}).write_parquet(tmp_path / "c.parquet")
    with pytest.raises(DataError, match="duplicate id"):
        inspect_corpus(TableConfig(path=str(tmp_path / "c.parquet")), READERS)
    pl.DataFrame({"id": [1, 2], "body": ["a", "b"]}).write_parquet(tmp_path / "c.parquet")
    with pytest.raises(DataError, match=r"data\.corpus\.text_column"):
        inspect_corpus(TableConfig(path=str(tmp_path / "c.parquet")), READERS)
    pl.DataFrame({"id": [1, 2], "text": ["a", None]}).write_parquet(tmp_path / "c.parquet")
    assert inspect_corpus(TableConfig(path=str(tmp_path / "c.parquet")), READERS).n_documents == 2


def test_where_and_sample_select_gold_rows_before_the_checks(tmp_path):
    rows = ["id,text,label,party"] + [
        f"{i},text {i},{'pos' if i % 2 else 'neg'},{'D' if i < 8 else 'W'}" for i in range(10)
    ]
    rows.append("10,,pos,W")  # an empty text outside the selection is not an error
    (tmp_path / "g.csv").write_text("\n".join(rows) + "\n")
    kept = gold(tmp_path / "g.csv", where="party = 'D'")
    assert kept.ids == [str(i) for i in range(8)]
    sampled = gold(tmp_path / "g.csv", where="party = 'D'", sample=5, sample_seed=1)
    assert len(sampled.ids) == 5 and set(sampled.ids) < set(kept.ids)
    assert sampled.ids == sorted(sampled.ids, key=int)  # file order is kept
    assert gold(tmp_path / "g.csv", where="party = 'D'", sample=5, sample_seed=1).ids == sampled.ids
    assert gold(tmp_path / "g.csv", where="party = 'D'", sample=5, sample_seed=2).ids != sampled.ids
    assert "no row satisfies data.gold.where" in failure(tmp_path / "g.csv", where="party = 'R'")
    assert "cannot be applied" in failure(tmp_path / "g.csv", where="colour = 'red'")


def test_where_must_be_sql():
    with pytest.raises(ValueError, match="not a SQL condition"):
        GoldConfig(path="g.csv", where="party ==== 'D' AND")
