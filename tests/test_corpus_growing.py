"""A corpus that grows while it is coded, and shards that survive a crash and any depth of folders."""

from __future__ import annotations

import dataclasses
import gzip
import os
import stat
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalecode.backend import Resources
from scalecode.config import TableConfig
from scalecode.corpus import (
    CorpusSummary,
    ShardWriter,
    code_corpus,
    coded_index,
    doc_hashes,
    shard_name,
    uncoded_rows,
)
from scalecode.data import inspect_corpus
from scalecode.inference import DOC_HASH, PATH, BackendSpec
from scalecode.readers import BUILTIN_READERS
from scalecode.sources import ID, ROW, Piece, SourceFile, list_sources, read_piece, unfinished_line

# Three documents, then what a collector appends: one whole line and the start of the next.
LINES = {
    "jsonl": (
        "".join(f'{{"id": "d{i}", "text": "document {i} in full"}}\n' for i in range(3)),
        '{"id": "d3", "text": "document 3 in full"}\n{"id": "d4", "te',
        'xt": "document 4 in full"}\n',
    ),
    "csv": (
        "id,text\n" + "".join(f"d{i},document {i} in full\n" for i in range(3)),
        "d3,document 3 in full\nd4,docu",
        "ment 4 in full\n",
    ),
}


def code(spec: BackendSpec, table: TableConfig, out: Path) -> CorpusSummary:
    info = inspect_corpus(table, BUILTIN_READERS)
    return code_corpus(spec, Resources(batch_size=4), table, info.files, info.n_documents, out)


def whole(n: int) -> list[int]:
    """The hashes of the first ``n`` documents as written in full: shards keep the hash, not the text."""
    ids = pa.array([f"d{i}" for i in range(n)])
    hashes: list[int] = doc_hashes(ids, pa.array([f"document {i} in full" for i in range(n)])).to_pylist()
    return hashes


def rows(out: Path) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(p) for p in sorted(out.glob("*.parquet"))]).sort("id")


def assert_each_coded_once(out: Path, n: int) -> None:
    """Documents d0 .. d(n-1) each have one row in the output, coded from their whole text."""
    coded = rows(out)
    assert coded["id"].to_list() == [f"d{i}" for i in range(n)]  # each once, none lost
    assert coded[DOC_HASH].to_list() == whole(n)
    assert coded["error"].null_count() == coded.height


def read(table: TableConfig, files: Sequence[SourceFile]) -> list[str]:
    """The texts of the first file as a coding run reads them (CSV gives bytes, JSON Lines text)."""
    chunks = read_piece(Piece(files[0]), table, BUILTIN_READERS, 100)
    return [t if isinstance(t, str) else t.decode() for c in chunks for t in c.column("text").to_pylist()]


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_file_appended_to_during_a_run_is_coded_as_inspected_and_the_rest_next_time(spec, tmp_path, fmt):
    corpus, out = tmp_path / f"docs.{fmt}", tmp_path / "out"
    first, appended, rest = LINES[fmt]
    corpus.write_text(first)
    table = TableConfig(path=str(corpus))
    info = inspect_corpus(table, BUILTIN_READERS)
    with corpus.open("a") as handle:  # the collector writes between inspection and reading
        handle.write(appended)

    summary = code_corpus(spec, Resources(batch_size=4), table, info.files, info.n_documents, out)
    coded = rows(out)
    assert coded["id"].to_list() == ["d0", "d1", "d2"]  # what was inspected, no half line
    assert coded[DOC_HASH].to_list() == whole(3)  # texts not cut short
    assert coded["error"].null_count() == coded.height
    assert (summary.documents, summary.coded, summary.errors, summary.already_coded) == (3, 3, 0, 0)

    with corpus.open("a") as handle:  # the collector finishes its line
        handle.write(rest)
    again = code(spec, table, out)
    assert_each_coded_once(out, 5)
    assert (again.documents, again.coded, again.errors, again.already_coded) == (5, 2, 0, 3)


def test_a_last_line_without_a_newline_is_read_while_its_file_is_unchanged(tmp_path):
    corpus = tmp_path / "docs.csv"
    corpus.write_text("id,text\n1,one\n2,two")
    table = TableConfig(path=str(corpus))
    info = inspect_corpus(table, BUILTIN_READERS)
    assert info.n_documents == 2 and read(table, info.files) == ["one", "two"]


def test_a_line_listed_half_written_is_read_whole_once_finished_and_nothing_after_it(tmp_path):
    """A line listed half written and finished by the time it is read is read whole, as the one
    document it is, and nothing after it."""
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"id": 1, "text": "one"}\n{"id": 2, "text": "tw')
    table = TableConfig(path=str(corpus))
    info = inspect_corpus(table, BUILTIN_READERS)
    with corpus.open("a") as handle:
        handle.write('o"}\n{"id": 3, "text": "three"}\n')
    assert read(table, info.files) == ["one", "two"]

    unfinished = tmp_path / "still.csv"  # still unfinished when read: left for the next run
    unfinished.write_text("id,text\n1,one\n2,tw")
    table = TableConfig(path=str(unfinished))
    info = inspect_corpus(table, BUILTIN_READERS)
    with unfinished.open("a") as handle:
        handle.write("o and on")
    assert read(table, info.files) == ["one"]


@pytest.mark.usefixtures("ray_local")
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_line_half_written_before_the_file_was_listed_waits_for_the_next_run(spec, tmp_path, fmt):
    """A collector flushed part of a line and paused before the run listed its file: the fragment is
    no row yet (JSON cut short; a CSV quote open), so it is neither coded as a fragment nor made an
    error row under a made-up id, and the next run codes it whole, once, under its own id."""
    first, _, _ = LINES[fmt]
    fragment, rest = {
        "jsonl": ('{"id": "d3", "text": "document 3 in', ' full"}\n'),
        "csv": ('d3,"document 3 in', ' full"\n'),
    }[fmt]
    corpus, out = tmp_path / f"docs.{fmt}", tmp_path / "out"
    corpus.write_text(first + fragment)
    table = TableConfig(path=str(corpus))
    info = inspect_corpus(table, BUILTIN_READERS)
    assert info.unfinished == [corpus.name] and info.files[0].unfinished
    assert info.n_documents == 3  # as a run reads it: the fragment is no document yet
    assert read(table, info.files) == [f"document {i} in full" for i in range(3)]
    summary = code(spec, table, out)
    assert rows(out)["id"].to_list() == ["d0", "d1", "d2"]
    assert (summary.documents, summary.coded, summary.errors, summary.already_coded) == (3, 3, 0, 0)
    # Run again while it is still unfinished: nothing to code, nothing counted as coded that is not.
    idle = code(spec, table, out)
    assert (idle.documents, idle.coded, idle.already_coded) == (3, 0, 3)

    with corpus.open("a") as handle:
        handle.write(rest)
    assert inspect_corpus(table, BUILTIN_READERS).unfinished == []
    again = code(spec, table, out)
    assert_each_coded_once(out, 4)
    assert (again.documents, again.coded, again.errors, again.already_coded) == (4, 1, 0, 3)


@pytest.mark.usefixtures("ray_local")
def test_a_line_finished_between_inspection_and_reading_is_counted_as_coded_not_as_coded_before(
    spec, tmp_path
):
    first, _, _ = LINES["jsonl"]
    corpus, out = tmp_path / "docs.jsonl", tmp_path / "out"
    corpus.write_text(first + '{"id": "d3", "text": "document 3 in')
    table = TableConfig(path=str(corpus))
    info = inspect_corpus(table, BUILTIN_READERS)
    assert info.n_documents == 3
    with corpus.open("a") as handle:  # finished before the run reads it: read whole, in this run
        handle.write(' full"}\n')
    summary = code_corpus(spec, Resources(batch_size=4), table, info.files, info.n_documents, out)
    assert_each_coded_once(out, 4)
    assert (summary.documents, summary.coded, summary.errors, summary.already_coded) == (4, 4, 0, 0)


def test_only_the_bytes_listed_say_whether_the_last_line_is_unfinished(tmp_path):
    """A file that grew after it was listed, still without a newline: its listed last line opened a
    quote, whatever came after."""
    corpus = tmp_path / "docs.csv"
    corpus.write_text('id,text\nd0,zero\nd1,"line one')
    table = TableConfig(path=str(corpus))
    (listed,) = list_sources(table, BUILTIN_READERS)
    with corpus.open("a") as handle:
        handle.write(" more")
    assert unfinished_line(table, listed)
    with corpus.open("a") as handle:
        handle.write('\nline two"\nd2,two\n')
    as_read = read(table, [dataclasses.replace(listed, unfinished=True)])
    assert as_read == ["zero"]  # not "line one more\n", the fragment of its field


@pytest.mark.parametrize(
    ("last", "unfinished"),
    [
        (b'{"id": "d1", "text": "caf\xc3', True),  # cut in the middle of a character
        (b'{"id": "d1", "text": "caf\xe9"}', False),  # whole, with a byte that is not UTF-8: an error row
        (b'{"id": "d1", "text": "one"}', False),
    ],
    ids=["cut-in-a-character", "latin-1-byte", "whole"],
)
def test_a_json_line_is_unfinished_only_where_it_was_cut(tmp_path, last, unfinished):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_bytes(b'{"id": "d0", "text": "zero"}\n' + last)
    table = TableConfig(path=str(corpus))
    (listed,) = list_sources(table, BUILTIN_READERS)
    assert unfinished_line(table, listed) is unfinished


def test_a_csv_field_open_over_lines_when_listed_is_not_read_to_its_first_newline(tmp_path):
    """Finished at the next newline, a quoted field that spans lines would be coded cut short."""
    corpus = tmp_path / "docs.csv"
    corpus.write_text('id,text\nd0,zero\nd1,"line one')
    table = TableConfig(path=str(corpus))
    info = inspect_corpus(table, BUILTIN_READERS)
    assert info.unfinished == ["docs.csv"] and info.n_documents == 1
    with corpus.open("a") as handle:
        handle.write('\nline two"\nd2,two\n')
    assert read(table, info.files) == ["zero"]
    again = inspect_corpus(table, BUILTIN_READERS)
    assert again.unfinished == [] and read(table, again.files) == ["zero", "line one\nline two", "two"]


@pytest.mark.parametrize(
    ("name", "header", "rest"),
    [("docs.csv", "id,te", "xt\nd0,zero\n"), ("docs.tsv", "id\tte", "xt\nd0\tzero\n")],
)
def test_a_header_without_its_newline_waits_for_it_instead_of_failing_the_run(tmp_path, name, header, rest):
    """A writer has flushed part of the header: its columns are not known yet (here "te" would be
    a missing text column), and it holds no row, so the file is read as empty until it is finished."""
    corpus = tmp_path / name
    corpus.write_text(header)
    table = TableConfig(path=str(corpus))
    info = inspect_corpus(table, BUILTIN_READERS)
    assert info.unfinished == [name] and info.n_documents == 0
    assert read(table, info.files) == []
    with corpus.open("a") as handle:
        handle.write(rest)
    again = inspect_corpus(table, BUILTIN_READERS)
    assert again.unfinished == [] and again.n_documents == 1 and read(table, again.files) == ["zero"]


@pytest.mark.parametrize("name", ["docs.csv.gz", "docs.tsv.gz"])
def test_a_compressed_file_of_a_header_alone_is_zero_documents(tmp_path, name):
    corpus = tmp_path / name
    corpus.write_bytes(gzip.compress(b"id\ttext" if "tsv" in name else b"id,text"))
    info = inspect_corpus(TableConfig(path=str(corpus)), BUILTIN_READERS)
    assert info.n_documents == 0 and read(TableConfig(path=str(corpus)), info.files) == []


def test_a_header_longer_than_a_block_is_read_with_larger_blocks_not_taken_for_none(tmp_path, monkeypatch):
    import scalecode.sources as sources

    monkeypatch.setattr(sources, "_CSV_BLOCK", 1 << 10)
    monkeypatch.setattr(sources, "_CSV_LONG_BLOCK", 1 << 12)
    wide = ",".join(f"column{i}" for i in range(300))  # some 3 KB of header
    corpus = tmp_path / "wide.csv"
    corpus.write_text(f"id,text,{wide}\nd0,zero,{','.join(['x'] * 300)}\n")
    info = inspect_corpus(TableConfig(path=str(corpus)), BUILTIN_READERS)
    assert info.n_documents == 1 and read(TableConfig(path=str(corpus)), info.files) == ["zero"]


@pytest.mark.usefixtures("ray_local")
def test_an_empty_file_among_the_corpus_is_zero_documents_not_a_failed_run(spec, tmp_path):
    """A collector creates its file before it writes to it; a run that lists it then codes the
    other files, and the next run the rows it has by then."""
    folder, out = tmp_path / "corpus", tmp_path / "out"
    folder.mkdir()
    (folder / "a.csv").write_text(LINES["csv"][0])
    (folder / "b.csv").write_bytes(b"")
    (folder / "c.csv").write_text("id,text")  # a header alone, without its newline yet
    table = TableConfig(path=str(folder))
    summary = code(spec, table, out)
    assert (summary.documents, summary.coded, summary.errors) == (3, 3, 0)
    (folder / "b.csv").write_text("id,text\nd3,document 3 in full\n")
    with (folder / "c.csv").open("a") as handle:
        handle.write("\nd4,document 4 in full\n")
    again = code(spec, table, out)
    assert_each_coded_once(out, 5)
    assert (again.documents, again.coded, again.already_coded) == (5, 2, 3)


def test_a_last_line_without_a_newline_that_is_a_whole_row_is_read(tmp_path):
    for name, text in (
        ("docs.jsonl", '{"id": "1", "text": "one"}\n{"id": "2", "text": "two"}'),
        ("docs.csv", 'id,text\n1,one\n2,"two, quoted"'),
        ("broken.jsonl", '{"id": "1", "text": "one"}\n[2, "not an object"]'),  # whole, if wrong
    ):
        (tmp_path / name).write_text(text)
        table = TableConfig(path=str(tmp_path / name))
        info = inspect_corpus(table, BUILTIN_READERS)
        assert info.unfinished == [] and info.n_documents == 2, name


def test_a_compressed_file_is_read_as_far_as_it_was_listed(tmp_path):
    """A gzip file grows by members; the members listed are read, the one appended since is not."""
    corpus = tmp_path / "docs.csv.gz"
    corpus.write_bytes(gzip.compress(b"id,text\n1,one\n2,two\n"))
    table = TableConfig(path=str(corpus), format="csv")
    info = inspect_corpus(table, BUILTIN_READERS)
    with corpus.open("ab") as handle:
        handle.write(gzip.compress(b"3,three\n4,fo"))
    assert read(table, info.files) == ["one", "two"]
    assert inspect_corpus(table, BUILTIN_READERS).n_documents == 4  # the next run sees them


def batch(relative: str, rows: list[int]) -> pa.Table:
    return pa.table(
        {
            "id": [str(r) for r in rows],
            "error": pa.nulls(len(rows), pa.string()),
            DOC_HASH: pa.array([100 + r for r in rows], pa.uint64()),
            PATH: [relative] * len(rows),
            ROW: rows,
        }
    )


@pytest.fixture
def disk_calls(monkeypatch) -> list[str]:
    """The fsyncs (of a file or a folder) and renames made while the test runs, in order."""
    calls: list[str] = []
    fsync, replace = os.fsync, os.replace

    def recording_fsync(fd: int) -> None:
        calls.append("fsync folder" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        fsync(fd)

    def recording_replace(src: str | Path, dst: str | Path) -> None:
        calls.append("rename")
        replace(src, dst)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    monkeypatch.setattr(os, "replace", recording_replace)
    return calls


def test_a_shard_is_on_disk_before_its_rename_and_the_rename_after(tmp_path, disk_calls):
    corpus, out = tmp_path / "docs.csv", tmp_path / "out"
    corpus.write_text("id,text\na,one\nb,two\n")
    files = inspect_corpus(TableConfig(path=str(corpus)), BUILTIN_READERS).files
    ShardWriter(out, files, CorpusSummary(backend="x")).write(batch(files[0].relative, [0, 1]))
    assert disk_calls == ["fsync file", "rename", "fsync folder"]
    assert coded_index(out).tolist() == [100, 101]


def test_the_gold_predictions_are_on_disk_before_their_rename(tmp_path, disk_calls):
    from scalecode.runner import _write_whole

    path = tmp_path / "predictions" / "gold" / "coder.parquet"
    _write_whole(pa.table({"id": ["a"]}), path)
    assert disk_calls == ["fsync file", "rename", "fsync folder"]
    assert pq.read_table(path).column("id").to_pylist() == ["a"]


def test_a_file_deep_in_folders_gets_a_shard_name_the_filesystem_takes(tmp_path):
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    deep = corpus.joinpath(*[f"{level:02d}-" + "folder" * 8 for level in range(6)])  # ~300 characters
    deep.mkdir(parents=True)
    (deep / "speeches.csv").write_text("id,text\na,one\n")
    (deep / "speeches-too.csv").write_text("id,text\nb,two\n")
    (corpus / "short.csv").write_text("id,text\nc,three\n")
    files = inspect_corpus(TableConfig(path=str(corpus)), BUILTIN_READERS).files
    assert max(len(f.relative) for f in files) > 300

    writer = ShardWriter(out, files, CorpusSummary(backend="x"))
    for i, source in enumerate(files):
        writer.write(batch(source.relative, [i]))
    names = sorted(p.name for p in out.glob("*.parquet"))
    assert len(names) == 3 and all(len(f".{n}.partial".encode()) <= 255 for n in names)
    assert coded_index(out).tolist() == [100, 101, 102]

    short = next(f for f in files if f.relative == "short.csv")  # as named before: old shards still match
    assert shard_name(short, 0, 0) == f"short.csv.{short.version}.000000000000-000000000000.parquet"
    long = [f for f in files if f is not short]
    assert shard_name(long[0], 0, 9) == shard_name(long[0], 0, 9)  # stable
    assert shard_name(long[0], 0, 9).startswith("00-folder")  # readable
    # The same rows of the two files differ in the hash of their whole path, not only in the version.
    assert shard_name(long[0], 0, 9).split(".")[0] != shard_name(long[1], 0, 9).split(".")[0]


def test_documents_left_to_code_are_read_in_large_chunks_whatever_the_chunk_they_are_coded_in(tmp_path):
    """One edited document in a coded corpus makes chunks of a document or two; reading and hashing
    the corpus that many at a time was thirty times as slow per document."""
    corpus = tmp_path / "docs.csv"
    corpus.write_text("id,text\n" + "".join(f"d{i},document {i}\n" for i in range(50)))
    table = TableConfig(path=str(corpus))
    piece = Piece(inspect_corpus(table, BUILTIN_READERS).files[0])
    everything = list(uncoded_rows(piece, table, BUILTIN_READERS, np.array([], np.uint64), read_rows=2))
    assert [len(c) for c in everything] == [50]
    coded = np.sort(everything[0].column(DOC_HASH).to_numpy()[:48])
    left = list(uncoded_rows(piece, table, BUILTIN_READERS, coded, read_rows=2))
    assert [c.column(ID).to_pylist() for c in left] == [["d48", "d49"]]
    assert left[0].column(PATH).to_pylist() == ["docs.csv", "docs.csv"]
