"""Reading and checking gold and corpus tables.

Gold documents are few and precious, so every problem in them is an error that names the file, the
rows and ids, and the column: a missing column, a null or duplicate id, a null or empty text, a label
outside the codebook, a score that is not a number. Corpus problems that concern one document (a null
or empty text, undecodable bytes in a text) become error rows at coding time instead, so a bad row
never stops a run of millions and is never dropped. Corpus ids key those rows, so they are checked
before coding as gold ids are: a null, repeated or undecodable id is an error naming its file and row.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.compute as pc

from scalecode import sources as src
from scalecode.backend import GoldSet
from scalecode.config import GoldConfig, TableConfig
from scalecode.errors import DataError, describe_examples
from scalecode.readers import Reader
from scalecode.sources import Piece, SourceFile, list_sources, read_piece
from scalecode.task import Task, TaskType

ROW = "_row"  # 1-based data row within its file, kept for error messages
FILE = "_file"


def data_files(path: str | Path, readers: Sequence[Reader], fmt: str | None = None) -> list[Path]:
    """The files behind a table: the file itself, or every file of a known format in a folder (sorted)."""
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(str(root), "no such file or folder")
    suffixes = {s for r in readers if fmt is None or r.name == fmt for s in r.suffixes}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise DataError(str(root), f"no files with suffix {', '.join(sorted(suffixes))} in this folder")
    return files


def reader_for(path: Path, readers: Sequence[Reader], fmt: str | None = None) -> Reader:
    """The reader named by ``format:``, or the one claiming the file's suffix."""
    if fmt is not None:
        for reader in readers:
            if reader.name == fmt:
                return reader
        raise DataError(str(path), f"unknown format {fmt!r}; known: {', '.join(r.name for r in readers)}")
    suffix = path.suffix.lower()
    for reader in readers:
        if suffix in reader.suffixes:
            return reader
    known = ", ".join(s for r in readers for s in r.suffixes)
    raise DataError(str(path), f"unknown file type {suffix!r}; known: {known} (or set 'format:')")


def read_table(table: TableConfig, readers: Sequence[Reader]) -> pl.DataFrame:
    """Read every file of a table into one frame, with the source file and row number of each row."""
    frames = []
    for file in data_files(table.path, readers, table.format):
        reader = reader_for(file, readers, table.format)
        try:
            frame = reader.read(file, table.encoding)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(str(file), f"cannot be read as {reader.name}: {exc}") from exc
        if table.id_column in frame.columns and frame[table.id_column].dtype.is_float():
            # File by file, before the files are joined: joined with text ids, polars would write 1.0.
            frame = frame.with_columns(_float_ids(frame[table.id_column]))
        frames.append(
            frame.with_columns(
                pl.lit(str(file)).alias(FILE), pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(ROW)
            )
        )
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


def _float_ids(ids: pl.Series) -> pl.Series:
    """Ids read as floats, as whole numbers where all are (a column made float by a missing value), so
    that a ``where`` condition still compares numbers; else as text by the corpus's rule. Either way
    1.0 reads as '1' in gold, corpus and predictions, and NaN is a missing id."""
    ids = ids.fill_nan(None)
    values = ids.drop_nulls()
    # Below 2**53 every whole float is exact, and its digits are the ones the corpus's rule writes.
    if ((values == values.floor()) & (values.abs() < 2.0**53)).all():
        return ids.cast(pl.Int64)
    return pl.Series(ids.name, src.id_strings(ids.to_arrow()), pl.String)


def _where(frame: pl.DataFrame, mask: pl.Series, id_column: str | None = None) -> list[str]:
    rows = frame.filter(mask)
    multi = frame[FILE].n_unique() > 1
    out = []
    for row in rows.iter_rows(named=True):
        place = f"{Path(row[FILE]).name} row {row[ROW]}" if multi else f"row {row[ROW]}"
        if id_column is not None and row.get(id_column) is not None:
            place += f" (id {row[id_column]!r})"
        out.append(place)
    return out


def require_columns(frame: pl.DataFrame, path: str, columns: dict[str, str]) -> None:
    """Fail naming each missing column and the job-file key that names it."""
    present = [c for c in frame.columns if c not in (ROW, FILE)]
    missing = [f"{col!r} ({key})" for key, col in columns.items() if col not in frame.columns]
    if missing:
        raise DataError(path, f"column {', '.join(missing)} not found; the columns are: {', '.join(present)}")


def check_ids(frame: pl.DataFrame, path: str, id_column: str) -> pl.DataFrame:
    """Ids as strings, none null or blank, none repeated."""
    ids = frame[id_column]
    frame = frame.with_columns((_float_ids(ids) if ids.dtype.is_float() else ids).cast(pl.String))
    values = frame[id_column]
    nulls = values.is_null() | (values.str.strip_chars() == "")
    if nulls.any():
        raise DataError(
            path, f"null or empty id in column {id_column!r} at {describe_examples(_where(frame, nulls))}"
        )
    dupes = values.is_duplicated()
    if dupes.any():
        # Named with their rows: ids that differ in the file can read alike as text (1 and 1.0).
        places: dict[str, list[str]] = {}
        for value, place in zip(values.filter(dupes).to_list(), _where(frame, dupes), strict=True):
            places.setdefault(value, []).append(place)
        named = [f"{value!r} ({', '.join(where)})" for value, where in places.items()]
        raise DataError(
            path, f"{len(places)} duplicate id(s) in column {id_column!r}: {describe_examples(named)}"
        )
    return frame


def load_gold(config: GoldConfig, task: Task, readers: Sequence[Reader], *, texts: bool = True) -> GoldSet:
    """Read and check the gold documents; every problem raises a DataError naming rows and ids.

    With ``texts=False`` (scoring stored predictions) the text column is neither needed nor read.
    """
    path = config.path
    frame = _select_rows(read_table(config, readers), config)
    columns = {"data.gold.id_column": config.id_column, "data.gold.label_column": config.label_column}
    if texts:
        columns["data.gold.text_column"] = config.text_column
    if config.group_column:
        columns["data.gold.group_column"] = config.group_column
    require_columns(frame, path, columns)
    frame = check_ids(frame, path, config.id_column)
    text_values = pl.Series([""] * frame.height)
    if texts:
        text_values = frame[config.text_column].cast(pl.String)
        empty = text_values.is_null() | (text_values.str.strip_chars().str.len_chars() == 0)
        if empty.any():
            raise DataError(
                path,
                f"null or empty text in column {config.text_column!r} at "
                f"{describe_examples(_where(frame, empty, config.id_column))}",
            )
    targets = _targets(frame, config, task)
    groups = None
    if config.group_column:
        group_values = frame[config.group_column].cast(pl.String)
        missing = group_values.is_null()
        if missing.any():
            raise DataError(
                path,
                f"null group in column {config.group_column!r} at "
                f"{describe_examples(_where(frame, missing, config.id_column))}",
            )
        groups = group_values.to_list()
    return GoldSet(
        task=task,
        ids=frame[config.id_column].to_list(),
        texts=text_values.to_list(),
        targets=targets,
        groups=groups,
    )


def _select_rows(frame: pl.DataFrame, config: GoldConfig) -> pl.DataFrame:
    """Apply the gold's ``where`` condition, then its seeded ``sample``, before any check."""
    if config.where is not None:
        try:
            frame = frame.filter(pl.sql_expr(config.where))
        except pl.exceptions.PolarsError as exc:
            raise DataError(
                config.path, f"data.gold.where {config.where!r} cannot be applied: {exc}"
            ) from None
        if frame.is_empty():
            raise DataError(config.path, f"no row satisfies data.gold.where {config.where!r}")
    if config.sample is not None and config.sample < frame.height:
        frame = frame.sample(config.sample, seed=config.sample_seed).sort(FILE, ROW)
    return frame


def _targets(frame: pl.DataFrame, config: GoldConfig, task: Task) -> list[Any]:
    path, column = config.path, config.label_column
    values = frame[column]
    null = values.is_null()
    if null.any():
        raise DataError(
            path,
            f"no code in column {column!r} at {describe_examples(_where(frame, null, config.id_column))}",
        )
    if task.type is TaskType.REGRESSION:
        return _scores(frame, config, task)
    codebook = task.label_names
    if task.type is TaskType.CLASSIFICATION:
        labels = values.cast(pl.String)
        bad = ~labels.is_in(codebook)
        if bad.any():
            found = labels.filter(bad).unique(maintain_order=True).to_list()
            raise DataError(
                path,
                f"label(s) {describe_examples([repr(v) for v in found])} in column {column!r} are not in the "
                f"codebook ({', '.join(codebook)}); first at "
                f"{describe_examples(_where(frame, bad, config.id_column), 3)}",
            )
        values_list: list[Any] = labels.to_list()
        return values_list
    # multi-label: a list column, or one string with a separator
    if values.dtype == pl.String:
        if config.label_separator is None:
            raise DataError(
                path,
                f"column {column!r} holds strings; for multi-label gold give a list column or set "
                "data.gold.label_separator (e.g. ';')",
            )
        sets = [[p.strip() for p in v.split(config.label_separator) if p.strip()] for v in values.to_list()]
    elif isinstance(values.dtype, pl.List):
        sets = [[str(p) for p in v] for v in values.to_list()]
    else:
        raise DataError(path, f"column {column!r} ({values.dtype}) is neither a list nor a string")
    unknown = sorted({label for labels in sets for label in labels if label not in codebook})
    if unknown:
        rows = pl.Series([any(label in unknown for label in labels) for labels in sets])
        raise DataError(
            path,
            f"label(s) {describe_examples([repr(v) for v in unknown])} in column {column!r} are not in the "
            f"codebook ({', '.join(codebook)}); first at "
            f"{describe_examples(_where(frame, rows, config.id_column), 3)}",
        )
    return [tuple(sorted(set(labels), key=codebook.index)) for labels in sets]


def _scores(frame: pl.DataFrame, config: GoldConfig, task: Task) -> list[float]:
    path, column = config.path, config.label_column
    raw = frame[column]
    if raw.dtype == pl.String:
        numbers = raw.str.strip_chars().cast(pl.Float64, strict=False)
    else:
        numbers = raw.cast(pl.Float64, strict=False)
    bad = numbers.is_null() | ~numbers.is_finite()
    if bad.any():
        examples = [
            f"{where}: {value!r}"
            for where, value in zip(
                _where(frame, bad, config.id_column), raw.filter(bad).to_list(), strict=True
            )
        ]
        raise DataError(
            path, f"score in column {column!r} is not a finite number at {describe_examples(examples)}"
        )
    scores = numbers.to_list()
    if task.scale is not None:
        low, high = task.scale.min, task.scale.max
        outside = pl.Series([not (low <= s <= high) for s in scores])
        if outside.any():
            raise DataError(
                path,
                f"score outside the task's scale [{low}, {high}] at "
                f"{describe_examples(_where(frame, outside, config.id_column))}",
            )
    return [float(s) for s in scores]


@dataclass(frozen=True)
class CorpusInfo:
    """What the driver checked about the corpus before coding it."""

    files: list[SourceFile]
    rows: dict[str, int]  # a file's name under the corpus root -> its documents
    # Files whose last line was unfinished when listed (sources.unfinished_line): counted, but read
    # only if finished by the time it is read.
    unfinished: list[str] = field(default_factory=list)

    @property
    def n_documents(self) -> int:
        return sum(self.rows.values())


_ID_CHUNK = 131_072  # rows of ids read at once: larger chunks raise the peak with the corpus size


def inspect_corpus(config: TableConfig, readers: Sequence[Reader]) -> CorpusInfo:
    """Count the documents and check the ids (none null, none repeated), file by file, streaming.

    Only ids are read where the format allows, and only a 64-bit hash of each is kept, spilled to
    disk in 256 parts by its first byte; each part is then checked alone, so memory stays flat
    however large the corpus. Hashes that repeat are checked against the ids themselves.
    """
    files = list_sources(config, readers)
    fs, _ = src.filesystem(config.path)  # once: on an object store, opening one costs a request
    rows: dict[str, int] = {}
    spill = tempfile.TemporaryDirectory(prefix="scalecode-ids-")
    hashes = _HashParts(Path(spill.name))
    unfinished = []
    for i, listed in enumerate(files):
        source, n = listed, 0
        if src.unfinished_line(config, listed, fs):
            # Read as a run reads it: without the unfinished line, or with it where it is finished by
            # now (a JSON line is, at its newline). Not counted beforehand: then never coded, it would
            # count as coded, and every run would start the backend to code it.
            source = files[i] = dataclasses.replace(listed, unfinished=True)
            unfinished.append(source.relative)
        elif (line := src.unclosed_quote(config, source)) is not None:
            raise DataError(
                source.path,
                f"line {line}: a quoted field opens and never closes, so it would take in every row after "
                "it; close the quote, or double it where it is part of the text",
            )
        try:
            for chunk in read_piece(Piece(source), config, readers, _ID_CHUNK, texts=False):
                parsed = chunk.filter(pc.is_null(chunk.column(src.CORRUPT)))  # corrupt rows become error rows
                ids = parsed.column(src.ID)
                missing = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(ids), ""), True)
                if pc.any(missing).as_py():
                    at = parsed.filter(missing).column(src.ROW).to_pylist()
                    rows_at = describe_examples([f"row {r + 1}" for r in at])
                    raise DataError(
                        source.path, f"null or empty id in column {config.id_column!r} at {rows_at}"
                    )
                hashes.add(pl.Series(ids).hash().to_numpy())
                n += len(chunk)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(source.path, f"cannot be read: {exc}") from exc
        rows[source.relative] = n
    with spill:
        repeated = hashes.repeated()
    if repeated.size:
        _report_duplicate_ids(repeated, files, config, readers)
    return CorpusInfo(files=files, rows=rows, unfinished=unfinished)


class _HashParts:
    """64-bit hashes kept on disk in 256 files by their first byte, each small enough to sort alone."""

    def __init__(self, folder: Path) -> None:
        self.paths = [folder / f"{part:02x}" for part in range(256)]
        for path in self.paths:
            path.touch()

    def add(self, hashes: np.ndarray) -> None:
        parts = (hashes >> np.uint64(56)).astype(np.uint8)
        order = np.argsort(parts, kind="stable")
        ordered, bounds = hashes[order], np.searchsorted(parts[order], np.arange(257))
        for part in np.flatnonzero(np.diff(bounds)):
            with self.paths[part].open("ab") as handle:
                handle.write(ordered[bounds[part] : bounds[part + 1]].tobytes())

    def repeated(self) -> np.ndarray:
        """The hashes that occur more than once."""
        found = []
        for path in self.paths:
            part = np.fromfile(path, dtype=np.uint64)
            part.sort()
            found.append(np.unique(part[1:][part[1:] == part[:-1]]))
        return np.concatenate(found)


def _report_duplicate_ids(
    repeated: np.ndarray, files: Sequence[SourceFile], config: TableConfig, readers: Sequence[Reader]
) -> None:
    places: dict[str, list[str]] = {}  # id -> where it occurs; only ids whose hash repeats
    for source in files:
        for chunk in read_piece(Piece(source), config, readers, _ID_CHUNK, texts=False):
            ids = pl.Series(chunk.column(src.ID))
            rows = chunk.column(src.ROW).to_numpy()
            for i in np.flatnonzero(np.isin(ids.hash().to_numpy(), repeated)):
                places.setdefault(ids[int(i)], []).append(f"{source.relative} row {int(rows[i]) + 1}")
    duplicated = [f"{i!r} ({', '.join(p)})" for i, p in places.items() if len(p) > 1]
    if duplicated:
        raise DataError(
            config.path,
            f"{len(duplicated)} duplicate id(s) in column {config.id_column!r}: "
            f"{describe_examples(duplicated)}",
        )
