"""``scalecode validate`` refuses what ``plan`` and ``run`` would refuse at once about the data: an
unknown format or encoding, and columns the job names that the first file lacks, read from the
file's first lines or metadata only."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from scalecode.cli import cli
from scalecode.config import load_job
from scalecode.data import load_gold
from scalecode.errors import ConfigError, DataError


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gold.csv").write_text("id,text,score,speaker\n1,good day,3,a\n2,bad day,-1,b\n")
    (tmp_path / "lex.txt").write_text("good\t2.0\nbad\t-2.0\n")
    return tmp_path


def job(gold: str = "path: gold.csv, label_column: score", corpus: str | None = None) -> str:
    data = f"  gold: {{{gold}}}\n" + (f"  corpus: {{{corpus}}}\n" if corpus else "")
    return (
        textwrap.dedent("""\
        task: {type: regression, scale: {min: -4, max: 4}}
        data:
        """)
        + data
        + textwrap.dedent("""\
        backends:
          - {name: lex, plugin: lexicon, params: {lexicon: lex.txt}}
        output: {dir: out}
        """)
    )


def problems(workdir: Path, plugins, text: str) -> dict[str, str]:
    (workdir / "job.yaml").write_text(text)
    with pytest.raises(ConfigError) as info:
        load_job(workdir / "job.yaml", plugins)
    return {key: message for key, message, _ in info.value.problems}


def test_the_reviewed_job_is_invalid(workdir):
    """It validated, then plan and run refused it at once."""
    (workdir / "job.yaml").write_text(
        job("path: gold.csv, label_column: scor, group_column: gruop, format: parqet, encoding: nonsense-enc")
    )
    result = CliRunner().invoke(cli, ["validate", "job.yaml"])
    assert result.exit_code == 1
    assert "data.gold.format: unknown format 'parqet'" in result.output
    assert "did you mean 'parquet'?" in result.output
    assert "data.gold.encoding: unknown encoding 'nonsense-enc'" in result.output


def test_missing_gold_columns_name_the_file_and_the_keys(workdir, plugins):
    found = problems(workdir, plugins, job("path: gold.csv, label_column: scor, group_column: gruop"))
    assert list(found) == ["data.gold.label_column"]
    message = found["data.gold.label_column"]
    assert "gold.csv" in message
    assert "'scor' (data.gold.label_column)" in message
    assert "'gruop' (data.gold.group_column)" in message
    assert "the columns are: id, text, score, speaker" in message


def test_validate_and_the_run_give_the_same_message(workdir, plugins):
    found = problems(workdir, plugins, job("path: gold.csv, label_column: scor"))
    (workdir / "job.yaml").write_text(job())
    loaded = load_job(workdir / "job.yaml", plugins)
    assert loaded.config.data.gold is not None
    config = loaded.config.data.gold.model_copy(update={"label_column": "scor"})
    with pytest.raises(DataError) as info:
        load_gold(config, loaded.task, plugins.readers)
    assert found["data.gold.label_column"] == str(info.value)


@pytest.mark.parametrize("suffix", ["csv", "tsv", "jsonl", "parquet"])
def test_missing_corpus_text_column_in_each_format(workdir, plugins, suffix):
    folder = workdir / "corpus"
    folder.mkdir()
    frame = pl.DataFrame({"id": ["1", "2"], "body": ["a", "b"]})
    target = folder / f"part-0.{suffix}"
    {
        "csv": frame.write_csv,
        "tsv": lambda p: frame.write_csv(p, separator="\t"),
        "jsonl": frame.write_ndjson,
        "parquet": frame.write_parquet,
    }[suffix](target)
    found = problems(workdir, plugins, job(corpus="path: corpus"))
    assert list(found) == ["data.corpus.text_column"]
    assert str(target) in found["data.corpus.text_column"]
    assert "'text' (data.corpus.text_column) not found" in found["data.corpus.text_column"]
    # With the right column named, the same files are valid.
    (workdir / "job.yaml").write_text(job(corpus="path: corpus, text_column: body"))
    assert load_job(workdir / "job.yaml", plugins).config.data.corpus is not None


def test_valid_files_in_other_encodings_and_forms_pass(workdir, plugins):
    # A byte-order mark, a latin-1 header, JSON Lines whose first object leaves out a key.
    (workdir / "bom.csv").write_bytes(b"\xef\xbb\xbfid,text,score\n1,good,3\n")
    (workdir / "latin.csv").write_bytes("id,texte_é,score\n1,bon,3\n".encode("latin-1"))
    (workdir / "gold.jsonl").write_text(
        "\n".join(json.dumps(r) for r in [{"id": 1, "text": "a"}, {"id": 2, "text": "b", "score": 1}])
    )
    for gold in (
        "path: bom.csv, label_column: score",
        "path: latin.csv, label_column: score, text_column: texte_é, encoding: latin-1",
        "path: gold.jsonl, label_column: score",
    ):
        (workdir / "job.yaml").write_text(job(gold), encoding="utf-8")
        assert load_job(workdir / "job.yaml", plugins).config.data.gold is not None, gold


def test_a_text_codec_that_is_not_a_text_encoding_is_refused(workdir, plugins):
    found = problems(workdir, plugins, job("path: gold.csv, label_column: score, encoding: base64"))
    assert "not a text encoding" in found["data.gold.encoding"]


def test_only_the_head_of_a_file_is_read(tmp_path):
    """Columns come from the first lines: a file the size of a corpus is not read to check them."""
    from scalecode.config import column_names

    path = tmp_path / "big.jsonl"
    with path.open("w") as handle:
        handle.write('{"id": 1, "text": "a"}\n')
        handle.write("not json, and never read\n" * 200_000)  # about 5 MB
    assert column_names(path, "jsonl", "utf-8") == ["id", "text"]
    assert column_names(path, "csv", "utf-8") == ['{"id": 1', ' "text": "a"}']
    assert column_names(path, "some-plugin-format", "utf-8") is None  # a plugin reads whole files


def test_a_corpus_file_whose_header_is_unfinished_is_not_taken_for_the_columns(workdir, plugins):
    """A collector has written "id,te" so far: the run reads that file as no rows, so the job's
    columns are checked in the next file, or not at all while there is none."""
    folder = workdir / "incoming"
    folder.mkdir()
    (folder / "a.csv").write_text("id,te")
    (workdir / "job.yaml").write_text(job(corpus="path: incoming"))
    load_job(workdir / "job.yaml", plugins)  # nothing finished yet: nothing to check
    (folder / "b.csv").write_text("doc,body\n1,x\n")
    found = problems(workdir, plugins, job(corpus="path: incoming"))
    assert "b.csv" in found["data.corpus.id_column"]  # the first finished file is checked
    (folder / "a.csv").write_bytes(b"")  # created, not yet written
    assert "b.csv" in problems(workdir, plugins, job(corpus="path: incoming"))["data.corpus.id_column"]


def test_a_folder_of_files_none_of_them_data_is_refused_but_an_empty_one_is_not(workdir, plugins):
    folder = workdir / "incoming"
    folder.mkdir()
    (workdir / "job.yaml").write_text(job(corpus="path: incoming"))
    load_job(workdir / "job.yaml", plugins)  # awaiting its first file
    (folder / "_writing.parquet").write_bytes(b"PAR1")  # a collector's temporary name: not read
    load_job(workdir / "job.yaml", plugins)
    (folder / "notes.txt").write_text("not a corpus file")
    with pytest.raises(ConfigError, match=r"no files with suffix .* \(it holds notes\.txt\)"):
        load_job(workdir / "job.yaml", plugins)


def test_compressed_line_files_in_a_corpus_folder_are_read(workdir, plugins):
    import gzip

    folder = workdir / "incoming"
    folder.mkdir()
    (folder / "a.jsonl.gz").write_bytes(
        gzip.compress(b'{"id": "1", "text": "good"}\n{"id": "2", "text": "bad"}\n')
    )
    (folder / "b.CSV.GZ").write_bytes(gzip.compress(b"id,text\n3,fine\n"))
    (workdir / "job.yaml").write_text(job(corpus="path: incoming"))
    loaded = load_job(workdir / "job.yaml", plugins)
    from scalecode.data import inspect_corpus

    assert loaded.config.data.corpus is not None
    info = inspect_corpus(loaded.config.data.corpus, plugins.readers)
    assert [(f.relative, f.reader) for f in info.files] == [("a.jsonl.gz", "jsonl"), ("b.CSV.GZ", "csv")]
    assert info.n_documents == 3
    # Its columns checked decompressed, whatever the case of the suffix: not refused for gzip's bytes.
    (workdir / "job.yaml").write_text(job(corpus="path: incoming/b.CSV.GZ"))
    load_job(workdir / "job.yaml", plugins)
