"""A UTF-16 or UTF-32 corpus file that grows while it is read is read as a UTF-8 one: as far as it was
listed, in whole lines of its text, the rest left for the next run.

Its lines end at newlines of its text, not at bytes: 'Ċ' (U+010A) is the bytes 0a 01 in UTF-16-LE and
01 0a in UTF-16-BE, and a UTF-16 newline is two bytes, 0a 00 or 00 0a. Cut at a newline's byte, a
file used to end inside a character (the run stopped on 'truncated data') or inside a line (a
spurious malformed row, under an id the document never had).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from scalecode.backend import Resources
from scalecode.config import TableConfig
from scalecode.corpus import CorpusSummary, code_corpus, doc_hashes
from scalecode.data import inspect_corpus
from scalecode.inference import DOC_HASH, BackendSpec
from scalecode.readers import BUILTIN_READERS
from scalecode.sources import CORRUPT, ID, TEXT, Piece, list_sources, read_piece

ENCODINGS = ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be"]
FORMATS = ["jsonl", "csv"]


def text(i: int) -> str:
    """Document ``i``'s text: a character with a newline's byte, and one of two UTF-16 code units."""
    return f"Ċ document {i} 😀 in full"


def line(fmt: str, i: int) -> str:
    return f'{{"id": "d{i}", "text": "{text(i)}"}}\n' if fmt == "jsonl" else f"d{i},{text(i)}\n"


def content(fmt: str, n: int) -> str:
    return ("id,text\n" if fmt == "csv" else "") + "".join(line(fmt, i) for i in range(n))


def inside(encoding: str, fmt: str, i: int, char: str) -> int:
    """A byte offset in the middle of ``char`` in line ``i`` of ``content`` encoded: one byte into
    it, so that neither its code unit nor its line is whole there."""
    prefix = content(fmt, i) + line(fmt, i)[: line(fmt, i).index(char)]
    return len(prefix.encode(encoding)) + 1


def grown(
    path: Path, fmt: str, encoding: str, listed: int, now: int
) -> list[tuple[str, str | None, str | None]]:
    """(id, text, why corrupt) of each row read from a file that was ``listed`` bytes of ``content``
    when listed and is ``now`` bytes of it when read."""
    whole = content(fmt, 6).encode(encoding)
    path.write_bytes(whole[:listed])
    table = TableConfig(path=str(path), encoding=encoding)
    (source,) = list_sources(table, BUILTIN_READERS)
    with path.open("ab") as handle:  # a collector writes on between the listing and the reading
        handle.write(whole[listed:now])
    chunks = read_piece(Piece(source), table, BUILTIN_READERS, 100)
    rows = pl.concat([pl.from_arrow(c) for c in chunks]).with_columns(pl.col(TEXT).cast(pl.String))
    return list(rows.select(ID, TEXT, CORRUPT).iter_rows())


def documents(n: int) -> list[tuple[str, str | None, str | None]]:
    return [(f"d{i}", text(i), None) for i in range(n)]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_file_appended_to_after_listing_is_read_as_listed_in_whole_lines(tmp_path, encoding, fmt):
    path = tmp_path / f"docs.{fmt}"
    listed = len(content(fmt, 3).encode(encoding))
    # Appended since: a whole line, and the next one to the middle of a character.
    now = inside(encoding, fmt, 4, "😀")
    assert grown(path, fmt, encoding, listed, now) == documents(3)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("char", ["Ċ", "😀"])
def test_a_line_listed_half_written_is_read_whole_once_finished_and_nothing_after_it(
    tmp_path, encoding, fmt, char
):
    """Listed inside a character of d3's line; read when that line and the start of d4's are written."""
    path = tmp_path / f"docs.{fmt}"
    listed = inside(encoding, fmt, 3, char)
    now = inside(encoding, fmt, 4, "Ċ")
    assert grown(path, fmt, encoding, listed, now) == documents(4)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_line_listed_half_written_and_still_unfinished_is_left_for_the_next_run(tmp_path, encoding, fmt):
    path = tmp_path / f"docs.{fmt}"
    listed = inside(encoding, fmt, 3, "Ċ")
    now = inside(encoding, fmt, 3, "😀")
    assert grown(path, fmt, encoding, listed, now) == documents(3)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_a_compressed_file_grown_by_a_member_is_read_as_listed_in_whole_lines(tmp_path, encoding):
    """The member listed ends inside a character of d3's line: that line is the next run's."""
    path = tmp_path / "docs.jsonl.gz"
    whole = content("jsonl", 6).encode(encoding)
    listed = inside(encoding, "jsonl", 3, "😀")
    path.write_bytes(gzip.compress(whole[:listed]))
    table = TableConfig(path=str(path), format="jsonl", encoding=encoding)
    (source,) = list_sources(table, BUILTIN_READERS)
    with path.open("ab") as handle:
        handle.write(gzip.compress(whole[listed:]))
    rows = pl.concat([pl.from_arrow(c) for c in read_piece(Piece(source), table, BUILTIN_READERS, 100)])
    assert list(rows.select(ID, TEXT, CORRUPT).iter_rows()) == documents(3)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_a_file_read_as_listed_still_refuses_a_character_cut_short(tmp_path, encoding):
    """Unchanged since it was listed, a file that ends inside a character is broken, not growing."""
    path = tmp_path / "docs.jsonl"
    whole = content("jsonl", 3).encode(encoding)
    path.write_bytes(whole[:-1])
    table = TableConfig(path=str(path), encoding=encoding)
    (source,) = list_sources(table, BUILTIN_READERS)
    with pytest.raises(UnicodeDecodeError):
        list(read_piece(Piece(source), table, BUILTIN_READERS, 100))


def hashes(n: int) -> list[int]:
    ids = pa.array([f"d{i}" for i in range(n)])
    found: list[int] = doc_hashes(ids, pa.array([text(i) for i in range(n)])).to_pylist()
    return found


def code(spec: BackendSpec, table: TableConfig, out: Path) -> CorpusSummary:
    info = inspect_corpus(table, BUILTIN_READERS)
    return code_corpus(spec, Resources(batch_size=4), table, info.files, info.n_documents, out)


@pytest.mark.usefixtures("ray_local")
def test_a_utf16_file_appended_to_during_a_run_is_coded_as_listed_and_the_rest_next_time(spec, tmp_path):
    corpus, out = tmp_path / "docs.jsonl", tmp_path / "out"
    whole = content("jsonl", 5).encode("utf-16")
    listed = len(content("jsonl", 3).encode("utf-16"))
    corpus.write_bytes(whole[:listed])
    table = TableConfig(path=str(corpus), encoding="utf-16")
    info = inspect_corpus(table, BUILTIN_READERS)
    with corpus.open("ab") as handle:  # a whole line, and the next to the middle of a character
        handle.write(whole[listed : inside("utf-16", "jsonl", 4, "😀")])

    first = code_corpus(spec, Resources(batch_size=4), table, info.files, info.n_documents, out)
    coded = pl.concat([pl.read_parquet(p) for p in out.glob("*.parquet")]).sort("id")
    assert (coded["id"].to_list(), coded[DOC_HASH].to_list()) == ([f"d{i}" for i in range(3)], hashes(3))
    assert (first.coded, first.errors) == (3, 0)

    corpus.write_bytes(whole)  # the collector finishes its line
    second = code(spec, table, out)
    coded = pl.concat([pl.read_parquet(p) for p in out.glob("*.parquet")]).sort("id")
    assert (coded["id"].to_list(), coded[DOC_HASH].to_list()) == ([f"d{i}" for i in range(5)], hashes(5))
    assert coded["error"].null_count() == coded.height  # no spurious malformed row
    assert (second.documents, second.coded, second.errors, second.already_coded) == (5, 2, 0, 3)
