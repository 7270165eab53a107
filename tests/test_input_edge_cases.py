"""Ids as gold and corpus files give them: numbers that are whole stay whole, bad bytes and missing ids
are named by file, row and column, and rows are counted alike whatever else is wrong in the file."""

from __future__ import annotations

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalecode.config import GoldConfig, TableConfig
from scalecode.data import inspect_corpus, load_gold
from scalecode.errors import DataError
from scalecode.readers import BUILTIN_READERS, Reader
from scalecode.sources import Piece, list_sources, read_piece
from scalecode.task import Task, TaskType

READERS = list(BUILTIN_READERS)
CLASSIFY = Task(type=TaskType.CLASSIFICATION, labels=["pos", "neg"])


def gold_ids(path, **kwargs) -> list[str]:
    return load_gold(GoldConfig(path=str(path), **kwargs), CLASSIFY, READERS, texts=False).ids


def gold_failure(path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        gold_ids(path, **kwargs)
    assert str(path) in str(info.value)
    return str(info.value)


def corpus_rows(path, readers=READERS, chunk_rows=100, **kwargs) -> pl.DataFrame:
    """Every row of a corpus as the coding tasks read it, after the driver's checks passed."""
    table = TableConfig(path=str(path), **kwargs)
    inspect_corpus(table, readers)
    chunks = [
        pl.from_arrow(chunk)
        for source in list_sources(table, readers)
        for chunk in read_piece(Piece(source), table, readers, chunk_rows)
    ]
    return pl.concat(chunks)


def corpus_failure(path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        inspect_corpus(TableConfig(path=str(path), **kwargs), READERS)
    return str(info.value)


def jsonl(path, ids, extra: str = "") -> None:
    path.write_text("".join(f'{{"id": {i}, "text": "t", "label": "pos"}}\n' for i in ids) + extra)


# 1. Ids that are numbers -----------------------------------------------------------------------


def test_whole_float_ids_keep_their_integer_form_in_gold_and_corpus(tmp_path):
    pl.DataFrame({"id": [1.0, 2.0, 1.5], "text": ["a", "b", "c"], "label": ["pos"] * 3}).write_parquet(
        tmp_path / "f.parquet"
    )
    jsonl(tmp_path / "f.jsonl", ["1", "2", "1.5"])  # one float makes the whole column float
    for name in ("f.parquet", "f.jsonl"):
        assert gold_ids(tmp_path / name) == ["1", "2", "1.5"], name
        assert corpus_rows(tmp_path / name)["id"].to_list() == ["1", "2", "1.5"], name


def test_csv_ids_stay_as_written(tmp_path):
    # CSV has no number types: "1.0" is what the file says, and another id than "1".
    (tmp_path / "g.csv").write_text("id,text,label\n1,a,pos\n1.5,b,pos\n1.0,c,pos\n007,d,pos\n")
    assert gold_ids(tmp_path / "g.csv") == ["1", "1.5", "1.0", "007"]
    assert corpus_rows(tmp_path / "g.csv")["id"].to_list() == ["1", "1.5", "1.0", "007"]


def test_large_and_small_float_ids_are_written_out_alike_in_gold_and_corpus(tmp_path):
    values = ["123456789012.0", "1e20", "1e-7", "-2.5"]
    expected = ["123456789012", "100000000000000000000", "0.0000001", "-2.5"]
    pl.DataFrame({"id": [float(v) for v in values], "text": ["t"] * 4, "label": ["pos"] * 4}).write_parquet(
        tmp_path / "f.parquet"
    )
    jsonl(tmp_path / "f.jsonl", values)
    for name in ("f.parquet", "f.jsonl"):
        assert gold_ids(tmp_path / name) == expected, name
        assert corpus_rows(tmp_path / name)["id"].to_list() == expected, name


def test_jsonl_corpus_ids_do_not_depend_on_a_corrupt_line_nearby(tmp_path):
    # A block with a malformed line is parsed line by line: its ids must read as in any other block.
    values = ["1.0", "2.5", "1e20", "true", '"x"', "12345678901234567890123"]
    jsonl(tmp_path / "clean.jsonl", values)
    jsonl(tmp_path / "broken.jsonl", values, extra="oops\n")
    clean = corpus_rows(tmp_path / "clean.jsonl")["id"].to_list()
    broken = corpus_rows(tmp_path / "broken.jsonl")["id"].to_list()
    assert clean == ["1", "2.5", "100000000000000000000", "true", "x", "12345678901234567890123"]
    assert broken == [*clean, "broken.jsonl:row 7"]


def test_ids_that_read_alike_after_conversion_are_duplicates_naming_file_and_rows(tmp_path):
    jsonl(tmp_path / "g.jsonl", ["1", "2", "1.0"])
    message = gold_failure(tmp_path / "g.jsonl")
    assert "1 duplicate id(s) in column 'id': '1' (row 1, row 3)" in message
    message = corpus_failure(tmp_path / "g.jsonl")
    assert "1 duplicate id(s) in column 'id': '1' (g.jsonl row 1, g.jsonl row 3)" in message

    # Across the files of a folder: text "1" in one, the float 1.0 in another.
    folder = tmp_path / "gold"
    folder.mkdir()
    (folder / "a.csv").write_text("id,text,label\n1,a,pos\n")
    pl.DataFrame({"id": [2.5, 1.0], "text": ["b", "c"], "label": ["pos", "neg"]}).write_parquet(
        folder / "b.parquet"
    )
    message = gold_failure(folder)
    assert "duplicate id(s) in column 'id': '1' (a.csv row 1, b.parquet row 2)" in message
    message = corpus_failure(folder)
    assert "'1' (a.csv row 1, b.parquet row 2)" in message


def test_a_nan_id_is_a_missing_id(tmp_path):
    pl.DataFrame({"id": [1.0, float("nan")], "text": ["a", "b"], "label": ["pos", "neg"]}).write_parquet(
        tmp_path / "f.parquet"
    )
    assert "null or empty id in column 'id' at row 2" in gold_failure(tmp_path / "f.parquet")
    assert "null or empty id in column 'id' at row 2" in corpus_failure(tmp_path / "f.parquet")


def test_a_where_condition_on_whole_float_ids_still_compares_numbers(tmp_path):
    pl.DataFrame({"id": [1.0, 2.0, 30.0], "text": ["a", "b", "c"], "label": ["pos"] * 3}).write_parquet(
        tmp_path / "f.parquet"
    )
    assert gold_ids(tmp_path / "f.parquet", where="id < 5") == ["1", "2"]


def test_ids_from_a_plugin_format_follow_the_same_rule(tmp_path):
    def read(path, encoding):
        return pl.DataFrame({"id": [1.0, 2.5], "text": ["a", "b"]})

    readers = [*READERS, Reader("floaty", (".floaty",), read)]
    (tmp_path / "c.floaty").write_text("")
    assert corpus_rows(tmp_path / "c.floaty", readers)["id"].to_list() == ["1", "2.5"]


# 2. Bytes that are not UTF-8 in an id ------------------------------------------------------------


ADVICE = "convert the file to UTF-8 or set 'encoding:'"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("c.csv", b"doc,text\n1,a\n2\xe9,b\n3,c\n"),
        ("c.tsv", b"doc\ttext\n1\ta\n2\xe9\tb\n3\tc\n"),
        ("c.jsonl", b'{"doc": "1", "text": "a"}\n{"doc": "2\xe9", "text": "b"}\n{"doc": "3", "text": "c"}\n'),
    ],
)
def test_an_undecodable_id_in_the_corpus_names_file_row_and_column(tmp_path, name, content):
    (tmp_path / name).write_bytes(content)
    message = corpus_failure(tmp_path / name, id_column="doc")
    assert message.startswith(f"{tmp_path / name}: ")
    assert "undecodable bytes b'2\\xe9' (not UTF-8) in column 'doc' at row 2" in message
    assert ADVICE in message


def test_an_undecodable_id_after_a_skipped_csv_row_names_its_own_row(tmp_path):
    (tmp_path / "c.csv").write_bytes(b"id,text\n1,a\n2,b,surplus\n3\xff,c\n")
    assert "in column 'id' at row 3" in corpus_failure(tmp_path / "c.csv")


def test_an_undecodable_id_in_a_gold_file_names_its_line(tmp_path):
    (tmp_path / "g.csv").write_bytes(b"id,text,label\n1,a,pos\n2\xe9,b,pos\n")
    message = gold_failure(tmp_path / "g.csv")
    assert "line 3" in message and "not UTF-8" in message


def test_undecodable_text_stays_an_error_row_and_jsonl_says_which_field(tmp_path):
    (tmp_path / "c.csv").write_bytes(b"id,text\n1,a\n2,caf\xe9\n")
    assert corpus_rows(tmp_path / "c.csv")["id"].to_list() == ["1", "2"]  # decoded, and refused, per row
    (tmp_path / "c.jsonl").write_bytes(b'{"id": "1", "text": "a"}\n{"id": "2", "text": "caf\xe9"}\n')
    rows = corpus_rows(tmp_path / "c.jsonl")
    assert rows["id"].to_list() == ["1", "c.jsonl:row 2"]
    assert rows["corrupt"][1] == "corrupt row: undecodable bytes (not UTF-8) in column 'text'"


# 3. Where a missing id is ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["csv", "jsonl", "parquet"])
def test_a_missing_gold_id_is_named_by_its_data_row(tmp_path, suffix):
    frame = pl.DataFrame({"id": ["a", None, "c"], "text": ["t", "u", "v"], "label": ["pos"] * 3})
    path = tmp_path / f"g.{suffix}"
    getattr(frame, f"write_{'ndjson' if suffix == 'jsonl' else suffix}")(path)
    assert "null or empty id in column 'id' at row 2" in gold_failure(path)


@pytest.mark.parametrize("suffix", ["csv", "tsv"])
def test_a_missing_corpus_id_after_a_skipped_row_is_named_by_its_own_row(tmp_path, suffix):
    sep = "," if suffix == "csv" else "\t"
    path = tmp_path / f"c.{suffix}"
    path.write_text(
        sep.join(["id", "text"])
        + "\n"
        + "".join(sep.join(fields) + "\n" for fields in (["1", "a"], ["2", "b", "surplus"], ["", "c"]))
    )
    assert "null or empty id in column 'id' at row 3" in corpus_failure(path)


def test_a_duplicate_corpus_id_after_a_skipped_row_is_named_by_its_own_row(tmp_path):
    (tmp_path / "c.csv").write_text('id,text\n1,a\n2,b,surplus\n3,"two\nlines"\n1,d\n')
    assert "'1' (c.csv row 1, c.csv row 4)" in corpus_failure(tmp_path / "c.csv")


def test_skipped_csv_rows_keep_their_place_in_the_row_numbers(tmp_path):
    # Some 3 MB: the parser reads it in several blocks, and bad rows fall in each, and last.
    bad = sorted({3, 4, 11_999, *range(500, 12_000, 997)})
    lines = [f"{i},{'word ' * 50}" + (",surplus" if i in bad else "") for i in range(12_000)]
    (tmp_path / "c.csv").write_text("id,text\n" + "\n".join(lines) + "\n")
    rows = corpus_rows(tmp_path / "c.csv", chunk_rows=1000)
    assert sorted(rows["row"].to_list()) == list(range(12_000))
    by_row = dict(zip(rows["row"].to_list(), rows["id"].to_list(), strict=True))
    names = {row: f"c.csv:invalid row {n}" for n, row in enumerate(bad, start=1)}
    assert by_row == {i: names.get(i, str(i)) for i in range(12_000)}


def test_a_missing_corpus_id_in_jsonl_and_parquet_is_named_by_its_row(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"id": "1", "text": "a"}\n\noops\n{"text": "c"}\n')
    # Row 4: lines are counted as the file has them, the blank one too (as the gold reader counts).
    assert "null or empty id in column 'id' at row 4" in corpus_failure(tmp_path / "c.jsonl")
    table = pa.table({"id": ["1", "2", "3", None], "text": ["a", "b", "c", "d"]})
    pq.write_table(table, tmp_path / "c.parquet", row_group_size=2)
    assert "null or empty id in column 'id' at row 4" in corpus_failure(tmp_path / "c.parquet")


def test_a_file_of_bad_rows_only_is_still_read_in_chunks(tmp_path):
    (tmp_path / "c.csv").write_text("id,text\n" + "".join(f"{i},x,surplus\n" for i in range(50)))
    table = TableConfig(path=str(tmp_path / "c.csv"))
    (source,) = list_sources(table, READERS)
    chunks = list(read_piece(Piece(source), table, READERS, 10))
    assert [len(chunk) for chunk in chunks] == [10] * 5
    assert [row for chunk in chunks for row in chunk.column("row").to_pylist()] == list(range(50))
