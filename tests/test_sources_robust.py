"""Corpus files that read wrong without a word: stray quotes, quoted line breaks and long rows in CSV,
line numbers and encodings of JSON Lines, and a malformed row that takes another's place."""

from __future__ import annotations

import csv
import io
import random

import polars as pl
import pytest

from scalecode import sources
from scalecode.config import TableConfig
from scalecode.corpus import doc_hashes
from scalecode.data import inspect_corpus
from scalecode.errors import DataError
from scalecode.readers import BUILTIN_READERS
from scalecode.sources import Piece, list_sources, read_piece

READERS = list(BUILTIN_READERS)


def rows_of(path, chunk_rows=100, **kwargs) -> pl.DataFrame:
    """Every row of a corpus file as the coding tasks read it (no checks first)."""
    table = TableConfig(path=str(path), **kwargs)
    (source,) = list_sources(table, READERS)
    return pl.concat(pl.from_arrow(c) for c in read_piece(Piece(source), table, READERS, chunk_rows))


def refusal(path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        inspect_corpus(TableConfig(path=str(path), **kwargs), READERS)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    return message


def csv_rows(rows: list[str]) -> bytes:
    return ("\n".join(["id,text", *rows]) + "\n").encode()


# A. A stray quote ----------------------------------------------------------------------------------

NEVER_CLOSES = r"line {}: a quoted field opens and never closes, so it would take in every row after it"
CLOSES_LATER = r"line {}: a quoted field opens and its closing quote comes only on line {}, followed by more"


def ten_rows(**changes: str) -> list[str]:
    rows = [f"d{i},text {i}" for i in range(1, 11)]
    for key, row in changes.items():
        rows[int(key[1:]) - 1] = row
    return rows


STRAY = {
    # An inch mark is text; the quote of d7 opens a field that never closes: the count of quotes is even.
    "inch mark and a quote that never closes": (
        csv_rows(ten_rows(d3='d3,a 27" screen', d7='d7,"Maybe later')),
        "utf-8",
        NEVER_CLOSES.format(8),
    ),
    "BOM": (
        b"\xef\xbb\xbf" + csv_rows(ten_rows(d3='d3,a 27" screen', d7='d7,"Maybe later')),
        "utf-8",
        NEVER_CLOSES.format(8),
    ),
    # The second stray quote closes the first one's field in the middle of d7's text.
    "two stray quotes": (
        csv_rows(ten_rows(d2='d2,"I think so, he said', d7='d7,"Maybe later')),
        "utf-8",
        CLOSES_LATER.format(3, 8),
    ),
    "two stray quotes, CRLF": (
        csv_rows(ten_rows(d2='d2,"I think so, he said', d7='d7,"Maybe later')).replace(b"\n", b"\r\n"),
        "utf-8",
        CLOSES_LATER.format(3, 8),
    ),
    "latin-1": (
        "\n".join(["id,text", *[f"d{i},caf\xe9 {i}" for i in range(1, 8)]])
        .replace("d2,caf", 'd2,"caf')
        .encode("latin-1")
        + b"\n",
        "latin-1",
        NEVER_CLOSES.format(3),
    ),
    # In UTF-16 the bytes of 'Ċ' (U+010A) hold a newline's; only the decoded text says where lines are.
    "utf-16": (
        'id,text\nd1,Ċ one\nd2,"Ċ two\nd3,three\nd4,four\n'.encode("utf-16"),
        "utf-16",
        NEVER_CLOSES.format(3),
    ),
}


@pytest.mark.parametrize("case", list(STRAY))
def test_a_stray_quote_that_would_merge_rows_is_refused_naming_file_and_line(tmp_path, case):
    content, encoding, message = STRAY[case]
    (tmp_path / "a.csv").write_bytes(content)
    assert message in refusal(tmp_path / "a.csv", encoding=encoding)


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64])
def test_a_stray_quote_is_found_wherever_the_scanned_blocks_fall(tmp_path, monkeypatch, block):
    monkeypatch.setattr(sources, "_SCAN_BLOCK", block, raising=False)
    for case in ("inch mark and a quote that never closes", "two stray quotes", "two stray quotes, CRLF"):
        content, encoding, message = STRAY[case]
        (tmp_path / "a.csv").write_bytes(content)
        assert message in refusal(tmp_path / "a.csv", encoding=encoding), case


def first_stray_quote(text: str) -> tuple[int, int | None] | None:
    """Character by character, as pyarrow's parser quotes (checked against it): where the first quoted
    field opens that closes in the middle of a field on a later line, and where; or never closes."""
    state, opened, i = "start", -1, 0
    while i < len(text):
        char = text[i]
        if state == "quoted":
            if char == '"':
                if text[i + 1 : i + 2] == '"':
                    i += 2
                    continue
                state = "field"
                # Spaces and tabs after it stay in the field, which may still end there.
                if text[i + 1 :].lstrip(" \t")[:1] not in ("", ",", "\n", "\r") and any(
                    c in text[opened:i] for c in "\r\n"
                ):
                    return opened, i
        elif char in ",\r\n":
            state = "start"
        elif char == '"' and state == "start":
            state, opened = "quoted", i
        else:
            state = "field"
        i += 1
    return (opened, None) if state == "quoted" else None


def test_the_quote_scan_follows_the_parser_character_by_character():
    rnd = random.Random(7)
    for _ in range(3000):
        text = "".join(rnd.choice('aa,"""\n\r ') for _ in range(rnd.randint(1, 30)))
        scan = sources._QuoteScan(ord(","))
        data, at = text.encode(), 0
        while at < len(data):
            scan.feed(data[at : at + (size := rnd.randint(1, 9))])
            at += size
        scan.finish()
        assert scan.stray == first_stray_quote(text), repr(text)


VALID = {
    "doubled quotes": (
        b'id,text\n1,"she said ""no"", twice"\n2,""""\n3,""\n',
        ['she said "no", twice', '"', ""],
    ),
    "quoted line breaks": (b'id,text\n1,"one\ntwo\r\nthree"\n2,x\n', ["one\ntwo\r\nthree", "x"]),
    "BOM and quoted header": (b'\xef\xbb\xbf"id","text"\n"1","a"\n"2","b"\n', ["a", "b"]),
    "quotes inside unquoted fields": (
        b'id,text\n1,a 27" screen\n2,5\'11" tall\n3,x"\n',
        ['a 27" screen', "5'11\" tall", 'x"'],
    ),
    # The parser reads it as one field of one row ('ab'): no row is taken in.
    "a quote closing early on its line": (b'id,text\n1,"a"b\n2,c\n', ["ab", "c"]),
    "CR line ends": (b'id,text\r1,"x\ry"\r2,z\r', ["x\ry", "z"]),
    "last line without newline": (b'id,text\n1,"a\nb"\n2,"c"', ["a\nb", "c"]),
    # Spaces or tabs after a closing quote: the parser keeps them in the field, and the field ends there.
    "blanks after a multi-line field": (
        b'id,text\n1,"line one\nline two" \n2,"a\nb"\t\n3,ok\n',
        ["line one\nline two ", "a\nb\t", "ok"],
    ),
    "blanks after a multi-line field, then a delimiter": (
        b'id,text,x\n1,"a\nb" ,z\n2,ok,y\n',
        ["a\nb ", "ok"],
    ),
}


@pytest.mark.parametrize("block", [1, 5, 1 << 24])
@pytest.mark.parametrize("case", list(VALID))
def test_valid_quoting_is_not_refused(tmp_path, monkeypatch, case, block):
    monkeypatch.setattr(sources, "_SCAN_BLOCK", block, raising=False)
    content, texts = VALID[case]
    (tmp_path / "a.csv").write_bytes(content)
    assert inspect_corpus(TableConfig(path=str(tmp_path / "a.csv")), READERS).n_documents == len(texts)
    assert [t.decode() for t in rows_of(tmp_path / "a.csv")["text"]] == texts


# B. Quoted line breaks across the parser's blocks, and rows longer than a block ---------------------


def test_quoted_line_breaks_across_parser_blocks_are_read(tmp_path, monkeypatch):
    # Some 2.5 MB, in blocks of 256 KiB: quoted texts with line breaks (some lines looking like a row)
    # fall across the block boundaries.
    monkeypatch.setattr(sources, "_CSV_BLOCK", 1 << 18, raising=False)
    texts = {
        f"d{i}": (
            f"Quote: {i}\nreply{i},agreed\nline three "
            if i % 2
            else f"line one of {i}\nline two, with comma\nline three "
        )
        + "x" * (i % 97)
        for i in range(24_000)
    }
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "text"])
    writer.writerows(texts.items())
    (tmp_path / "a.csv").write_text(buffer.getvalue())
    assert (tmp_path / "a.csv").stat().st_size > 2_000_000
    assert inspect_corpus(TableConfig(path=str(tmp_path / "a.csv")), READERS).n_documents == len(texts)
    rows = rows_of(tmp_path / "a.csv", chunk_rows=5000)
    assert rows["corrupt"].null_count() == len(rows)
    assert dict(zip(rows["id"], (t.decode() for t in rows["text"]), strict=True)) == texts
    assert rows["row"].to_list() == list(range(len(texts)))


def test_a_text_of_600_000_cjk_characters_is_read(tmp_path):
    long = "漢字テキスト" * 100_000  # 600,000 characters, 1.8 MB: longer than pyarrow's default block
    before = "p" * 500_000  # so that it straddles two of those blocks
    (tmp_path / "a.csv").write_text(f'id,text\na,{before}\nb,{long}\nc,"after\nit"\n', encoding="utf-8")
    assert inspect_corpus(TableConfig(path=str(tmp_path / "a.csv")), READERS).n_documents == 3
    rows = rows_of(tmp_path / "a.csv")
    assert rows["id"].to_list() == ["a", "b", "c"]
    assert [t.decode() for t in rows["text"]] == [before, long, "after\nit"]


def record_blocks(monkeypatch) -> list[int]:
    """The block sizes the CSV reader reads with, in order, as it reads."""
    blocks: list[int] = []
    read_with = getattr(sources, "_csv_chunks", None)

    def reading(*args):
        blocks.append(args[-1])
        return read_with(*args)

    monkeypatch.setattr(sources, "_csv_chunks", reading, raising=False)
    return blocks


def test_the_longest_text_read_takes_one_read_again_at_most(tmp_path, monkeypatch):
    from scalecode.inference import MAX_TEXT_CHARS

    longest = "😀" * MAX_TEXT_CHARS  # 4 bytes each: the longest row a text that is coded makes
    (tmp_path / "a.csv").write_text(f"id,text\na,x\nb,{longest}\nc,y\n", encoding="utf-8")
    blocks = record_blocks(monkeypatch)
    rows = rows_of(tmp_path / "a.csv")
    assert [len(t.decode()) for t in rows["text"]] == [1, MAX_TEXT_CHARS, 1]
    assert blocks == [1 << 20, 4 << 20]


def test_rows_longer_than_the_block_are_read_once_each_whatever_the_block(tmp_path, monkeypatch):
    # Rows of up to 2.5 MB read in blocks of 64 KiB at first: the parser stops at each longer row and
    # the file is read again with larger blocks; bad rows and chunks fall on both sides of each stop.
    lines, expected = [], []
    for i in range(3000):
        size = {500: 100_000, 1500: 300_000, 2500: 2_500_000}.get(i, 40 + i % 50)
        if i % 97 == 0:
            lines.append(f"{i},too,many")
        else:
            lines.append(f'{i},"{"w" * size}\n{i}"')
            expected.append(str(i))
    (tmp_path / "a.csv").write_text("id,text\n" + "\n".join(lines) + "\n")
    monkeypatch.setattr(sources, "_CSV_BLOCK", 1 << 30, raising=False)
    whole = rows_of(tmp_path / "a.csv", chunk_rows=7)
    monkeypatch.setattr(sources, "_CSV_BLOCK", 1 << 16, raising=False)
    monkeypatch.setattr(sources, "_CSV_LONG_BLOCK", 1 << 17, raising=False)
    blocks = record_blocks(monkeypatch)
    read = rows_of(tmp_path / "a.csv", chunk_rows=7)
    assert blocks == [1 << k for k in range(16, 22)]  # 64 KiB, doubled until the 2.5 MB row fits
    # The same rows, each once; in another order (a bad row comes after the rows of its block).
    assert read.sort("row").to_dicts() == whole.sort("row").to_dicts()
    assert read["row"].sort().to_list() == list(range(3000))
    parsed = read.filter(pl.col("corrupt").is_null())
    assert parsed["id"].to_list() == expected
    assert len(parsed.filter(pl.col("id") == "2500")["text"][0]) == 2_500_000 + len("\n2500")
    assert read["corrupt"].drop_nulls().len() == len(range(0, 3000, 97))


def test_tsv_fields_are_not_quoted(tmp_path):
    (tmp_path / "a.tsv").write_text('id\ttext\n1\t"never closed\n2\tb\n')
    assert [t.decode() for t in rows_of(tmp_path / "a.tsv")["text"]] == ['"never closed', "b"]


# C. JSON Lines rows are numbered by their line ----------------------------------------------------


@pytest.mark.parametrize("block", [16, 1 << 23])
def test_jsonl_rows_are_numbered_by_their_line_blank_lines_counted(tmp_path, monkeypatch, block):
    monkeypatch.setattr(sources, "_JSONL_BLOCK", block)
    (tmp_path / "a.jsonl").write_text(
        '{"id": "a", "text": "x"}\n\n   \n{"id": "b", "text": "y"}\n{"id": "c", "text": "broken\n'
        '{"text": "no id"}\n'
    )
    rows = rows_of(tmp_path / "a.jsonl")
    assert rows["id"].to_list() == ["a", "b", "a.jsonl:row 5", None]
    assert rows["row"].to_list() == [0, 3, 4, 5]
    assert "null or empty id in column 'id' at row 6" in refusal(tmp_path / "a.jsonl")


def test_jsonl_error_row_ids_stay_as_they_were_without_blank_lines(tmp_path):
    (tmp_path / "b.jsonl").write_text(
        '{"id": 1, "text": "a"}\n{"id": 2, "text": "b"}\noops\n{"id": 4, "text": "d"}\n'
    )
    rows = rows_of(tmp_path / "b.jsonl")
    assert rows["id"].to_list() == ["1", "2", "b.jsonl:row 3", "4"]
    assert rows["row"].to_list() == [0, 1, 2, 3]


# D. A different malformed row in the place of another ---------------------------------------------


def corrupt_hashes(path) -> dict[str, int]:
    rows = rows_of(path)
    table = rows.to_arrow()
    hashes = doc_hashes(
        table["id"].combine_chunks(), table["text"].combine_chunks(), table["raw"].combine_chunks()
    )
    return dict(zip(rows["id"], hashes.to_pylist(), strict=True))


def test_a_different_malformed_row_in_the_same_place_hashes_anew(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("id,text\nd1,ok\nd2,one,two\nd3,ok\n")
    first = corrupt_hashes(path)
    path.write_text("id,text\nd1,ok\nd2,fixed\nd3,ok\nd4,alpha,beta,gamma\n")
    second = corrupt_hashes(path)
    assert first["a.csv:invalid row 1"] != second["a.csv:invalid row 1"]  # one id, two rows
    assert first["d1"] == second["d1"] and first["d3"] == second["d3"]
    path.write_text("id,text\nd1,ok\nd2,one,two\nd3,ok\n")
    assert corrupt_hashes(path) == first  # the same malformed row: already coded

    jsonl = tmp_path / "a.jsonl"
    jsonl.write_text('{"id": "1", "text": "a"}\n{"id": 2, oops\n')
    before = corrupt_hashes(jsonl)["a.jsonl:row 2"]
    jsonl.write_text('{"id": "1", "text": "a"}\n{"id": 3, "text": \n')
    assert corrupt_hashes(jsonl)["a.jsonl:row 2"] != before


def test_rows_that_parse_hash_as_they_always_did(tmp_path):
    (tmp_path / "a.csv").write_text("id,text\nd1,ok\nd2,one,two\nd3,\n")
    table = rows_of(tmp_path / "a.csv").to_arrow()
    ids, texts = table["id"].combine_chunks(), table["text"].combine_chunks()
    with_raw = doc_hashes(ids, texts, table["raw"].combine_chunks()).to_pylist()
    without = doc_hashes(ids, texts).to_pylist()
    assert [a == b for a, b in zip(with_raw, without, strict=True)] == [True, True, False]


@pytest.mark.usefixtures("ray_local")
def test_a_rewritten_file_with_another_malformed_row_gets_its_error_row(spec, tmp_path):
    from scalecode.backend import Resources
    from scalecode.corpus import code_corpus

    corpus, out = tmp_path / "corpus", tmp_path / "out"
    corpus.mkdir()

    def run() -> int:
        table = TableConfig(path=str(corpus))
        info = inspect_corpus(table, READERS)
        summary = code_corpus(spec, Resources(batch_size=4), table, info.files, info.n_documents, out)
        return summary.errors

    (corpus / "a.csv").write_text("id,text\nd1,ok\nd2,one,two\nd3,ok\n")
    assert run() == 1
    (corpus / "a.csv").write_text("id,text\nd1,ok\nd2,fixed\nd3,ok\nd4,alpha,beta,gamma\n")
    assert run() == 1
    shards = pl.concat([pl.read_parquet(p) for p in sorted(out.glob("*.parquet"))], how="diagonal")
    errors = shards.filter(pl.col("id") == "a.csv:invalid row 1").sort("coded_at")["error"].to_list()
    assert errors == [
        "corrupt row: 3 fields, 2 expected: 'd2,one,two'",
        "corrupt row: 4 fields, 2 expected: 'd4,alpha,beta,gamma'",
    ]


# E. JSON Lines in UTF-16 --------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32"])
def test_jsonl_in_utf16_is_decoded_before_it_is_cut_into_lines(tmp_path, encoding):
    # 'Ċ' (U+010A) is the bytes 0a 01 in UTF-16-LE: a newline's byte inside a character.
    content = '{"id": "a", "text": "Ċ hello"}\n\n{"id": "b", "text": "world"}\n{"id": "c", oops\n'
    (tmp_path / "a.jsonl").write_bytes(content.encode(encoding))
    assert (
        inspect_corpus(TableConfig(path=str(tmp_path / "a.jsonl"), encoding=encoding), READERS).n_documents
        == 3
    )
    rows = rows_of(tmp_path / "a.jsonl", encoding=encoding)
    assert rows["id"].to_list() == ["a", "b", "a.jsonl:row 4"]
    assert rows["text"].to_list() == ["Ċ hello", "world", None]
