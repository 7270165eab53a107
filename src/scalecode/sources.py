"""Corpus files on any filesystem pyarrow reads, streamed in chunks of rows, never whole.

A corpus is a file or a folder of files, local or behind a URI (``s3://``, ``gs://``, ``hdfs://``:
whatever ``pyarrow.fs.FileSystem.from_uri`` knows, with the credentials the environment gives it).
Each file is read as a sequence of Arrow tables with the columns of ``CHUNK_SCHEMA``: the document's
id and text, its 0-based row within the file, and, for a row that could not be parsed at all (a
malformed JSON line, a CSV row with the wrong number of fields), the reason, so that it becomes an
error row instead of stopping the run or vanishing, and a digest of its bytes (``RAW``).

Parquet files are read by row group, and a big file is cut into pieces of whole row groups that
are read in parallel. CSV and TSV are parsed by pyarrow's streaming reader, JSON Lines line by line
in blocks, each decoded to UTF-8 and only as far as the file was when listed, in whole lines of its
text (``inspected_bytes``), so that a file that grows meanwhile is read as counted; formats added
through ``register_readers`` are read whole by their reader (local files only) and then cut into
chunks.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
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
# Of a corrupt row: a digest of its bytes in the file, so that its document hash (corpus.doc_hashes)
# changes with them; another malformed row later in its place is then coded anew, not taken as done.
RAW = "raw"
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
    # Its last line, without a newline when listed, was no whole row (``unfinished_line``): it is read
    # only if finished by the time the file is read, else left for the next run.
    unfinished: bool = False

    @property
    def version(self) -> str:
        """Changes when the file does (size or modification time), naming the shards coded from it."""
        key = f"{self.path}\0{self.size}\0{self.mtime_ns}".encode()
        return hashlib.sha256(key).hexdigest()[:10]


def _data_suffix(name: str) -> str:
    """A file's format suffix, under a compression suffix where it has one ("a.jsonl.gz": ".jsonl")."""
    path = PurePosixPath(name)
    if _codec(name.lower()) is not None:
        path = PurePosixPath(path.stem)
    return path.suffix.lower()


def _reader_for(name: str, readers: Sequence[Reader], fmt: str | None, where: str) -> str:
    if fmt is not None:
        if fmt not in {r.name for r in readers}:
            raise DataError(where, f"unknown format {fmt!r}; known: {', '.join(r.name for r in readers)}")
        return fmt
    suffix = _data_suffix(name)
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
        files = [
            e
            for e in entries
            if e.type == pafs.FileType.File
            and not any(part.startswith((".", "_")) for part in PurePosixPath(e.path).relative_to(base).parts)
        ]
        entries = [e for e in files if _data_suffix(e.path) in suffixes and not _compressed_parquet(e.path)]
        if files and not entries:
            # Files, none of them data: a wrong folder or format, not one awaiting its first file.
            shown = ", ".join(PurePosixPath(e.path).name for e in files[:3]) + (
                ", ..." if len(files) > 3 else ""
            )
            raise DataError(
                config.path,
                f"no files with suffix {', '.join(sorted(suffixes))} in this folder (it holds {shown})",
            )
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


def _compressed_parquet(path: str) -> bool:
    """Parquet compresses inside the file: a compressed Parquet file is not one the reader can read."""
    return _codec(path.lower()) is not None and _data_suffix(path) == ".parquet"


def _codec(path: str) -> str | None:
    return next((codec for suffix, codec in _CODECS if path.lower().endswith(suffix)), None)


def compression_of(path: str) -> str | None:
    """The codec a file's name says it is compressed with ("gzip" for a.jsonl.GZ), or None."""
    return _codec(path)


@contextmanager
def inspected_bytes(
    fs: pafs.FileSystem, source: SourceFile, encoding: str = "utf-8", errors: str = "strict"
) -> Iterator[Any]:
    """A line-based file's text as UTF-8 bytes, as it was when listed, for a reader to parse.

    Only the ``source.size`` bytes listed are read: rows appended since are left for the next run,
    which lists the file again, so the documents read are the documents counted. Of a file that
    changed since it was listed, only whole lines are read: its last line may be half written (a
    collector appending to it); the line the listed bytes end in is read to its newline where it
    has one by now, and else left for the next run. A last line without a newline in a file that
    has not changed is a normal last line (many files lack the newline), unless it is no whole row
    (``unfinished_line``): a collector may have flushed part of it before the file was listed.

    A file in another ``encoding`` than UTF-8 is decoded first (``errors`` as ``codecs`` takes it),
    and its lines are lines of its text: in UTF-16 or UTF-32 a newline is more than a byte, and a
    byte of one can be part of another character (``_Utf8``).

    A compressed file is cut at its listed compressed size, which is where a stream appended to
    (``gzip >>``, one member after another) ended when listed; the line it ends in is not finished,
    which would take decompressing past the cut. One rewritten since it was listed ends mid-stream
    there, and the decompressor refuses it (truncated stream): that run stops, and the next one,
    listing the file again, reads it whole.
    """
    whole_lines = source.unfinished or changed_since_inspection(fs, source)
    utf8 = _utf8(encoding)
    with fs.open_input_stream(source.path, compression=None) as raw:
        codec = _codec(source.path)
        # A CSV line listed with a quote open may go on over several lines: finished at the next
        # newline it would be a fragment of its field, so it waits whole for the next run.
        finish_line = whole_lines and codec is None and not (source.unfinished and source.reader == "csv")
        stream: Any = _Head(raw, source.size, finish_line=finish_line and utf8)
        if codec is not None:
            stream = pa.CompressedInputStream(pa.PythonFile(stream, mode="r"), codec)
        if not utf8:
            # Past the listed bytes the line is finished in the text, read on from the file itself.
            rest = raw if finish_line else None
            stream = _Utf8(stream, encoding, errors, rest=rest, final=not whole_lines)
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
    ids: pa.Array,
    texts: pa.Array,
    rows: int | np.ndarray,
    corrupt: pa.Array | None = None,
    raw: pa.Array | None = None,
) -> pa.Table:
    """A table of ``CHUNK_SCHEMA`` (``ID``, ``TEXT``, ``ROW``, ``CORRUPT``, ``RAW``); ``rows``: each row's
    0-based row in its file, or the first's."""
    n = len(ids)
    if isinstance(rows, int):
        rows = np.arange(rows, rows + n, dtype=np.int64)
    return pa.table(
        {
            ID: id_strings(ids),
            TEXT: texts,
            ROW: pa.array(rows, pa.int64()),
            CORRUPT: corrupt if corrupt is not None else pa.nulls(n, pa.string()),
            RAW: raw if raw is not None else pa.nulls(n, pa.binary()),
        }
    )


def _digest(raw: bytes) -> bytes:
    """The ``RAW`` of a corrupt row: a short digest of its bytes."""
    return hashlib.blake2b(raw, digest_size=16).digest()


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


def unfinished_line(config: TableConfig, source: SourceFile, fs: pafs.FileSystem | None = None) -> bool:
    """Whether the file as listed ends in a line its writer has not finished: one without a newline
    that cannot be a whole row. In JSON Lines that is a line that is not JSON (an object cut short
    never is); in CSV, one in which a quoted field opens and does not close; in CSV and TSV, a
    header that is the file's only line. A collector that
    flushes its buffer mid-line leaves such a line, and the next run finds it finished. A last line
    without a newline that is a whole row is read: many files end without one. A CSV line cut where
    no quote is open cannot be told from a finished one. Uncompressed UTF-8 files only: elsewhere a
    line's bytes are not simply the file's. ``fs``: the corpus's filesystem, where the caller has it.

    Only the bytes listed are judged, whatever the file holds by now."""
    if (
        source.reader not in ("csv", "tsv", "jsonl")
        or _codec(source.path) is not None
        or not _utf8(config.encoding)
    ):
        return False
    fs = fs if fs is not None else filesystem(config.path)[0]
    last = _last_line(fs, source)
    if last is None:
        return False
    start, line = last
    if not line.strip():
        return False
    if source.reader != "jsonl" and start == 0 and b"\r" not in line:
        # The header, and nothing after it: a writer that has flushed "id,te" so far would have the
        # file refused for a missing column. It holds no row, so waiting for its newline loses none.
        # (A file of CR line ends has no newline at all, and is whole lines.)
        return True
    if source.reader == "tsv":
        return False  # no quoting: any line is a whole row
    if source.reader == "jsonl":
        if start == 0:
            line = line.removeprefix(_BOM)
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            # Cut in the middle of a character, or a byte that is not UTF-8 in a finished line
            # (an error row, as anywhere else in the file).
            return exc.end == len(line) and exc.reason == "unexpected end of data"
        try:
            json.loads(text)
        except ValueError:
            return True
        return False
    if b'"' not in line:  # cheap first: a quote that opens on this line is a quote on it
        return False
    stray = _stray_quote(fs, source, config, listed=True)
    return stray is not None and stray[1] is None and stray[0] >= start


_TAIL_BLOCK = 1 << 16  # bytes read at a time from a file's end to find its last line
_LONGEST_LAST_LINE = 1 << 24  # a last line longer than this is not judged (nor held in memory)


def _last_line(fs: pafs.FileSystem, source: SourceFile) -> tuple[int, bytes] | None:
    """Where the listed file's last line starts, and its bytes after the last newline (b"" where the
    file ends in one); None where that line is longer than _LONGEST_LAST_LINE."""
    blocks: list[bytes] = []  # from the end backwards, joined once: a long line is not copied per block
    position = source.size
    with fs.open_input_file(source.path) as handle:
        while position > 0:
            if source.size - position >= _LONGEST_LAST_LINE:
                return None
            step = min(_TAIL_BLOCK, position)
            position -= step
            handle.seek(position)
            block = handle.read(step)
            cut = block.rfind(b"\n")
            if cut >= 0:
                return position + cut + 1, b"".join([block[cut + 1 :], *reversed(blocks)])
            blocks.append(block)
    return 0, b"".join(reversed(blocks))


def _stray_quote(
    fs: pafs.FileSystem, source: SourceFile, config: TableConfig, *, listed: bool = False
) -> tuple[int, int | None] | None:
    """Where, in the bytes the CSV reader parses, the first quoted field that is not read as written
    opens, and where it closes (None: never); None where every one is. ``listed``: in exactly the
    bytes listed (UTF-8), not in whole lines of a file that grew since, which leave its last out."""
    scan = _QuoteScan(ord(","))
    with contextlib.ExitStack() as stack:
        if listed:
            stream: Any = _Head(
                stack.enter_context(fs.open_input_stream(source.path, compression=None)), source.size
            )
        else:
            stream = stack.enter_context(_csv_text(fs, source, config))
        while not scan.stray and (block := stream.read(_SCAN_BLOCK)):
            scan.feed(block)
        scan.finish()
    return scan.stray


def unclosed_quote(config: TableConfig, source: SourceFile) -> int | None:
    """The line where a quoted CSV field opens and never closes, or None; raises a DataError naming
    both lines where such a field closes on a later line in the middle of a field.

    A parser reads such a field to its end, silently making one document of every row after it (to
    the end of the file, or to the next quote, a second stray one). Both are found in one pass over
    the file as the reader sees it (transcoded from ``encoding``), by ``_QuoteScan``. A quote inside
    an unquoted field (``a 27" screen``) is text; a field whose quote closes early on its own line
    (``"a"b``) is read as one field of one row, as the parser reads it, and is let be.
    """
    if source.reader != "csv":
        return None
    fs, _ = filesystem(config.path)
    stray = _stray_quote(fs, source, config)
    if stray is None:
        return None
    opened, closed = stray
    lines = _line_numbers(fs, source, config, [opened] if closed is None else [opened, closed])
    if closed is None:
        return lines[0]
    raise DataError(
        source.path,
        f"line {lines[0]}: a quoted field opens and its closing quote comes only on line {lines[1]}, "
        "followed by more text in the field, so it would take in every row between as one text; close "
        "the quote, or double it where it is part of the text",
    )


_SCAN_BLOCK = 1 << 24  # bytes of CSV scanned for quotes at once
_QUOTE, _LF, _CR = ord('"'), ord("\n"), ord("\r")
_SPACE, _TAB = ord(" "), ord("\t")
_BOM = b"\xef\xbb\xbf"


@contextmanager
def _csv_text(fs: pafs.FileSystem, source: SourceFile, config: TableConfig) -> Iterator[Any]:
    """The CSV's bytes as pyarrow's reader parses them: as listed, and as UTF-8 (an undecodable
    byte as U+FFFD: the reader refuses the file, not the scan of its quotes)."""
    with inspected_bytes(fs, source, config.encoding, errors="replace") as stream:
        yield stream


class _Utf8(_Filter):
    """A stream of text in ``encoding`` as UTF-8, as the readers parse it.

    Every byte of a character in an encoding such as UTF-16 can look like a quote, comma or newline;
    only the decoded text says where those are.

    ``rest``: where the file goes on after ``stream``, the bytes it held when listed: read to the
    newline that ends the line those end in, in the text (as ``_Head`` does in the bytes of a UTF-8
    file), and no further. ``final``: whether a character cut short where the bytes end is an error
    (a file as it was listed), or not (one changed since: it is part of a line still being written,
    which ``_WholeLines`` leaves for the next run).
    """

    def __init__(
        self, stream: Any, encoding: str, errors: str = "strict", *, rest: Any = None, final: bool = True
    ) -> None:
        super().__init__(stream)
        self._decoder = codecs.getincrementaldecoder(encoding)(errors)
        self._rest = rest
        self._final = final
        self._to_newline = False  # reading ``rest``: to the first newline only
        self._last = "\n"  # the last character decoded
        self._ready = b""
        self._ended = False

    def read(self, nbytes: int | None = -1) -> bytes:
        if nbytes is None or nbytes < 0:
            return b"".join(iter(lambda: self.read(_LINE_BLOCK), b""))
        while len(self._ready) < nbytes and not self._ended:
            self._ready += self._text(max(nbytes, _LINE_BLOCK)).encode("utf-8")
        data, self._ready = self._ready[:nbytes], self._ready[nbytes:]
        return data

    def _text(self, nbytes: int) -> str:
        """The text of the next ``nbytes`` bytes or fewer; at the end, what is left (``_ended``)."""
        block = self._stream.read(nbytes)
        if not block and self._rest is not None and not self._line_ended():
            self._stream, self._rest, self._to_newline = self._rest, None, True
            block = self._stream.read(nbytes)
        if not block:
            self._ended = True
            return self._decoder.decode(b"", final=True) if self._final else ""
        text = self._decoder.decode(block)
        if self._to_newline and (end := text.find("\n") + 1):
            self._ended = True  # what follows the newline was written since the file was listed
            text = text[:end]
        self._last = text[-1:] or self._last
        return text

    def _line_ended(self) -> bool:
        """Whether the text read so far ends a line: at a newline, and no character begun after it."""
        return self._last == "\n" and not self._decoder.getstate()[0]


class _QuoteScan:
    """Follows CSV text, block by block, as pyarrow's parser quotes it, and finds the first stray quote.

    A quote opens a quoted field only at the start of a field; in one, two quotes are one quote of
    text and one quote closes it; elsewhere a quote is text. Whether a run of quotes flips the state
    then depends on the state only through a reset: an odd run at a field's start flips it (opens or
    closes), an odd run elsewhere leaves the text unquoted (it closes a quoted field, or is text in an
    unquoted one), an even run changes nothing. So the state after every run is the parity of the
    flips since the last reset, and a block is followed in a few array operations over its quotes,
    not byte by byte in Python. ``stray``: (offset of the opening quote, offset of the quote that
    closes it inside a field on a later line, or None where it never closes), offsets in the text.
    A closing quote followed by more text on the line of its opening quote is let be: the parser
    reads that row as one (the quote ends its quoting, the rest is text), no row is taken in.

    The text is scanned in runs of whole lines, so that a run of quotes and the bytes around it are
    in one; the bytes after the last line break wait for the next block.
    """

    def __init__(self, delimiter: int) -> None:
        self.delimiter = delimiter
        self.quoted = False  # inside a quoted field where the text scanned ends
        self.opened = -1  # there: where its quote is
        self.offset = 0  # bytes of text scanned
        self.stray: tuple[int, int | None] | None = None
        self._tail: list[bytes] = []  # bytes after the last line break, not scanned yet
        self._start = True  # at the start of the text: a BOM there is not text

    def feed(self, block: bytes) -> None:
        if self._start:
            self._start = False
            if block.startswith(_BOM):  # pyarrow skips it; its field starts after it
                self.offset += len(_BOM)
                block = block[len(_BOM) :]
        # Any line break will do to cut at: a CR is searched for only in a block without a LF.
        last = (block.rfind(b"\n") if b"\n" in block else block.rfind(b"\r")) + 1
        if not last:
            self._tail.append(block)
            return
        view = memoryview(block)
        if self._tail:  # the line that straddles the blocks, scanned apart: no copy of the block
            first = (block.find(b"\n") if b"\n" in block else block.find(b"\r")) + 1
            self._scan(b"".join([*self._tail, view[:first]]), final=False)
            self._tail = []
            view = view[first:]
            last -= first
        self._scan(view[:last], final=False)
        if view[last:]:
            self._tail.append(bytes(view[last:]))

    def finish(self) -> None:
        """The text has ended: its last line, if it has no line break, and whether a quote is open."""
        if self._tail:
            self._scan(b"".join(self._tail), final=True)
            self._tail = []
        if self.stray is None and self.quoted:
            self.stray = (self.opened, None)

    def _scan(self, text: bytes | memoryview, final: bool) -> None:
        if self.stray is not None or not len(text):
            return
        base, self.offset = self.offset, self.offset + len(text)
        data = np.frombuffer(text, np.uint8)
        quotes = np.flatnonzero(data == _QUOTE)
        if not quotes.size:
            return
        cut = np.flatnonzero(np.diff(quotes) != 1) + 1  # runs of quotes: [starts, ends)
        starts = quotes[np.concatenate(([0], cut))]
        ends = quotes[np.concatenate((cut - 1, [quotes.size - 1]))] + 1
        odd = ((ends - starts) & 1).astype(bool)
        delimiter = self.delimiter
        before = data[np.maximum(starts - 1, 0)]
        # ``text`` starts at a line's start: a run there starts a field
        at_start = (starts == 0) | (before == delimiter) | (before == _LF) | (before == _CR)
        runs = np.arange(starts.size)
        flips = np.cumsum(odd & at_start)
        reset = np.maximum.accumulate(np.where(odd & ~at_start, runs, -1))
        since = np.where(reset >= 0, flips[np.maximum(reset, 0)], -int(self.quoted))
        quoted_after = ((flips - since) & 1).astype(bool)
        quoted_before = np.concatenate(([self.quoted], quoted_after[:-1]))
        # Quotes closing a quoted field that goes on after them: the field then reads on as text.
        closes = np.flatnonzero(quoted_before & odd)
        # What follows each, spaces and tabs skipped ("a\nb" , is a whole field, as the parser reads it).
        solid = np.flatnonzero(((data != _SPACE) & (data != _TAB)) | (data == delimiter))
        at = np.searchsorted(solid, ends[closes])
        after = data[solid[np.minimum(at, solid.size - 1)]] if solid.size else np.zeros(0, np.uint8)
        # Past the last solid byte: the text ends (a whole line's worth, or the file's last) there.
        goes_on = (at < solid.size) & (after != delimiter) & (after != _LF) & (after != _CR)
        early = closes[goes_on]
        self.quoted = bool(quoted_after[-1])
        if not early.size and not self.quoted:
            return
        opens = np.maximum.accumulate(np.where(~quoted_before & quoted_after, runs, -1))
        if early.size:
            opener = np.concatenate(([-1], opens[:-1]))[early]  # the run that opened each one's field
            where = np.where(opener >= 0, starts[np.maximum(opener, 0)], -1)
            breaks = np.flatnonzero((data == _LF) | (data == _CR))
            # The field spans lines: it opened in an earlier text, or a line break lies between.
            spans = (opener < 0) | (np.searchsorted(breaks, where) != np.searchsorted(breaks, starts[early]))
            if spans.any():
                first = int(np.argmax(spans))
                opened = base + int(where[first]) if opener[first] >= 0 else self.opened
                self.stray = (opened, base + int(ends[early[first]]) - 1)
                return
        if self.quoted and opens[-1] >= 0:
            self.opened = base + int(starts[opens[-1]])


def _line_numbers(
    fs: pafs.FileSystem, source: SourceFile, config: TableConfig, offsets: Sequence[int]
) -> list[int]:
    """The 1-based lines of the CSV text that hold each offset (into the text as ``_csv_text`` gives
    it), counting ``\\n``, ``\\r\\n`` and a lone ``\\r`` as line breaks, as the parser does."""
    found: dict[int, int] = {}
    with _csv_text(fs, source, config) as stream:
        seen, line, last = 0, 1, b""
        for offset in sorted(offsets):
            while seen < offset and (block := stream.read(min(_SCAN_BLOCK, offset - seen))):
                line += block.count(b"\n")
                if b"\r" in block:
                    line += block.count(b"\r") - block.count(b"\r\n")
                if last == b"\r" and block.startswith(b"\n"):
                    line -= 1  # a \r\n cut in two: counted at its \r
                seen, last = seen + len(block), block[-1:]
            found[offset] = line
    return [found[offset] for offset in offsets]


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
    digest: bytes  # of the row's text


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
        digest = _digest(row.text.encode("utf-8", "surrogatepass"))
        self.rows.append(_Skipped(at, f"invalid row {self.seen}", reason, digest))
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


# Bytes the CSV parser reads at once: a row must fit in about one. pyarrow's default, measured the
# fastest (larger blocks read slower: 4 MiB some 15% more CPU, 8 MiB 35%).
_CSV_BLOCK = 1 << 20
# The block tried first for a row longer than that: it fits any row whose text has MAX_TEXT_CHARS
# characters of 4 bytes (longer texts become error rows); a row longer still doubles it.
_CSV_LONG_BLOCK = 4 << 20
_CSV_BLOCK_MAX = 1 << 30  # the largest block tried


class _RowTooLong(Exception):
    """The parser met a row longer than its block, having made the rows before ``row`` (those in
    ``pending`` aside, not given yet) into tables."""

    def __init__(self, row: int, pending: np.ndarray) -> None:
        super().__init__(row)
        self.row = row
        self.pending = pending


@dataclass(frozen=True)
class _Given:
    """The rows of a file given already: every one before ``below`` but those in ``missing``."""

    below: int = 0
    missing: np.ndarray = field(default_factory=lambda: np.empty(0, np.int64))

    def new(self, chunk: pa.Table) -> pa.Table:
        rows = chunk.column(ROW).to_numpy()
        keep = (rows >= self.below) | np.isin(rows, self.missing)
        return chunk if keep.all() else chunk.filter(pa.array(keep))

    def joined(self, stop: _RowTooLong) -> _Given:
        """The rows given by this and a read that stopped at ``stop``."""
        below = max(self.below, stop.row)
        candidates = np.union1d(self.missing, stop.pending)
        candidates = candidates[candidates < below]
        here = (candidates >= self.below) | np.isin(candidates, self.missing)
        there = (candidates >= stop.row) | np.isin(candidates, stop.pending)
        return _Given(below, candidates[here & there])


def _read_csv(
    fs: pafs.FileSystem, source: SourceFile, config: TableConfig, chunk_rows: int, texts: bool
) -> Iterator[pa.Table]:
    """The rows of a CSV or TSV file in chunks of ``chunk_rows``.

    The parser reads the file in blocks, and a row must fit in about one. A longer row stops it; the
    file is then read again with blocks large enough for any text up to MAX_TEXT_CHARS characters
    (``_CSV_LONG_BLOCK``), or twice as large again, and only the rows not given yet are given: every
    row is numbered by its place in the file, however the blocks fall.
    """
    block, given = _CSV_BLOCK, _Given()
    while True:
        try:
            for chunk in _csv_chunks(fs, source, config, chunk_rows, texts, block):
                if len(rows := given.new(chunk)):
                    yield rows
            return
        except _RowTooLong as stop:
            if block >= _CSV_BLOCK_MAX:
                raise DataError(
                    source.path,
                    f"cannot be read as {source.reader.upper()}: a row is longer than "
                    f"{_CSV_BLOCK_MAX >> 20} MiB",
                ) from stop.__cause__
            given, block = given.joined(stop), max(block * 2, _CSV_LONG_BLOCK)


def _csv_chunks(
    fs: pafs.FileSystem, source: SourceFile, config: TableConfig, chunk_rows: int, texts: bool, block: int
) -> Iterator[pa.Table]:
    invalid = _InvalidRows()
    if source.reader == "tsv":  # tab-separated exports rarely quote fields, and their texts hold quotes
        parse = pacsv.ParseOptions(delimiter="\t", quote_char=False, invalid_row_handler=invalid)
    else:
        # A quoted field may hold line breaks: the parser's blocks are then cut where no quote is
        # open, not at any line break (one inside a quote put it out of sync with the blocks).
        parse = pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=invalid)
    # One thread: the parser then says where each row it skips was (measured no slower to read).
    # UTF-8: ``inspected_bytes`` decodes a file in another encoding, where it can tell its lines.
    read = pacsv.ReadOptions(encoding="utf8", use_threads=False, block_size=block)
    # The header is read apart, with a handler that skips bad rows: the real one must see each once.
    header_parse = pacsv.ParseOptions(
        delimiter=parse.delimiter,
        quote_char=parse.quote_char,
        newlines_in_values=parse.newlines_in_values,
        invalid_row_handler=lambda row: "skip",
    )
    header = _csv_header(fs, source, config, header_parse, read)
    if header is None:
        return  # no byte to read (yet): a file just created, or a header waiting for its newline
    _require(header, config, source.path)
    with inspected_bytes(fs, source, config.encoding) as stream:
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
            if _straddles(exc):
                raise _RowTooLong(0, np.empty(0, np.int64)) from exc
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
                raw = pa.array([s.digest for s in due], pa.binary())
                pending.append(_chunk(ids, pa.nulls(len(ids), pa.binary()), np.array(rows), reasons, raw))
                pending_rows += len(ids)

        def full_chunks(last: bool) -> Iterator[pa.Table]:
            """Chunks of ``chunk_rows`` rows from the pending tables (and what is left, at the ``last``)."""
            nonlocal pending, pending_rows
            while pending_rows >= chunk_rows or (last and pending_rows):
                table = pa.concat_tables(pending, promote_options="permissive")
                yield table.slice(0, chunk_rows)
                rest = table.slice(chunk_rows)
                pending, pending_rows = ([rest] if len(rest) else []), len(rest)

        batches = iter(reader)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                if not _straddles(exc):
                    raise
                held = [t.column(ROW).to_numpy() for t in pending]
                raise _RowTooLong(row, np.concatenate(held) if held else np.empty(0, np.int64)) from exc
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


def _straddles(exc: pa.ArrowInvalid) -> bool:
    """Whether the parser stopped at a row longer than its block ("straddling object straddles two
    block boundaries")."""
    return "straddl" in str(exc)


def _csv_header(
    fs: pafs.FileSystem,
    source: SourceFile,
    config: TableConfig,
    parse: pacsv.ParseOptions,
    read: pacsv.ReadOptions,
) -> list[str] | None:
    """The file's column names; None where the bytes read are none (a byte-order mark at most)."""
    with inspected_bytes(fs, source, config.encoding) as stream:
        try:
            return list(pacsv.open_csv(stream, read_options=read, parse_options=parse).schema.names)
        except pa.ArrowInvalid as exc:
            if _straddles(exc):
                raise _RowTooLong(0, np.empty(0, np.int64)) from exc
            if str(exc) == "Empty CSV file":  # the parser's words for no bytes: no rows
                return None
            if "cannot infer number of columns" in str(exc):
                # No newline in the first block: a header alone without its newline (in a compressed
                # or re-encoded file, which is read whole), which is no rows; or a header longer than
                # a block, read again with larger blocks as a long row is.
                if _shorter_than(fs, source, config, read.block_size):
                    return None
                raise _RowTooLong(0, np.empty(0, np.int64)) from exc
            raise DataError(source.path, f"cannot be read as {source.reader.upper()}: {exc}") from exc


def _shorter_than(fs: pafs.FileSystem, source: SourceFile, config: TableConfig, size: int) -> bool:
    """Whether the bytes a reader parses of ``source`` are fewer than ``size``."""
    with inspected_bytes(fs, source, config.encoding) as stream:
        return len(stream.read(size + 1)) <= size


def _read_jsonl(
    fs: pafs.FileSystem, source: SourceFile, config: TableConfig, chunk_rows: int
) -> Iterator[pa.Table]:
    """JSON Lines in blocks of whole lines; a block with a malformed line is parsed line by line.

    A row is numbered by its line in the file, blank lines counted (they are skipped, as documents),
    as people and editors count lines. A file in another encoding than UTF-8 is decoded before it
    is cut into lines: in UTF-16, say, a byte of a character can be a newline's.
    """
    schema = {config.id_column: pl.String, config.text_column: pl.String}
    line = 0  # 0-based line of the file where the next block starts
    seen_columns: set[str] = set()
    documents = 0
    with inspected_bytes(fs, source, config.encoding) as stream:
        carry = b""
        while True:
            block = stream.read(_JSONL_BLOCK)
            data = carry + block
            if block:
                cut = data.rfind(b"\n") + 1
                data, carry = data[:cut], data[cut:]
            else:
                carry = b""
            lines, rows = [], []
            for number, text in enumerate(data.split(b"\n"), start=line):
                if text.strip():
                    lines.append(text)
                    rows.append(number)
            if lines:
                table = _parse_jsonl(lines, np.array(rows, np.int64), schema, config, source, seen_columns)
                for start in range(0, len(table), chunk_rows):
                    yield table.slice(start, chunk_rows)
                documents += len(table)
            line += data.count(b"\n")
            if not block:
                break
    if documents and not {config.id_column, config.text_column} <= seen_columns:
        _require(sorted(seen_columns), config, source.path)


def _parse_jsonl(
    lines: list[bytes],
    rows: np.ndarray,
    schema: dict[str, Any],
    config: TableConfig,
    source: SourceFile,
    seen_columns: set[str],
) -> pa.Table:
    """``rows``: each line's 0-based line in the file."""
    try:
        frame = pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema=schema)
        seen_columns.update(c for c in schema if frame[c].null_count() < len(frame))
        if len(frame) == len(lines):
            return _chunk(frame[config.id_column].to_arrow(), frame[config.text_column].to_arrow(), rows)
    except Exception:  # polars names no line; find the bad ones below
        pass
    ids: list[str | None] = []
    text: list[str | None] = []
    corrupt: list[str | None] = []
    raw: list[bytes | None] = []
    for line, row in zip(lines, rows.tolist(), strict=True):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except UnicodeDecodeError:  # a ValueError too: caught first, to say which field holds the bytes
            reason = _undecodable_line(line, config, source, row)
        except ValueError as exc:
            reason = f"corrupt row: not a JSON object ({str(exc)[:80]})"
        else:
            seen_columns.update(k for k in schema if record.get(k) is not None)
            ids.append(_json_id(record.get(config.id_column)))  # as the polars path above writes it
            value = record.get(config.text_column)
            text.append(value if value is None or isinstance(value, str) else json.dumps(value))
            corrupt.append(None)
            raw.append(None)
            continue
        ids.append(f"{source.relative}:row {row + 1}")  # 1-based, as people count
        text.append(None)
        corrupt.append(reason)
        raw.append(_digest(line))
    return _chunk(
        pa.array(ids, pa.string()),
        pa.array(text, pa.string()),
        rows,
        pa.array(corrupt, pa.string()),
        pa.array(raw, pa.binary()),
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
