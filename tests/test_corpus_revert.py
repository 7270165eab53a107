"""A document whose text goes back to an earlier version gets a code for that version again.

The newest row per id is a document's current code. A text once coded, changed and changed back
(a scraper's empty page restored, an edit reverted) used to count as coded because its hash was in
the output from the first time, so the newest row stayed the one for the text in between.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from scalecode.backend import Resources
from scalecode.config import TableConfig
from scalecode.corpus import CorpusSummary, ShardWriter, code_corpus, coded_index
from scalecode.data import inspect_corpus
from scalecode.inference import DOC_HASH, PATH, BackendSpec
from scalecode.readers import BUILTIN_READERS
from scalecode.sources import ROW


def run(spec: BackendSpec, corpus: Path, out: Path) -> CorpusSummary:
    table = TableConfig(path=str(corpus))
    info = inspect_corpus(table, BUILTIN_READERS)
    return code_corpus(spec, Resources(batch_size=4), table, info.files, info.n_documents, out)


def current(out: Path) -> dict[str, tuple[str | None, str | None]]:
    """id -> (label, error) of the newest row per id, as a reader of the output takes it."""
    rows = pl.concat([pl.read_parquet(p) for p in out.glob("*.parquet")], how="diagonal")
    newest = rows.sort("coded_at").unique("id", keep="last")
    return {i: (label, error) for i, label, error in newest.select("id", "label", "error").iter_rows()}


@pytest.mark.usefixtures("ray_local")
def test_a_text_restored_or_reverted_is_coded_again(spec, tmp_path):
    corpus, out = tmp_path / "docs.csv", tmp_path / "out"
    corpus.write_text("id,text\nd1,this is bad\nd2,good news\nd3,plain\n")
    assert (run(spec, corpus, out).coded, current(out)["d1"]) == (3, ("neg", None))

    corpus.write_text("id,text\nd1,\nd2,bad news\nd3,plain\n")  # d1 fetched empty, d2 edited
    second = run(spec, corpus, out)
    assert (second.errors, second.coded, second.already_coded) == (1, 1, 1)
    assert current(out)["d1"][1] == "empty text" and current(out)["d2"] == ("neg", None)

    corpus.write_text("id,text\nd1,this is bad\nd2,good news\nd3,plain\n")  # restored, reverted
    third = run(spec, corpus, out)
    assert (third.coded, third.errors, third.already_coded) == (2, 0, 1)
    codes = current(out)
    assert (codes["d1"], codes["d2"]) == (("neg", None), ("pos", None))

    idle = run(spec, corpus, out)  # and then nothing is left to code
    assert (idle.coded, idle.errors, idle.already_coded) == (0, 0, 3)


def test_the_index_holds_each_ids_newest_hash_unless_that_row_is_to_be_retried(tmp_path):
    corpus, out = tmp_path / "docs.csv", tmp_path / "out"
    corpus.write_text("id,text\na,one\nb,two\n")
    files = inspect_corpus(TableConfig(path=str(corpus)), BUILTIN_READERS).files
    writer = ShardWriter(out, files, CorpusSummary(backend="api"))

    def write(ids: list[str], hashes: list[int], retry: list[bool]) -> None:
        writer.write(
            pa.table(
                {
                    "id": ids,
                    "error": pa.array([("timed out" if r else None) for r in retry], pa.string()),
                    "retry": retry,
                    DOC_HASH: pa.array(hashes, pa.uint64()),
                    PATH: [files[0].relative] * len(ids),
                    ROW: list(range(len(ids))),
                }
            )
        )

    write(["a", "b"], [1, 2], [False, False])  # a's text 1, b's text 2
    write(["a", "b"], [11, 12], [False, True])  # a edited to 11; b edited to 12 and timed out
    assert coded_index(out).tolist() == [11]  # 1 and 2 are old versions; 12 is to be coded again
    write(["a", "b"], [1, 2], [False, False])  # both back to their first texts, coded anew
    assert coded_index(out).tolist() == [1, 2]


def test_rows_of_shards_without_times_are_older_than_any_with_one(tmp_path):
    """Shards written before coded_at existed: their rows count as coded, and as the oldest."""
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    out.mkdir()
    old = pa.table({"id": ["a", "b"], DOC_HASH: pa.array([1, 2], pa.uint64())})
    pq.write_table(old, out / "early.parquet")
    assert coded_index(out).tolist() == [1, 2]
    corpus = tmp_path / "docs.csv"
    corpus.write_text("id,text\na,one\n")
    files = inspect_corpus(TableConfig(path=str(corpus)), BUILTIN_READERS).files
    ShardWriter(out, files, CorpusSummary(backend="x")).write(
        pa.table(
            {
                "id": ["a"],
                "error": pa.array([None], pa.string()),
                DOC_HASH: pa.array([11], pa.uint64()),
                PATH: [files[0].relative],
                ROW: [0],
            }
        )
    )
    assert coded_index(out).tolist() == [2, 11]  # a's early hash is an old version now
