"""Coding a whole corpus with one backend: streamed, sharded, exactly once, resumable, incremental.

The corpus is read by Ray tasks, a piece of a file each (``scalecode.sources``), in chunks; an
actor pool of the backend codes the chunks; the driver writes what comes back as Parquet shards.
Nothing holds the corpus: memory is bounded by the chunks in flight, whatever its size.

Every row carries ``doc_hash``, a 64-bit BLAKE2b of the document's id and text. Before reading,
the driver gathers the hash of each id's newest row in the backend's output folder (``coded_index``);
the read tasks drop the documents whose hash is among them. That single rule gives:

- resume: after the driver is killed (even SIGKILL), the same command codes what is not in a
  shard yet, and the output equals an unbroken run's (no document lost, none twice);
- incremental runs: when files are added or documents edited, only new ids and changed texts are
  coded, in new shards beside the old ones. An edited document then has a row per version; each
  row carries ``coded_at``, so the newest row per id is the current code. ``coded_at`` keeps the
  order the rows were written in whatever the clock does (set back, or behind on another machine):
  a row is never stamped earlier than just after the newest one in the folder. A text changed back
  to one coded before is coded again, so that its newest row is its own. A CSV, TSV or JSON Lines
  file appended to while it is read is read as far as it was when listed, in whole lines (never a
  half-written last one): the rest is the next run's (``scalecode.sources.inspected_bytes``);
- retries: an error row the backend marked as passing (``retry``: an API that timed out or was
  down) is not counted as coded, so the next run codes its document again, in a newer row.

A shard is named after its input file, the file's version (size and modification time) and the
first and last row of it that the shard holds, e.g. ``speeches__2024.jsonl.3f9a0c21be.000000000000-
000000009999.parquet`` (``...-000000009999.2.parquet`` for a second shard over the same rows, of
retried documents; a path too long for a file name is cut, and a hash of it added), written under a
temporary name, flushed to disk and renamed when complete: a shard is whole or absent, after a
crash too. Rows a backend could not code are written too, as error rows with the reason.
"""

from __future__ import annotations

import errno
import hashlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scalecode.backend import Resources
from scalecode.config import TableConfig
from scalecode.inference import (
    DOC_HASH,
    READ_CPUS,
    BackendSpec,
    cluster_pool,
    code_dataset,
    plan_chunk_rows,
)
from scalecode.plugins import load_plugins
from scalecode.predictions import CODED_AT, RETRY, to_retry
from scalecode.readers import Reader
from scalecode.sources import ID, PATH, RAW, ROW, TEXT, Piece, SourceFile, plan_pieces, read_piece

PIECE_ROWS = 1_000_000  # rows of Parquet row groups read by one task
COUNT_CHUNK_ROWS = 65_536  # rows read at a time when only counting what is left to code
READ_ROWS = 4_096  # rows read at a time at least when coding: ~80 MB of 20 KB documents
_NAME_BYTES = 255  # the longest file name ext4, XFS, btrfs, APFS and NTFS take
_PATH_HASH = 12  # hex digits of the hash standing for the part of a path cut from a shard's name
# Errors of fsync on a directory where the filesystem cannot flush one: some network filesystems say
# EINVAL, and Windows does not open a directory as a file at all (EACCES).
_NO_DIRECTORY_SYNC = (errno.EINVAL, errno.ENOTSUP, errno.EACCES)
_NULL_TEXT = b"\xff"  # never valid UTF-8, so a null text hashes unlike any real one
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TICK = timedelta(microseconds=1)  # the unit of ``coded_at``: the least a row can be newer by


def doc_hashes(ids: pa.Array, texts: pa.Array, raw: pa.Array | None = None) -> pa.Array:
    """64-bit BLAKE2b of each (id, text): stable across versions and machines, unlike a hash().

    ``raw``: of a corrupt row (its text null), a digest of its bytes in the file (``sources.RAW``),
    hashed after the null text's byte: its id names only its place, and a different malformed row
    there later must not pass for it. A row without one hashes as it always did.
    """
    blake2b = hashlib.blake2b
    id_bytes = ids.cast(pa.binary()).to_pylist()
    text_bytes = texts.cast(pa.binary()).to_pylist() if len(texts) else []
    if raw is not None and raw.null_count < len(raw):
        text_bytes = [
            _NULL_TEXT + r if t is None and r is not None else t
            for t, r in zip(text_bytes, raw.to_pylist(), strict=True)
        ]
    digests = b"".join(
        blake2b(i + b"\x1f" + (_NULL_TEXT if t is None else t), digest_size=8).digest()
        for i, t in zip(id_bytes, text_bytes, strict=True)
    )
    return pa.array(np.frombuffer(digests, dtype="<u8"))


def coded_index(out_dir: Path) -> np.ndarray:
    """The sorted doc hashes that count as coded in a backend's output folder: each id's newest row
    (by ``coded_at``), unless it is an error the backend marked as passing (``retry``).

    Only the newest row counts because it is the document's current code: a text coded, changed and
    changed back (an empty page restored, an edit reverted) must be coded again, or its current code
    stays the one of the text in between. Rows without a time (shards of early versions) are older
    than any with one; rows without ids count as coded whatever.
    """
    return index_output(out_dir).coded


@dataclass(frozen=True)
class OutputIndex:
    """What a run needs to know of a backend's output folder before it codes."""

    coded: np.ndarray  # the doc hashes that count as coded, sorted (``coded_index``)
    newest: datetime | None  # the latest ``coded_at`` of its rows; None where none has one


def index_output(out_dir: Path) -> OutputIndex:
    """``coded_index`` and the newest ``coded_at`` of the folder, read in one pass over its shards."""
    timed, untimed = [], []
    for shard in sorted(out_dir.glob("*.parquet")):
        schema = pq.read_schema(shard)
        names = schema.names
        # A column of no times (all null, as another tool may write it back) is a shard without times.
        timed_shard = CODED_AT in names and pa.types.is_timestamp(schema.field(CODED_AT).type)
        if DOC_HASH not in names:
            continue
        rows = pl.read_parquet(shard, columns=[c for c in (ID, CODED_AT, RETRY, DOC_HASH) if c in names])
        retry = pl.col(RETRY).fill_null(False) if RETRY in names else pl.lit(False)
        if ID in names:
            # In microseconds whatever unit a shard has (one rewritten by another tool, say), so that
            # times of all shards compare, and the newest is one ``ShardWriter`` can stamp after.
            when = (
                pl.col(CODED_AT).dt.cast_time_unit("us").cast(pl.Int64)
                if timed_shard
                else pl.lit(None, pl.Int64)
            )
            # The id's hash stands for it: a corpus of millions of ids would otherwise be held whole.
            timed.append(
                rows.select(
                    pl.col(ID).cast(pl.String).hash().alias("id_hash"),
                    when.alias(CODED_AT),
                    retry.alias(RETRY),
                    DOC_HASH,
                )
            )
        else:
            untimed.append(rows.filter(~retry)[DOC_HASH].to_numpy())
    newest = None
    if timed:
        stamped = pl.concat(timed)
        latest = stamped.select(pl.col(CODED_AT).max()).item()
        newest = None if latest is None else _EPOCH + latest * _TICK
        # Newest last; of rows written at the same moment, one to retry counts as the older.
        current = stamped.sort([CODED_AT, RETRY], descending=[False, True], nulls_last=False).unique(
            "id_hash", keep="last"
        )
        untimed.append(current.filter(~pl.col(RETRY))[DOC_HASH].to_numpy())
    coded = np.unique(np.concatenate(untimed)) if untimed else np.empty(0, dtype=np.uint64)
    return OutputIndex(coded, newest)


def in_sorted(values: np.ndarray, sorted_index: np.ndarray) -> np.ndarray:
    """Which ``values`` are in ``sorted_index``: a search, where ``np.isin`` would sort the index (of
    every document coded so far) again for each chunk."""
    if not sorted_index.size:
        return np.zeros(len(values), dtype=bool)
    at = np.searchsorted(sorted_index, values).clip(max=sorted_index.size - 1)
    return np.asarray(sorted_index[at] == values)


def shard_name(source: SourceFile, first_row: int, last_row: int, copy: int = 1) -> str:
    """``copy`` > 1: another shard over the same rows of the same file version (documents retried).

    A name is at most ``_NAME_BYTES`` long, its temporary name included, or the filesystem refuses
    it. Where the file's flattened path would make it longer (deep folders), the path is cut and a
    hash of all of it follows: the name stays the same run after run and unlike any other file's.
    A name that fits is as it always was, so shards of earlier runs keep their names; no code reads
    anything but their rows (``coded_index``), whatever they are named.
    """
    again = f".{copy}" if copy > 1 else ""
    rest = f".{source.version}.{first_row:012d}-{last_row:012d}{again}.parquet"
    return _flat_name(source.relative, _NAME_BYTES - len(_partial_name(rest))) + rest


def _partial_name(name: str) -> str:
    """The temporary name a shard is written under, renamed to ``name`` once whole."""
    return f".{name}.partial"


def _flat_name(relative: str, room: int) -> str:
    """A file's path under the corpus root as a name of at most ``room`` bytes: folders joined by
    ``__``, and where that is too long, as much of it as fits and a hash of the whole path."""
    flat = relative.replace("/", "__")
    if len(flat.encode()) <= room:
        return flat
    digest = hashlib.sha256(relative.encode()).hexdigest()[:_PATH_HASH]
    head = flat.encode()[: room - len(digest) - 1].decode("utf-8", "ignore")  # whole characters only
    return f"{head}-{digest}"


@dataclass
class CorpusSummary:
    """What coding the corpus with one backend did in this run."""

    backend: str
    documents: int = 0  # in the corpus
    coded: int = 0  # coded in this run
    errors: int = 0  # error rows written in this run
    to_retry: int = 0  # of those, errors the backend expects to pass: the next run codes them again
    already_coded: int = 0  # in the output before this run, so not coded again
    shards_written: int = 0
    seconds: float = 0.0
    error_reasons: dict[str, int] = field(default_factory=dict)
    cost_usd: float | None = None  # where the backend reports what each document cost (APIs)

    @property
    def docs_per_s(self) -> float:
        return (self.coded + self.errors) / self.seconds if self.seconds else 0.0


class ShardWriter:
    """Writes each coded batch as shards, one per input file it came from, whole or not at all.

    ``after``: the newest ``coded_at`` in ``out_dir`` (``index_output``). Each batch is stamped
    after it and after the batch before, even where the clock says earlier: the newest row of a
    document must be the one written last, or an edited document keeps its old code as current and
    is coded again on every run. Only the driver writes, one run at a time (the runner locks the
    run's folder), so the rows read before the run are all the rows there are to be after.
    """

    def __init__(
        self,
        out_dir: Path,
        sources: Sequence[SourceFile],
        summary: CorpusSummary,
        after: datetime | None = None,
    ) -> None:
        self.out_dir = out_dir
        self.sources = {s.relative: s for s in sources}
        self.summary = summary
        self._last = after
        out_dir.mkdir(parents=True, exist_ok=True)

    def _stamp(self) -> datetime:
        """Now, or just after the last row written where the clock says earlier (set back since)."""
        now = datetime.now(timezone.utc)
        self._last = now if self._last is None else max(now, self._last + _TICK)
        return self._last

    def write(self, batch: pa.Table) -> None:
        coded_at = pa.scalar(self._stamp(), pa.timestamp("us", tz="UTC"))
        for path in pc.unique(batch.column(PATH)).to_pylist():
            rows = batch.filter(pc.equal(batch.column(PATH), path)).sort_by([(ROW, "ascending")])
            first, last = rows.column(ROW)[0].as_py(), rows.column(ROW)[-1].as_py()
            rows = rows.drop_columns([PATH, ROW])
            rows = rows.append_column(CODED_AT, pa.repeat(coded_at, len(rows)))
            source, copy = self.sources[path], 1
            final = self.out_dir / shard_name(source, first, last)
            while final.exists():  # retried documents may span the rows of a shard: never replace it
                copy += 1
                final = self.out_dir / shard_name(source, first, last, copy)
            write_durably(rows, final)
            self._count(rows)

    def _count(self, rows: pa.Table) -> None:
        summary = self.summary
        summary.shards_written += 1
        errors = rows.column("error")
        summary.errors += len(rows) - errors.null_count
        summary.coded += errors.null_count
        summary.to_retry += pc.sum(to_retry(rows)).as_py() or 0
        if errors.null_count < len(rows):
            for reason, count in pl.Series(errors).drop_nulls().value_counts().iter_rows():
                summary.error_reasons[reason] = summary.error_reasons.get(reason, 0) + count
        if "cost_usd" in rows.column_names:
            cost = pc.sum(rows.column("cost_usd")).as_py()
            summary.cost_usd = (summary.cost_usd or 0.0) + float(cost or 0.0)


def write_durably(rows: pa.Table, final: Path) -> None:
    """Write ``rows`` to ``final`` as a Parquet file that is whole or absent, even after a crash.

    The rename alone does not do it: the system may write the rename to disk before the file's
    data, so that after a power cut ``final`` is there but empty or cut short, and the next run
    would take its documents as coded or fail on it. The data is flushed before the rename, and the
    folder, which holds the rename, after it.
    """
    partial = final.with_name(_partial_name(final.name))
    with partial.open("wb") as handle:
        pq.write_table(rows, handle)
        handle.flush()  # Python's buffer to the system, before the system's to the disk
        os.fsync(handle.fileno())
    os.replace(partial, final)
    _fsync_directory(final.parent)


def _fsync_directory(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk, where its filesystem can."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        if exc.errno in _NO_DIRECTORY_SYNC:
            return  # the rename is as durable as this filesystem makes it
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _NO_DIRECTORY_SYNC:
            raise
    finally:
        os.close(fd)


def read_dataset(
    pieces: Sequence[Piece],
    table: TableConfig,
    spec: BackendSpec,
    chunk_rows: int,
    index: np.ndarray,
    *,
    cut: bool = True,
) -> Any:
    """A Ray dataset of the documents still to code: one read task per piece, streaming chunks
    (``cut``: in blocks of ``chunk_rows``, one per ``predict_batch`` call)."""
    import ray

    index_ref = ray.put(index)  # shared read-only through the object store, not copied per task
    plugins_dir, allow = spec.plugins_dir, spec.allow
    builtin = all(p.source.reader in ("parquet", "csv", "tsv", "jsonl") for p in pieces)

    def read(batch: dict[str, Any]) -> Any:
        coded = ray.get(index_ref)
        # Formats from plugins are looked up afresh in the task: a plugin-file function cannot be pickled.
        readers = () if builtin else load_plugins(plugins_dir, allow=allow).readers
        for i in batch["item"]:
            yield from uncoded_rows(pieces[int(i)], table, readers, coded, chunk_rows)

    dataset = ray.data.from_items(list(range(len(pieces))), override_num_blocks=len(pieces))
    dataset = dataset.map_batches(read, batch_size=1, batch_format="numpy", num_cpus=READ_CPUS)
    if not cut:
        return dataset
    # Ray Data joins what a task yields into blocks of up to 128 MB; cut them back to chunks, so that
    # every replica gets work and the driver receives (and holds) one batch's rows at a time.
    return dataset.repartition(target_num_rows_per_block=chunk_rows)


def uncoded_rows(
    piece: Piece, table: TableConfig, readers: Sequence[Reader], coded: np.ndarray, read_rows: int
) -> Iterator[pa.Table]:
    """The piece's documents whose hash is not in ``coded`` (sorted), with their hash and file, read
    and hashed ``read_rows`` at a time, or READ_ROWS where that is more."""
    # Not fewer whatever the chunks the rows are cut into later: with a chunk of a few documents (one
    # edited document in a coded corpus of millions), reading and hashing as few at a time took
    # thirty times as long per document.
    for rows in read_piece(piece, table, readers, max(read_rows, READ_ROWS)):
        hashes = doc_hashes(
            rows.column(ID).combine_chunks(),
            rows.column(TEXT).combine_chunks(),
            rows.column(RAW).combine_chunks(),
        )
        chunk = (
            rows.drop_columns([RAW])
            .append_column(DOC_HASH, hashes)
            .append_column(PATH, pa.repeat(pa.scalar(piece.source.relative), len(rows)))
        )
        todo = ~in_sorted(hashes.to_numpy(), coded)
        if not todo.all():
            chunk = chunk.filter(pa.array(todo))
        if len(chunk):
            yield chunk


def count_uncoded(pieces: Sequence[Piece], table: TableConfig, spec: BackendSpec, index: np.ndarray) -> int:
    """How many documents of the corpus have no row in the index: read and hashed, none coded."""
    return int(read_dataset(pieces, table, spec, COUNT_CHUNK_ROWS, index, cut=False).count())


def corpus_chunk_rows(documents: int, todo: int, indexed: int, batch_size: int, replicas: int) -> int:
    """Documents per chunk for a corpus of ``documents``, ``todo`` of them at least still to code,
    with ``indexed`` hashes in the output already.

    ``todo`` is exact only where the output was empty or was counted against the corpus. Where it is
    ``documents`` minus the hashes, stale hashes (texts edited since they were coded) make it an
    undercount: every text re-normalised and 10 added would give 10, and the whole corpus would be
    coded in chunks of 3. Planned from the corpus size instead, chunks are never smaller than with
    every document to code; a truly small ``todo`` then fills fewer replicas, which costs little.
    """
    exact = indexed == 0 or indexed >= documents
    return plan_chunk_rows(max(todo if exact else documents, 1), batch_size, replicas)


def code_corpus(
    spec: BackendSpec,
    resources: Resources,
    table: TableConfig,
    files: Sequence[SourceFile],
    documents: int,
    out_dir: Path,
    progress: Callable[[int], None] | None = None,
) -> CorpusSummary:
    """Code every document of the corpus not yet in ``out_dir`` with one backend."""
    started = time.perf_counter()
    summary = CorpusSummary(backend=spec.name, documents=documents)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob(".*.partial"):
        stale.unlink()  # left by a run that was killed while writing
    output = index_output(out_dir)
    index = output.coded
    pieces = plan_pieces(files, table.path, PIECE_ROWS)
    if documents == 0:
        todo = 0
    elif index.size < documents:
        # At least this many are still to code; exactly this many unless texts were edited or
        # documents removed since they were coded (their old hashes match nothing now).
        todo = documents - int(index.size)
    else:
        # As many hashes as documents does not mean every document is coded: an edited text or a
        # removed document leaves a hash that matches no document. Only reading the corpus can tell,
        # which costs far less than starting the backend's replicas for nothing.
        todo = count_uncoded(pieces, table, spec, index)
    summary.already_coded = documents - todo
    if progress is not None and summary.already_coded:
        progress(summary.already_coded)
    if todo:
        replicas = cluster_pool(resources).size
        chunk_rows = corpus_chunk_rows(documents, todo, int(index.size), resources.batch_size, replicas)
        dataset = read_dataset(pieces, table, spec, chunk_rows, index)
        writer = ShardWriter(out_dir, files, summary, after=output.newest)
        for batch in code_dataset(dataset, spec, resources, batch_size=chunk_rows):
            writer.write(batch)
            if progress is not None:
                progress(len(batch))
    summary.seconds = time.perf_counter() - started
    # Exact now that every document is either in an earlier shard or was written in this run. A
    # line its writer finished between the corpus's inspection and its reading was read but not
    # counted: the corpus had that document more.
    summary.already_coded = max(documents - summary.coded - summary.errors, 0)
    summary.documents = max(documents, summary.coded + summary.errors)
    return summary
