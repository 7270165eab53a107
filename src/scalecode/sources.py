"""Corpus files on any filesystem pyarrow reads, streamed in chunks of rows, never whole.

A corpus is a file or a folder of files, local or behind a URI (``s3://``, ``gs://``, ``hdfs://``:
whatever ``pyarrow.fs.FileSystem.from_uri`` knows, with the credentials the environment gives it).
Each file is read as a sequence of Arrow tables with the columns of ``CHUNK_SCHEMA``: the document's
id and text, its 0-based row within the file, and, for a row that could not be parsed at all (a
malformed JSON line, a CSV row with the wrong number of fields), the reason, so that it becomes an
error row instead of stopping the run or vanishing.

Parquet files are read by row group, and a big file is cut into pieces of whole row groups that
are read in parallel. CSV and TSV are parsed by pyarrow's streaming reader, JSON Lines line by line
in blocks, each only as far as the file was when listed (``inspected_bytes``), so that a file that
grows meanwhile is read as counted; formats added through ``register_readers`` are read whole by
their reader (local files only) and then cut into chunks.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from scalecode.config import TableConfig
from scalecode.errors import DataError
from scalecode.readers import Reader

ID, TEXT, ROW, CORRUPT = "id", "text", "row", "corrupt"
PATH = "path"  # the corpus file a row came from, added where it is read for coding
BUILTIN_FORMATS = ("parquet", "csv", "tsv", "jsonl")
_JSONL_BLOCK = 8 * 1024 * 1024  # bytes of JSON Lines parsed at once
_LINE_BLOCK = 1 << 20  # bytes read at a time while looking for the last whole line
# The compressions pyarrow's ``open_input_stream`` detects from a path, and how it spells them.
_CODECS = ((".bz2", "bz2"), (".gz", "gzip"), (".lz4", "lz4"), (".zst", "zstd"))


def is_uri(path: str) -> bool:
    return "://" in path


def filesystem(path: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem a corpus path lives on, and the path as that filesystem names it."""
    if is_uri(path):
        try:
            fs, where = pafs.FileSystem.from_uri(path)
            return fs, str(where)
        except Exception as exc:  # pyarrow raises ArrowInvalid or OSError, with its own reasons
            raise DataError(path, f"cannot open this location: {exc}") from exc
    return pafs.LocalFileSystem(), str(Path(path).resolve())


@dataclass(frozen=True)
class SourceFile:
    """One corpus file: where it is, its name under the corpus root, and which version of it this is."""

    path: str  # as its filesystem names it
    relative: str  # under the corpus root; the file's own name when the corpus is one file
    size: int
    mtime_ns: int
    reader: str

    @property
    def version(self) -> str:
        """Changes when the file does (size or modification time), naming the shards coded from it."""
        key = f"{self.path}\0{self.size}\0{self.mtime_ns}".encode()
        return hashlib.sha256(key).hexdigest()[:10]


def _reader_for(name: str, readers: Sequence[Reader], fmt: str | None, where: str) -> str:
    if fmt is not None:
        if fmt not in {r.name for r in readers}:
            raise DataError(where, f"unknown format {fmt!r}; known: {', '.join(r.name for r in readers)}")
        return fmt
    suffix = PurePosixPath(name).suffix.lower()
    for reader in readers:
        if suffix in reader.suffixes:
            return reader.name
    known = ", ".join(s for r in readers for s in r.suffixes)
    raise DataError(where, f"unknown file type {suffix!r}; known: {known} (or set 'format:')")


def list_sources(config: TableConfig, readers: Sequence[Reader]) -> list[SourceFile]:
    """The corpus files: the file itself, or every file of a known format under the folder (sorted).

    Names starting with ``.`` or ``_`` are skipped, as Spark, Ray and pyarrow skip them (markers,
    temporary files).
    """
    fs, root = filesystem(config.path)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise DataError(config.path, "no such file or folder")
    if info.type == pafs.FileType.File:
        entries = [info]
        base = str(PurePosixPath(root).parent)
    else:
        entries = fs.get_file_info(pafs.FileSelector(root, recursive=True))
        base = root
        suffixes = {
            s for r in readers if config.format is None or r.name == config.format for s in r.suffixes
        }
        entries = [
            e
            for e in entries
            if e.type == pafs.FileType.File
            and PurePosixPath(e.path).suffix.lower() in suffixes
            and not any(part.startswith((".", "_")) for part in PurePosixPath(e.path).relative_to(base).parts)
        ]
        if not entries:
            raise DataError(config.path, f"no files with suffix {', '.join(sorted(suffixes))} in this folder")
    sources = []
    for entry in sorted(entries, key=lambda e: e.path):
        relative = str(PurePosixPath(entry.path).relative_to(base))
        reader = _reader_for(entry.path, readers, config.format, entry.path)
        if reader not in BUILTIN_FORMATS and is_uri(config.path):
            raise DataError(
                entry.path, f"format {reader!r} comes from a plugin, which reads local files only"
            )
        mtime = entry.mtime_ns if entry.mtime_ns is not None else 0
        sources.append(SourceFile(entry.path, relative, entry.size or 0, mtime, reader))
    return sources


def changed_since_inspection(fs: pafs.FileSystem, source: SourceFile) -> bool:
    """Whether the file is no longer as it was listed: another size, or modified later.

    Only a later modification time counts: a filesystem that lists times more finely than it states
    one file's (an object store's listing and its HEAD, say) would otherwise make every file look
    changed, and an unchanged file's last line without a newline would never be read.
    """
    info = fs.get_file_info(source.path)
    mtime = info.mtime_ns if info.mtime_ns is not None else 0
    return (info.size or 0) != source.size or mtime > source.mtime_ns


class _Filter:
    """A read-only file object over a pyarrow stream, as pyarrow's readers and ``PythonFile`` take one."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.closed = False

    def readable(self) -> bool:
        return True

    def close(self) -> None:  # the stream under it is closed by whoever opened it
        self.closed = True


class _Head(_Filter):
    """The first ``limit`` bytes of a stream: a growing file as large as it was when listed.

    ``finish_line``: and the rest of the line those bytes end in, where the file now holds it. A
    file listed while its last line was being written then gives that line whole, as the one
    document it was counted as, and not a fragment.
    """

    def __init__(self, stream: Any, limit: int, finish_line: bool = False) -> None:
        super().__init__(stream)
        self._left = limit
        self._finish = finish_line
        self._last = b"\n"  # the last byte read: a line is finished once it is a newline
        self._ended = False

    def read(self, nbytes: int | None = -1) -> bytes:
        if nbytes is None or nbytes < 0:
            return b"".join(iter(lambda: self.read(_LINE_BLOCK), b""))
        if self._ended or nbytes == 0:
            return b""
        if self._left:
            data: bytes = self._stream.read(min(nbytes, self._left))
            self._left = self._left - len(data) if data else 0
        elif self._finish and self._last != b"\n":
            data = self._stream.read(nbytes)
            end = data.find(b"\n") + 1
            data = data[:end] if end else data  # nothing after the line's newline: appended since
        else:
            data = b""
        if not data:
            self._ended = True
            return data
        self._last = data[-1:]
        return data


class _WholeLines(_Filter):
    """A stream that ends at its last newline: what follows it may be a line its writer is still
    writing, and read now it would be coded as a document that never existed."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._ready = b""  # bytes up to a newline, not yet read
        self._at = 0  # how far into ``_ready`` the reads have come
        self._pending = b""  # bytes after the last newline seen: kept back until one follows them
        self._ended = False

    def read(self, nbytes: int | None = -1) -> bytes:
        if nbytes is None or nbytes < 0:
            return b"".join(iter(lambda: self.read(_LINE_BLOCK), b""))
        while self._at == len(self._ready) and not self._ended:
            block = self._stream.read(_LINE_BLOCK)
            if not block:
                self._ended = True  # ``_pending``, the unfinished line, is never read
                break
            data = self._pending + block
            cut = data.rfind(b"\n") + 1
            self._ready, self._at, self._pending = data[:cut], 0, data[cut:]
        data = self._ready[self._at : self._at + nbytes]
        self._at += len(data)
        return data


def _codec(path: str) -> str | None:
    return next((codec for suffix, codec in _CODECS if path.endswith(suffix)), None)


@contextmanager
def inspected_bytes(fs: pafs.FileSystem, source: SourceFile) -> Iterator[Any]:
    """A line-based file's bytes as they were when listed, for a reader to parse.

    Only the ``source.size`` bytes listed are read: rows appended since are left for the next run,
    which lists the file again, so the documents read are the documents counted. Of a file that
    changed since it was listed, only whole lines are read: its last line may be half written (a
    collector appending to it); the line the listed bytes end in is read to its newline where it
    has one by now, and else left for the next run. A last line without a newline in a file that
    has not changed is a normal last line (many files lack the newline).

    A compressed file is cut at its listed compressed size, which is where a stream appended to
    (``gzip >>``, one member after another) ended when listed; the line it ends in is not finished,
    which would take decompressing past the cut. One rewritten since it was listed ends mid-stream
    there, and the decompressor refuses it (truncated stream): that run stops, and the next one,
    listing the file again, reads it whole.
    """
    whole_lines = changed_since_inspection(fs, source)
    with fs.open_input_stream(source.path, compression=None) as raw:
        codec = _codec(source.path)
        stream: Any = _Head(raw, source.size, finish_line=whole_lines and codec is None)
        if codec is not None:
            stream = pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), codec)
        yield _WholeLines(stream) if whole_lines else stream


@dataclass(frozen=True)
class Piece:
    """A part of one file read by one Ray task: the whole file, or a range of Parquet row groups."""

    source: SourceFile
    row_groups: tuple[int, int] | None = None  # [start, stop) for Parquet pieces
    first_row: int = 0


def plan_pieces(sources: Sequence[SourceFile], root: str, piece_rows: int) -> list[Piece]:
    """Pieces of about ``piece_rows`` rows, so that one big Parquet file is still read in parallel."""
    fs, _ = filesystem(root)
    pieces: list[Piece] = []
    for source in sources:
        if source.reader != "parquet":
            pieces.append(Piece(source))
            continue
        with fs.open_input_file(source.path) as handle:
            metadata = pq.ParquetFile(handle).metadata
        start, first, rows = 0, 0, 0
        for group in range(metadata.num_row_groups):
            rows += metadata.row_group(group).num_rows
            if rows >= piece_rows or group == metadata.num_row_groups - 1:
                pieces.append(Piece(source, (start, group + 1), first))
                start, first, rows = group + 1, first + rows, 0
        if metadata.num_row_groups == 0:
            pieces.append(Piece(source, (0, 0), 0))
    return pieces


def id_strings(ids: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Ids as text by one rule for every format and reader, so that gold, corpus and predictions agree.

    A number read as a float (a Parquet column made float by one decimal or one missing value, a JSON
    column with one decimal) is written as the shortest decimal that reads back as the same number,
    without an exponent: 1.0 is '1', 1.5 is '1.5', 1e20 is '100000000000000000000'. That is also how
    polars writes a JSON number it reads as text, the JSON Lines corpus reader's usual path. NaN, the
    float that stands for a missing value, is a missing id.
    """
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    if not pa.types.is_floating(ids.type):
        return ids.cast(pa.string())
    texts = ids.cast(pa.string())  # the shortest round trip, but with an exponent past a few digits
    spelt = pc.fill_null(pc.match_substring(texts, "e"), False)
    if pc.any(spelt).as_py():
        values = texts.to_pylist()
        for i in np.flatnonzero(spelt.to_numpy(zero_copy_only=False)):
            values[i] = format(Decimal(values[i]), "f")  # the same digits, written out
        texts = pa.array(values, pa.string())
    return pc.if_else(pc.fill_null(pc.is_nan(ids), False), pa.scalar(None, pa.string()), texts)


def _json_id(value: Any) -> str | None:
    """A JSON id as text, as polars writes it when it reads the column as text (the usual path)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        text: str | None = id_strings(pa.array([value], pa.float64()))[0].as_py()
        return text
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def _chunk(
    ids: pa.Array, texts: pa.Array, rows: int | np.ndarray, corrupt: pa.Array | None = None
) -> pa.Table:
    """A table of ``CHUNK_SCHEMA``; ``rows``: each row's 0-based row in its file, or the first's."""
    n = len(ids)
    if isinstance(rows, int):
        rows = np.arange(rows, rows + n, dtype=np.int64)
    return pa.table(
        {
            ID: id_strings(ids),
            TEXT: texts,
            ROW: pa.array(rows, pa.int64()),
            CORRUPT: corrupt if corrupt is not None else pa.nulls(n, pa.string()),
        }
    )


def _undecodable_id(source: SourceFile, config: TableConfig, raw: bytes, row: int) -> DataError:
    """An id that is not UTF-8 cannot key its document's row as the file spells it: it is refused, as a
    missing id is, naming the row (0-based ``row``, named 1-based) as the other corpus errors do."""
    return DataError(
        source.path,
        f"undecodable bytes {raw!r} (not UTF-8) in column {config.id_column!r} at row {row + 1}; convert "
        "the file to UTF-8 or set 'encoding:' for it in the job file (e.g. latin-1, cp1252)",
    )


def _require(names: Sequence[str], config: TableConfig, where: str) -> None:
    columns = {"data.corpus.id_column": config.id_column, "data.corpus.text_column": config.text_column}
    missing = [f"{key} {name!r}" for key, name in columns.items() if name not in names]
    if missing:
        raise DataError(where, f"missing column: {', '.join(missing)}; columns are {', '.join(names)}")


def _utf8(encoding: str) -> bool:
    return encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig")


def unclosed_quote(config: TableConfig, source: SourceFile) -> int | None:
    """The line where a quoted CSV field opens and never closes, or None.

    A parser reads such a field to the end of the file, silently making one document of every row
    after it. Escaped quotes come in pairs, so only a file with an odd count of quote characters can
    hold one; only then is it parsed again, strictly, to find where (a quote inside an unquoted field
    also makes the count odd, and is text, not an error).
    """
    if source.reader != "csv" or not _utf8(config.encoding):
        return None
    fs, _ = filesystem(config.path)
    quotes = 0
    with inspected_bytes(fs, source) as stream:
        while block := stream.read(1 << 24):
            quotes += block.count(b'"')
    if quotes % 2 == 0:
        return None
    with inspected_bytes(fs, source) as stream:
        lines = (line.decode("utf-8", "replace") + "\n" for line in _lines(stream))
        reader = csv.reader(lines, strict=True)
        # The runaway field holds the rest of the file: past csv's default limit (128 KiB), it would
        # raise another error before the end of the data that names it.
        csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
        start = 1
        try:
            for _ in reader:
                start = reader.line_num + 1
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                return start
    return None


def _lines(stream: Any) -> Iterator[bytes]:
    rest = b""
    while block := stream.read(1 << 20):
        *lines, rest = (rest + block).split(b"\n")
        yield from lines
    if rest:
        yield rest


def read_piece(
    piece: Piece,
    config: TableConfig,
    readers: Sequence[Reader],
    chunk_rows: int,
    *,
    texts: bool = True,
) -> Iterator[pa.Table]:
    """The rows of one piece in tables of at most ``chunk_rows`` rows (``texts=False``: ids only).

    Texts stay bytes where the format gives bytes (CSV), so an undecodable text fails one row later
    and not the file here.
    """
    source = piece.source
    fs, _ = filesystem(config.path)
    if source.reader == "parquet":
        yield from _read_parquet(fs, piece, config, chunk_rows, texts)
    elif source.reader in ("csv", "tsv"):
        yield from _read_csv(fs, source, config, chunk_rows, texts)
    elif source.reader == "jsonl":
        yield from _read_jsonl(fs, source, config, chunk_rows)
    else:
        reader = next(r for r in readers if r.name == source.reader)
        frame = reader.read(Path(source.path), config.encoding)
        _require(frame.columns, config, source.path)
        # Ids as read: _chunk writes them as text by the rule every format follows.
        table = frame.select(pl.col(config.id_column), pl.col(config.text_column)).to_arrow()
        for start in range(0, max(len(table), 1), chunk_rows):
            part = table.slice(start, chunk_rows)
            if len(part):
                yield _chunk(part.column(0).combine_chunks(), part.column(1).combine_chunks(), start)


def _read_parquet(
    fs: pafs.FileSystem, piece: Piece, config: TableConfig, chunk_rows: int, texts: bool
) -> Iterator[pa.Table]:
    with fs.open_input_file(piece.source.path) as handle:
        parquet = pq.ParquetFile(handle)
        _require(parquet.schema_arrow.names, config, piece.source.path)
        start, stop = piece.row_groups if piece.row_groups is not None else (0, parquet.num_row_groups)
        columns = [config.id_column, config.text_column] if texts else [config.id_column]
        row = piece.first_row
        for batch in parquet.iter_batches(
            batch_size=chunk_rows, row_groups=range(start, stop), columns=columns
        ):
            ids = batch.column(config.id_column)
            text = batch.column(config.text_column) if texts else pa.nulls(len(batch), pa.string())
            yield _chunk(ids, text, row)
            row += len(batch)


@dataclass(frozen=True)
class _Skipped:
    """A CSV row with the wrong number of fields, which the parser skipped."""

    row: int | None  # 0-based in the file, as every chunk's rows; None where the parser does not say
    name: str
    reason: str


class _InvalidRows:
    """Collects CSV rows with the wrong number of fields, which the parser then skips."""

    def __init__(self) -> None:
        self.rows: list[_Skipped] = []  # not yet given error rows
        self.seen = 0  # in the whole file: names stay unique though ``rows`` is emptied batch by batch

    def __call__(self, row: Any) -> str:
        self.seen += 1
        # pyarrow counts rows from 1 at the header (rows, not lines: a quoted field may span lines, and
        # blank lines are not counted); read on one thread it always knows the count. The name stays
        # the count of bad rows, which names the error rows of earlier runs too.
        at = row.number - 2 if row.number is not None else None
        reason = (
            f"corrupt row: {row.actual_columns} fields, {row.expected_columns} expected: {row.text[:80]!r}"
        )
        self.rows.append(_Skipped(at, f"invalid row {self.seen}", reason))
        return "skip"


def _free_rows(first: int, n: int, skipped: Sequence[int]) -> np.ndarray:
    """The rows of a batch of ``n`` parsed rows: the first ``n`` from ``first`` that no skipped row holds.

    The parser leaves out the rows it skips, so without this every row after one in the same batch
    would be named one row too early (a null or duplicate id after a malformed row, say).
    """
    candidates = np.arange(first, first + n + len(skipped), dtype=np.int64)
    return candidates[~np.isin(candidates, np.asarray(skipped, dtype=np.int64))][:n]


def _decoded_ids(ids: pa.Array, rows: np.ndarray, source: SourceFile, config: TableConfig) -> pa.Array:
    """Ids read as bytes, as text: one that is not UTF-8 is refused naming its row, not the file."""
    try:
        return ids.cast(pa.string())
    except pa.ArrowInvalid:
        for raw, row in zip(ids.to_pylist(), rows, strict=True):
            try:
                (raw or b"").decode("utf-8")
            except UnicodeDecodeError:
                raise _undecodable_id(source, config, raw, int(row)) from None
        raise


def _read_csv(
    fs: pafs.FileSystem, source: SourceFile, config: TableConfig, chunk_rows: int, texts: bool
) -> Iterator[pa.Table]:
    invalid = _InvalidRows()
    if source.reader == "tsv":  # tab-separated exports rarely quote fields, and their texts hold quotes
        parse = pacsv.ParseOptions(delimiter="\t", quote_char=False, invalid_row_handler=invalid)
    else:
        parse = pacsv.ParseOptions(invalid_row_handler=invalid)
    # One thread: the parser then says where each row it skips was (measured no slower to read).
    read = pacsv.ReadOptions(
        encoding="utf8" if _utf8(config.encoding) else config.encoding, use_threads=False
    )
    # The header is read apart, with a handler that skips bad rows: the real one must see each once.
    header_parse = pacsv.ParseOptions(
        delimiter=parse.delimiter, quote_char=parse.quote_char, invalid_row_handler=lambda row: "skip"
    )
    _require(_csv_header(fs, source, header_parse, read), config, source.path)
    with inspected_bytes(fs, source) as stream:
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=read,
                parse_options=parse,
                convert_options=pacsv.ConvertOptions(
                    # Ids as bytes too: one that is not UTF-8 is then named by its row (_decoded_ids).
                    column_types={config.id_column: pa.binary(), config.text_column: pa.binary()},
                    include_columns=[config.id_column, config.text_column] if texts else [config.id_column],
                ),
            )
        except pa.ArrowInvalid as exc:
            raise DataError(source.path, f"cannot be read as {source.reader.upper()}: {exc}") from exc
        row = 0  # the next row of the file not yet given to a parsed or a skipped row
        pending: list[pa.Table] = []
        pending_rows = 0

        def add_invalid(last: bool) -> None:
            """Error rows for the rows the parser skipped before ``row`` and right after it (all at the
            ``last``); one further on may still have parsed rows before it, in the next batch."""
            nonlocal row, pending_rows
            due: list[_Skipped] = []
            rows: list[int] = []
            later: list[_Skipped] = []
            for skipped in invalid.rows:  # in file order
                at = skipped.row if skipped.row is not None else row
                if last or at <= row:
                    due.append(skipped)
                    rows.append(at)
                    row = max(row, at + 1)
                else:
                    later.append(skipped)
            invalid.rows = later
            if due:
                ids = pa.array([f"{source.relative}:{s.name}" for s in due])
                reasons = pa.array([s.reason for s in due])
                pending.append(_chunk(ids, pa.nulls(len(ids), pa.binary()), np.array(rows), reasons))
                pending_rows += len(ids)

        def full_chunks(last: bool) -> Iterator[pa.Table]:
            """Chunks of ``chunk_rows`` rows from the pending tables (and what is left, at the ``last``)."""
            nonlocal pending, pending_rows
            while pending_rows >= chunk_rows or (last and pending_rows):
                table = pa.concat_tables(pending, promote_options="permissive")
                yield table.slice(0, chunk_rows)
                rest = table.slice(chunk_rows)
                pending, pending_rows = ([rest] if len(rest) else []), len(rest)

        for batch in reader:
            rows = _free_rows(row, len(batch), [s.row for s in invalid.rows if s.row is not None])
            row = int(rows[-1]) + 1 if len(rows) else row
            ids = _decoded_ids(batch.column(config.id_column), rows, source, config)
            text = batch.column(config.text_column) if texts else pa.nulls(len(batch), pa.string())
            pending.append(_chunk(ids, text, rows))
            pending_rows += len(batch)
            add_invalid(last=False)
            yield from full_chunks(last=False)
        add_invalid(last=True)  # a file (or its end) of bad rows only: the parser yielded no batch for them
        yield from full_chunks(last=True)


def _csv_header(
    fs: pafs.FileSystem, source: SourceFile, parse: pacsv.ParseOptions, read: pacsv.ReadOptions
) -> list[str]:
    with inspected_bytes(fs, source) as stream:
        try:
            return list(pacsv.open_csv(stream, read_options=read, parse_options=parse).schema.names)
        except pa.ArrowInvalid as exc:
            raise DataError(source.path, f"cannot be read as {source.reader.upper()}: {exc}") from exc


def _read_jsonl(
    fs: pafs.FileSystem, source: SourceFile, config: TableConfig, chunk_rows: int
) -> Iterator[pa.Table]:
    """JSON Lines in blocks of whole lines; a block with a malformed line is parsed line by line."""
    schema = {config.id_column: pl.String, config.text_column: pl.String}
    row = 0
    seen_columns: set[str] = set()
    with inspected_bytes(fs, source) as stream:
        carry = b""
        while True:
            block = stream.read(_JSONL_BLOCK)
            data = carry + block
            if block:
                cut = data.rfind(b"\n") + 1
                data, carry = data[:cut], data[cut:]
            else:
                carry = b""
            lines = [line for line in data.split(b"\n") if line.strip()]
            if lines:
                if not _utf8(config.encoding):
                    lines = [line.decode(config.encoding).encode("utf-8") for line in lines]
                table = _parse_jsonl(lines, schema, config, source, row, seen_columns)
                for start in range(0, len(table), chunk_rows):
                    yield table.slice(start, chunk_rows)
                row += len(table)
            if not block:
                break
    if row and not {config.id_column, config.text_column} <= seen_columns:
        _require(sorted(seen_columns), config, source.path)


def _parse_jsonl(
    lines: list[bytes],
    schema: dict[str, Any],
    config: TableConfig,
    source: SourceFile,
    first_row: int,
    seen_columns: set[str],
) -> pa.Table:
    try:
        frame = pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema=schema)
        seen_columns.update(c for c in schema if frame[c].null_count() < len(frame))
        if len(frame) == len(lines):
            return _chunk(frame[config.id_column].to_arrow(), frame[config.text_column].to_arrow(), first_row)
    except Exception:  # polars names no line; find the bad ones below
        pass
    ids: list[str | None] = []
    text: list[str | None] = []
    corrupt: list[str | None] = []
    for offset, line in enumerate(lines):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except UnicodeDecodeError:  # a ValueError too: caught first, to say which field holds the bytes
            reason = _undecodable_line(line, config, source, first_row + offset)
            ids.append(f"{source.relative}:row {first_row + offset + 1}")  # 1-based, as people count
            text.append(None)
            corrupt.append(reason)
            continue
        except ValueError as exc:
            ids.append(f"{source.relative}:row {first_row + offset + 1}")  # 1-based, as people count
            text.append(None)
            corrupt.append(f"corrupt row: not a JSON object ({str(exc)[:80]})")
            continue
        seen_columns.update(k for k in schema if record.get(k) is not None)
        ids.append(_json_id(record.get(config.id_column)))  # as the polars path above writes it
        value = record.get(config.text_column)
        text.append(value if value is None or isinstance(value, str) else json.dumps(value))
        corrupt.append(None)
    return _chunk(
        pa.array(ids, pa.string()), pa.array(text, pa.string()), first_row, pa.array(corrupt, pa.string())
    )


def _undecodable_line(line: bytes, config: TableConfig, source: SourceFile, row: int) -> str:
    """Why a JSON line with bytes that are not UTF-8 is an error row; raises if its id holds them.

    A text that is not UTF-8 makes an error row, as in CSV; an id that is not UTF-8 is refused, as in
    CSV, naming the row and column. The bytes are kept as escapes to find which field holds them.
    """
    try:
        record = json.loads(line.decode("utf-8", "surrogateescape"))
    except ValueError:
        record = None
    if not isinstance(record, dict):
        return "corrupt row: undecodable bytes (not UTF-8), and not a JSON object"
    value = record.get(config.id_column)
    if isinstance(value, str) and _escaped(value):
        raise _undecodable_id(source, config, value.encode("utf-8", "surrogateescape"), row)
    fields = [
        repr(key.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
        for key, field in record.items()
        if _escaped(key) or _escaped(json.dumps(field, ensure_ascii=False))
    ]
    where = f" in column {', '.join(fields)}" if fields else ""
    return f"corrupt row: undecodable bytes (not UTF-8){where}"


def _escaped(text: str) -> bool:
    """Whether ``text`` holds bytes that ``surrogateescape`` kept (undecodable in the file)."""
    return any("\udc80" <= char <= "\udcff" for char in text)
