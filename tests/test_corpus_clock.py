"""A document's newest row is the last one written, whatever the clock says.

The newest row per id (by ``coded_at``) is a document's current code. A clock set back between runs
(an NTP step, a VM restored from a snapshot, a folder coded on a machine whose clock is behind) used
to stamp a document's new row earlier than its old one: the old row stayed its current code, and the
document, its text's hash not the newest row's, was coded again on every run.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scalecode import corpus
from scalecode.backend import Resources
from scalecode.config import TableConfig
from scalecode.corpus import CorpusSummary, ShardWriter, code_corpus, coded_index
from scalecode.data import inspect_corpus
from scalecode.inference import DOC_HASH, PATH, BackendSpec
from scalecode.readers import BUILTIN_READERS
from scalecode.sources import ROW, SourceFile

BACK = timedelta(days=1)  # how far the clock is set back


def set_clock_back(monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    """The shard writer's clock from now on: the real one, ``by`` behind."""

    class Behind(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:
            return datetime.now(tz) - by

    monkeypatch.setattr(corpus, "datetime", Behind)


def run(spec: BackendSpec, path: Path, out: Path) -> CorpusSummary:
    table = TableConfig(path=str(path))
    info = inspect_corpus(table, BUILTIN_READERS)
    return code_corpus(spec, Resources(batch_size=4), table, info.files, info.n_documents, out)


def current(out: Path) -> dict[str, str | None]:
    """id -> label of the newest row per id, as a reader of the output takes it (``scorefile``)."""
    rows = pl.concat([pl.read_parquet(p) for p in out.glob("*.parquet")], how="diagonal")
    newest = rows.sort("coded_at", maintain_order=True).unique("id", keep="last")
    return dict(newest.select("id", "label").iter_rows())


@pytest.mark.usefixtures("ray_local")
def test_a_document_edited_after_the_clock_went_back_has_its_new_code_as_current(spec, tmp_path, monkeypatch):
    corpus_file, out = tmp_path / "docs.csv", tmp_path / "out"
    corpus_file.write_text("id,text\nd1,good news\nd2,plain\n")
    assert run(spec, corpus_file, out).coded == 2 and current(out) == {"d1": "pos", "d2": "pos"}

    set_clock_back(monkeypatch, BACK)
    corpus_file.write_text("id,text\nd1,bad news\nd2,plain\n")  # d1 edited
    second = run(spec, corpus_file, out)
    assert (second.coded, second.already_coded) == (1, 1)
    assert current(out) == {"d1": "neg", "d2": "pos"}  # the row just written, not the day-old one

    third = run(spec, corpus_file, out)  # and then nothing is left to code
    assert (third.coded, third.errors, third.already_coded) == (0, 0, 2)


def files_of(tmp_path: Path) -> list[SourceFile]:
    corpus_file = tmp_path / "docs.csv"
    corpus_file.write_text("id,text\na,one\nb,two\n")
    return inspect_corpus(TableConfig(path=str(corpus_file)), BUILTIN_READERS).files


def write(writer: ShardWriter, relative: str, ids: list[str], hashes: list[int]) -> None:
    writer.write(
        pa.table(
            {
                "id": ids,
                "error": pa.nulls(len(ids), pa.string()),
                DOC_HASH: pa.array(hashes, pa.uint64()),
                PATH: [relative] * len(ids),
                ROW: list(range(len(ids))),
            }
        )
    )


def newest_stamps(out: Path) -> list[datetime]:
    rows = pl.concat([pl.read_parquet(p) for p in out.glob("*.parquet")])
    return sorted(rows["coded_at"].unique().to_list())


def test_a_run_after_the_clock_went_back_writes_after_the_newest_row(tmp_path, monkeypatch):
    files, out = files_of(tmp_path), tmp_path / "out"
    write(ShardWriter(out, files, CorpusSummary(backend="x")), files[0].relative, ["a", "b"], [1, 2])
    assert coded_index(out).tolist() == [1, 2]

    set_clock_back(monkeypatch, BACK)
    index = corpus.index_output(out)
    assert index.coded.tolist() == [1, 2] and index.newest == newest_stamps(out)[-1]
    writer = ShardWriter(out, files, CorpusSummary(backend="x"), after=index.newest)
    write(writer, files[0].relative, ["a"], [11])  # a edited
    assert coded_index(out).tolist() == [2, 11]
    first, second = newest_stamps(out)
    assert second == first + timedelta(microseconds=1)  # the clock said a day earlier


def test_the_clock_going_back_within_a_run_keeps_the_order_of_writes(tmp_path, monkeypatch):
    files, out = files_of(tmp_path), tmp_path / "out"
    writer = ShardWriter(out, files, CorpusSummary(backend="x"))
    write(writer, files[0].relative, ["a", "b"], [1, 2])
    set_clock_back(monkeypatch, BACK)
    write(writer, files[0].relative, ["a"], [11])
    assert coded_index(out).tolist() == [2, 11]


def test_the_newest_time_of_a_folder_of_early_shards(tmp_path):
    """Shards of early versions, without times, and times in another unit than microseconds."""
    out = tmp_path / "out"
    out.mkdir()
    pq.write_table(pa.table({"id": ["a"], DOC_HASH: pa.array([1], pa.uint64())}), out / "early.parquet")
    assert corpus.index_output(out).newest is None
    when = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    nanoseconds = pa.array([when], pa.timestamp("ns", tz="UTC"))
    pq.write_table(
        pa.table({"id": ["b"], DOC_HASH: pa.array([2], pa.uint64()), "coded_at": nanoseconds}),
        out / "rewritten.parquet",
    )
    index = corpus.index_output(out)
    assert (index.coded.tolist(), index.newest) == ([1, 2], when)


def test_a_shard_whose_times_are_all_null_counts_as_one_without_times(tmp_path):
    """A coded_at column of no type but null (a shard written back by another tool) is read as a
    shard of an early version, not a stop of the run."""
    out = tmp_path / "out"
    out.mkdir()
    pq.write_table(
        pa.table({"id": ["a"], DOC_HASH: pa.array([1], pa.uint64()), "coded_at": pa.nulls(1)}),
        out / "nulls.parquet",
    )
    pq.write_table(pa.table({"id": ["b"], DOC_HASH: pa.array([2], pa.uint64())}), out / "early.parquet")
    index = corpus.index_output(out)
    assert (index.coded.tolist(), index.newest) == ([1, 2], None)
