"""Reading tables of documents: Parquet, CSV, TSV and JSON Lines built in; more through a hook.

Readers return every column as read; the caller (scalecode.data) picks the id and text columns and
validates them. Text files are checked for undecodable bytes first, so the error can name the
line instead of failing somewhere inside a parser.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from scalecode.errors import DataError

ReadFunction = Callable[[Path, str], pl.DataFrame]

_CHUNK = 16 * 1024 * 1024


@dataclass(frozen=True)
class Reader:
    """A table format: its name (``format:`` in a job file), the suffixes it claims, and ``read``.

    ``read(path, encoding)`` returns a polars DataFrame holding at least the id and text columns.
    """

    name: str
    suffixes: tuple[str, ...]
    read: ReadFunction
    description: str = ""


def find_invalid_utf8(path: Path) -> tuple[int, int, bytes] | None:
    """Return (line, byte offset, offending bytes) of the first invalid UTF-8 sequence, or None.

    Reads in chunks cut at line ends, so a multi-byte character never straddles two chunks.
    """
    line = 1
    offset = 0
    carry = b""
    with path.open("rb") as handle:
        while True:
            block = handle.read(_CHUNK)
            data = carry + block
            if not data:
                return None
            if block:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    carry = data
                    continue
                data, carry = data[:cut], data[cut:]
            else:
                carry = b""
            try:
                data.decode("utf-8")
            except UnicodeDecodeError as exc:
                bad_line = line + data.count(b"\n", 0, exc.start)
                return bad_line, offset + exc.start, data[exc.start : exc.end]
            line += data.count(b"\n")
            offset += len(data)
            if not block:
                return None


def _text_source(path: Path, encoding: str) -> Path | io.BytesIO:
    """The file as UTF-8: checked in place when it claims UTF-8, transcoded when it declares another."""
    if encoding.lower().replace("-", "").replace("_", "") in ("utf8", "utf8sig"):
        bad = find_invalid_utf8(path)
        if bad is not None:
            line, offset, raw = bad
            raise DataError(
                str(path),
                f"line {line} (byte {offset}): undecodable bytes {raw!r} (not UTF-8); convert the file "
                "to UTF-8 or set 'encoding:' for it in the job file (e.g. latin-1, cp1252)",
            )
        return path
    try:
        text = path.read_bytes().decode(encoding)
    except LookupError as exc:
        raise DataError(str(path), f"unknown encoding {encoding!r}") from exc
    except UnicodeDecodeError as exc:
        raise DataError(str(path), f"byte {exc.start}: cannot be decoded as {encoding}") from exc
    return io.BytesIO(text.encode("utf-8"))


def read_parquet(path: Path, encoding: str) -> pl.DataFrame:
    return pl.read_parquet(path)


def read_csv(path: Path, encoding: str) -> pl.DataFrame:
    # Every column as text: ids keep leading zeros, and scores are parsed (with errors that name
    # the row) by scalecode.data, not guessed by the parser.
    return pl.read_csv(_text_source(path, encoding), infer_schema=False)


def read_tsv(path: Path, encoding: str) -> pl.DataFrame:
    # Tab-separated exports rarely quote fields, and their texts contain quote characters.
    return pl.read_csv(_text_source(path, encoding), separator="\t", quote_char=None, infer_schema=False)


def read_jsonl(path: Path, encoding: str) -> pl.DataFrame:
    source = _text_source(path, encoding)
    data = source.read_bytes() if isinstance(source, Path) else source.getvalue()
    # A byte-order mark (Windows editors write one) is not JSON; the CSV readers skip it themselves.
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        return pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
    except Exception:
        _first_bad_json_line(path, data)  # the parser's message names a character, not the line
        raise


def _first_bad_json_line(path: Path, data: bytes) -> None:
    """Raise a DataError naming the first line that is not a JSON object, if there is one."""
    for number, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(str(path), f"line {number}: not JSON ({exc.msg}): {line[:80]!r}") from None
        if not isinstance(value, dict):
            raise DataError(str(path), f"line {number}: not a JSON object: {line[:80]!r}")


BUILTIN_READERS = (
    Reader("parquet", (".parquet", ".pq"), read_parquet, "Apache Parquet"),
    Reader("csv", (".csv",), read_csv, "comma-separated values with a header row"),
    Reader("tsv", (".tsv", ".tab"), read_tsv, "tab-separated values with a header row"),
    Reader("jsonl", (".jsonl", ".ndjson"), read_jsonl, "one JSON object per line"),
)
