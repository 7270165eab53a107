"""Coding a corpus: streamed, sharded, nothing lost, nothing twice, after kills and as it grows."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import polars as pl
import pytest

from scalecode.backend import Resources
from scalecode.config import TableConfig
from scalecode.corpus import CorpusSummary, code_corpus
from scalecode.data import inspect_corpus
from scalecode.inference import BackendSpec
from scalecode.plugins import load_plugins
from scalecode.readers import BUILTIN_READERS
from scalecode.sources import Piece, read_piece

from .conftest import TASK, scalecode

SHARD = r"^[\w.-]+\.[0-9a-f]{10}\.\d{12}-\d{12}(\.\d+)?\.parquet$"


def write_corpus(folder: Path) -> None:
    folder.mkdir()
    (folder / "a.csv").write_bytes(
        b"id,text\n" + b"".join(f"a{i},text {i} good\n".encode() for i in range(30))
    )
    (folder / "b.csv").write_bytes(b"id,text\nb1,bad\nb2,caf\xe9 latin-1 row\nb3,\nb4,boom\n")
    sub = folder / "more"
    sub.mkdir()
    (sub / "c.csv").write_bytes(b"id,text\n" + b"".join(f"c{i},fine {i}\n".encode() for i in range(25)))
    (sub / "empty.csv").write_bytes(b"id,text\n")


def run_corpus(spec: BackendSpec, corpus: Path, out: Path, batch_size: int = 4) -> CorpusSummary:
    table = TableConfig(path=str(corpus))
    info = inspect_corpus(table, BUILTIN_READERS)
    return code_corpus(spec, Resources(batch_size=batch_size), table, info.files, info.n_documents, out)


def coded(out: Path) -> pl.DataFrame:
    """Every coded row, in id order, without what a rerun may change (timings, when it was coded)."""
    frames = [pl.read_parquet(p) for p in sorted(out.glob("*.parquet"))]
    return pl.concat(frames, how="diagonal").drop("latency_s", "coded_at", strict=False).sort("id")


@pytest.mark.usefixtures("ray_local")
def test_error_rows_shards_named_after_their_input_and_a_rerun_codes_nothing_twice(spec, tmp_path):
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    write_corpus(corpus)
    summary = run_corpus(spec, corpus, out)
    assert summary.documents == 59 and summary.coded == 56 and summary.errors == 3
    assert summary.already_coded == 0
    assert summary.error_reasons == {
        "undecodable bytes: the text is not valid UTF-8": 1,
        "empty text": 1,
        "backend error: RuntimeError: boom": 1,
    }
    names = sorted(p.name for p in out.glob("*.parquet"))
    assert all(pl.Series(names).str.contains(SHARD))
    assert {n.split(".")[0] for n in names} == {"a", "b", "more__c"}
    unbroken = coded(out)
    assert unbroken["id"].n_unique() == unbroken.height == 59  # nothing lost, nothing twice
    b = unbroken.filter(pl.col("id").str.starts_with("b"))
    assert b["label"].to_list() == ["neg", None, None, None]

    # As if killed: one shard gone, another half written. The rerun codes exactly what is missing.
    lost = next(p for p in out.glob("a.csv.*.parquet"))
    lost_rows = pl.read_parquet(lost).height
    lost.unlink()
    (out / f".{names[-1]}.partial").write_bytes(b"half a file")
    again = run_corpus(spec, corpus, out)
    assert again.coded + again.errors == lost_rows and again.already_coded == 59 - lost_rows
    assert not list(out.glob(".*.partial"))
    assert coded(out).equals(unbroken)

    # Nothing new: nothing coded, nothing written.
    idle = run_corpus(spec, corpus, out)
    assert (idle.coded, idle.errors, idle.shards_written, idle.already_coded) == (0, 0, 0, 59)


@pytest.mark.usefixtures("ray_local")
def test_an_incremental_run_codes_only_new_and_edited_documents(spec, tmp_path):
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    write_corpus(corpus)
    run_corpus(spec, corpus, out)
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet")}

    with (corpus / "a.csv").open("ab") as handle:  # three new rows at the end of a file
        handle.write(b"a30,new and good\na31,new and bad\na32,new\n")
    # b1 edited (its code changes), b2 fixed, b3 and b4 as they were
    (corpus / "b.csv").write_bytes(b"id,text\nb1,good after all\nb2,cafe\nb3,\nb4,boom\n")
    (corpus / "more" / "d.csv").write_bytes(b"id,text\nd1,bad\nd2,good\n")  # a new file

    summary = run_corpus(spec, corpus, out)
    assert summary.documents == 64
    assert summary.coded + summary.errors == 3 + 2 + 2
    assert summary.already_coded == 57
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet") if p.name in before} == before

    rows = coded(out)
    assert rows.height == 59 + 7  # appended; b1 and b2 now have a row per version
    current = (
        pl.concat([pl.read_parquet(p) for p in out.glob("*.parquet")])
        .sort("coded_at")
        .unique("id", keep="last")
    )
    labels = dict(current.select("id", "label").iter_rows())
    assert (labels["b1"], labels["b2"], labels["a31"], labels["d1"]) == ("pos", "pos", "neg", "neg")


@pytest.mark.usefixtures("ray_local")
def test_an_edit_is_coded_though_the_output_holds_as_many_hashes_as_documents(spec, tmp_path):
    """An edited text leaves its old hash behind, matching no document: counting hashes cannot
    tell what is left to code, so neither an edit alone nor a later new document may be skipped."""
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    write_corpus(corpus)
    run_corpus(spec, corpus, out)  # 59 documents, 59 hashes

    (corpus / "b.csv").write_bytes(b"id,text\nb1,good after all\nb2,caf\xe9 latin-1 row\nb3,\nb4,boom\n")
    edited = run_corpus(spec, corpus, out)  # 59 documents, 59 hashes before it
    assert (edited.coded, edited.errors, edited.already_coded) == (1, 0, 58)

    (corpus / "more" / "d.csv").write_bytes(b"id,text\nd1,bad\n")
    grown = run_corpus(spec, corpus, out)  # 60 documents, 60 hashes before it (b1's old one stale)
    assert (grown.coded, grown.errors, grown.already_coded) == (1, 0, 59)

    idle = run_corpus(spec, corpus, out)
    assert (idle.coded, idle.errors, idle.shards_written, idle.already_coded) == (0, 0, 0, 60)
    current = (
        pl.concat([pl.read_parquet(p) for p in out.glob("*.parquet")])
        .sort("coded_at")
        .unique("id", keep="last")
    )
    labels = dict(current.select("id", "label").iter_rows())
    assert (labels["b1"], labels["d1"], current.height) == ("pos", "neg", 60)


def test_errors_to_retry_stay_out_of_the_index_and_their_retry_never_replaces_a_shard(tmp_path):
    """A retry's rows may span the same rows as the shard holding their error rows: both are kept."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scalecode.corpus import ShardWriter, coded_index
    from scalecode.inference import DOC_HASH, PATH
    from scalecode.sources import ROW

    corpus, out = tmp_path / "docs.csv", tmp_path / "out"
    corpus.write_text("id,text\na,one\nb,two\nc,three\n")
    files = inspect_corpus(TableConfig(path=str(corpus)), BUILTIN_READERS).files
    summary = CorpusSummary(backend="api")
    writer = ShardWriter(out, files, summary)

    def batch(rows: list[int], errors: list[str | None], retry: list[bool]) -> pa.Table:
        return pa.table(
            {
                "id": ["abc"[r] for r in rows],
                "error": pa.array(errors, pa.string()),
                "retry": retry,
                DOC_HASH: pa.array([100 + r for r in rows], pa.uint64()),
                PATH: [files[0].relative] * len(rows),
                ROW: rows,
            }
        )

    writer.write(batch([0, 1, 2], ["timed out", None, "timed out"], [True, False, True]))
    assert coded_index(out).tolist() == [101]  # the timed-out documents are still to code
    assert (summary.errors, summary.to_retry) == (2, 2)

    writer.write(batch([0, 2], [None, None], [False, False]))  # the next run: rows 0 to 2 again
    assert len(list(out.glob("*.parquet"))) == 2
    assert coded_index(out).tolist() == [100, 101, 102]

    # Shards written before the retry column existed count every row as coded.
    pq.write_table(pa.table({DOC_HASH: pa.array([103], pa.uint64())}), out / "older.parquet")
    assert coded_index(out).tolist() == [100, 101, 102, 103]


@pytest.mark.usefixtures("ray_local")
def test_jsonl_with_numeric_ids_null_text_and_a_corrupt_line(spec, tmp_path):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(
        '{"id": 1, "text": "good"}\n{"id": 2, "text": null}\n{"id": 3, oops\n{"id": 4, "text": "bad"}\n'
    )
    summary = run_corpus(spec, corpus, tmp_path / "out", batch_size=2)
    rows = coded(tmp_path / "out").select("id", "label", "error").rows()
    assert rows[:2] == [("1", "pos", None), ("2", None, "null text")]
    assert rows[2] == ("4", "neg", None)
    assert rows[3][0] == "docs.jsonl:row 3" and rows[3][2].startswith("corrupt row: not a JSON object")
    assert summary.errors == 2 and summary.coded == 2


def test_a_csv_row_with_too_many_fields_becomes_an_error_row(tmp_path):
    corpus = tmp_path / "c.csv"
    corpus.write_text('id,text\n1,fine\n2,"a, b",surplus\n3,also fine\n')
    table = TableConfig(path=str(corpus))
    info = inspect_corpus(table, BUILTIN_READERS)
    assert info.n_documents == 3  # the corrupt row is counted: it will have an error row
    rows = pl.concat(pl.from_arrow(c) for c in read_piece(Piece(info.files[0]), table, BUILTIN_READERS, 10))
    assert rows["id"].to_list() == ["1", "3", "c.csv:invalid row 1"]
    assert rows["corrupt"].to_list()[:2] == [None, None]
    assert rows["corrupt"][2].startswith("corrupt row: 3 fields, 2 expected")


def test_bad_csv_rows_are_never_lost_and_each_error_row_has_its_own_id(tmp_path):
    only_bad = tmp_path / "bad.csv"
    only_bad.write_text("id,text\n1,hello,\n2,world,\n")  # a trailing comma on every row
    table = TableConfig(path=str(only_bad))
    info = inspect_corpus(table, BUILTIN_READERS)
    assert info.n_documents == 2
    rows = pl.concat(pl.from_arrow(c) for c in read_piece(Piece(info.files[0]), table, BUILTIN_READERS, 10))
    assert rows["id"].to_list() == ["bad.csv:invalid row 1", "bad.csv:invalid row 2"]

    # Large enough for the parser's several blocks: the bad rows' ids stay unique across them.
    big = tmp_path / "big.csv"
    lines = [f"{i},{'word ' * 40}" + (",surplus" if i % 20_000 == 0 else "") for i in range(60_000)]
    big.write_text("id,text\n" + "\n".join(lines) + "\n")
    table = TableConfig(path=str(big))
    info = inspect_corpus(table, BUILTIN_READERS)
    assert info.n_documents == 60_000
    rows = pl.concat(pl.from_arrow(c) for c in read_piece(Piece(info.files[0]), table, BUILTIN_READERS, 8192))
    bad = rows.filter(pl.col("corrupt").is_not_null())["id"].to_list()
    assert bad == ["big.csv:invalid row 1", "big.csv:invalid row 2", "big.csv:invalid row 3"]


def test_a_quote_that_never_closes_is_refused_naming_its_line(tmp_path):
    from scalecode.errors import DataError

    (tmp_path / "open.csv").write_text(
        'id,text\n1,x\n2,"y\n3,z\n' + "".join(f"{i},w\n" for i in range(4, 9999))
    )
    with pytest.raises(DataError, match=r"open\.csv: line 3: a quoted field opens and never closes"):
        inspect_corpus(TableConfig(path=str(tmp_path / "open.csv")), BUILTIN_READERS)
    # A field quoted over two lines, and a quote inside an unquoted field, are text.
    (tmp_path / "fine.csv").write_text('id,text\n1,"line one\nline two"\n2,a 5" screen\n')
    assert inspect_corpus(TableConfig(path=str(tmp_path / "fine.csv")), BUILTIN_READERS).n_documents == 2


def test_a_corpus_file_without_the_text_column_or_with_an_empty_id_is_refused(tmp_path):
    from scalecode.errors import DataError

    (tmp_path / "a.csv").write_text("id,body\n1,x\n")
    with pytest.raises(DataError, match=r"a\.csv: missing column: data\.corpus\.text_column 'text'"):
        inspect_corpus(TableConfig(path=str(tmp_path / "a.csv")), BUILTIN_READERS)
    (tmp_path / "b.tsv").write_text("id\ttext\n7\tx\n\ty\n")
    with pytest.raises(DataError, match=r"b\.tsv: null or empty id in column 'id' at row 2"):
        inspect_corpus(TableConfig(path=str(tmp_path / "b.tsv")), BUILTIN_READERS)
    (tmp_path / "c.csv").write_text("id,text\n7,x\n  ,y\n")  # blank is empty too
    with pytest.raises(DataError, match=r"c\.csv: null or empty id in column 'id' at row 2"):
        inspect_corpus(TableConfig(path=str(tmp_path / "c.csv")), BUILTIN_READERS)


LINES = textwrap.dedent("""
    import polars as pl
    from scalecode import hookimpl
    from scalecode.readers import Reader

    def read_lines(path, encoding):
        lines = path.read_text(encoding=encoding).splitlines()
        return pl.DataFrame({"id": [f"{path.stem}:{i}" for i in range(len(lines))], "text": lines})

    @hookimpl
    def register_readers(register):
        register(Reader("lines", (".lines",), read_lines))
""")


@pytest.mark.usefixtures("ray_local")
def test_corpus_in_a_plugin_format_is_read_on_the_workers(plugins_dir, tmp_path):
    (plugins_dir / "lines.py").write_text(LINES)
    spec = BackendSpec(
        name="moody",
        plugin="moody",
        params={},
        task=TASK.model_dump(mode="json"),
        plugins_dir=str(plugins_dir),
        allow=("moody", "lines"),
    )
    corpus = tmp_path / "speeches"
    corpus.mkdir()
    (corpus / "one.lines").write_text("a good start\na bad end\n")
    (corpus / "two.lines").write_text("only good news\n\n")
    table = TableConfig(path=str(corpus))
    info = inspect_corpus(table, load_plugins(plugins_dir, allow=["lines"]).readers)
    summary = code_corpus(
        spec, Resources(batch_size=2), table, info.files, info.n_documents, tmp_path / "out"
    )
    assert summary.documents == 4 and summary.coded == 3
    assert summary.error_reasons == {"empty text": 1}
    labels = dict(coded(tmp_path / "out").select("id", "label").iter_rows())
    assert (labels["one:0"], labels["one:1"]) == ("pos", "neg")


@pytest.mark.usefixtures("ray_local")
def test_a_replica_that_dies_is_replaced_and_its_batch_coded(plugins_dir, tmp_path):
    marker = tmp_path / "died"
    spec = BackendSpec(
        name="moody",
        plugin="moody",
        params={"die_once": str(marker)},
        task=TASK.model_dump(mode="json"),
        plugins_dir=str(plugins_dir),
        allow=("moody",),
    )
    corpus = tmp_path / "c.csv"
    corpus.write_text("id,text\n" + "".join(f"{i},{'die' if i == 17 else 'good'} {i}\n" for i in range(40)))
    summary = run_corpus(spec, corpus, tmp_path / "out")
    assert marker.exists()  # a replica's process did die
    rows = coded(tmp_path / "out")
    assert rows["id"].n_unique() == rows.height == 40 and summary.errors == 0


def plugin_file_spec(plugins_dir: Path, plugin: str, source: str, *, name: str) -> BackendSpec:
    """A backend named ``name`` from a plugin file of ``source``, written to ``plugins_dir``."""
    (plugins_dir / f"{plugin}.py").write_text(source)
    return BackendSpec(
        name=name,
        plugin=plugin,
        params={},
        task=TASK.model_dump(mode="json"),
        plugins_dir=str(plugins_dir),
        allow=(plugin,),
    )


POISON = textwrap.dedent("""
    import os

    from scalecode import Backend, BackendParams, Predictions, Resources, TaskType, hookimpl

    class Poison(Backend):
        \"\"\"Kills its process on a text saying 'poison', as a document that exhausts memory would.\"\"\"
        name = "poison"
        task_types = frozenset({TaskType.CLASSIFICATION})

        def resources(self):
            return Resources(cpus=1, batch_size=4)

        def predict_batch(self, texts):
            if any("poison" in t for t in texts):
                os._exit(1)
            return Predictions(label=["pos"] * len(texts))

    @hookimpl
    def register_backends(register):
        register(Poison)
""")


@pytest.mark.usefixtures("ray_local")
@pytest.mark.timeout(180)  # a run that retried the batch forever fails here instead of holding CI
def test_a_document_that_kills_every_replica_stops_the_run_naming_the_backend(plugins_dir, tmp_path):
    from scalecode.errors import BackendError

    spec = plugin_file_spec(plugins_dir, "poison", POISON, name="toxic")
    corpus = tmp_path / "c.csv"
    corpus.write_text("id,text\n" + "".join(f"{i},{'poison' if i == 7 else 'good'} {i}\n" for i in range(20)))
    with pytest.raises(
        BackendError, match=r"backend 'toxic': a replica's process died .* at most 2 times"
    ) as info:
        run_corpus(spec, corpus, tmp_path / "out")
    # The error names the batch the replicas kept dying on: the poisoned document is among its few.
    named = re.search(
        r"The replicas died (\d+) times coding (\d+) documents? "
        r"\(ids ([^;]*); rows (\d+) to (\d+) of c\.csv\)",
        str(info.value),
    )
    assert named, str(info.value)
    times, documents, first_row, last_row = (int(named[i]) for i in (1, 2, 4, 5))
    assert times > 1 and documents <= 4 and first_row <= 8 <= last_row  # id 7 is the file's 8th row
    assert "'7'" in named[3]


BROKEN = textwrap.dedent("""
    from scalecode import Backend, Predictions, TaskType, hookimpl

    class Broken(Backend):
        \"\"\"Cannot load: a model folder that is not there, a prompt longer than the model's positions.\"\"\"
        name = "broken"
        task_types = frozenset({TaskType.CLASSIFICATION})

        def load(self):
            raise ValueError("the prompt takes 40 of the model's 32 positions before any document")

        def predict_batch(self, texts):
            return Predictions(label=["pos"] * len(texts))

    @hookimpl
    def register_backends(register):
        register(Broken)
""")


@pytest.mark.usefixtures("ray_local")
@pytest.mark.timeout(180)
def test_a_replica_that_cannot_load_stops_the_run_with_the_reason_not_a_death(plugins_dir, tmp_path):
    from scalecode.errors import BackendError

    spec = plugin_file_spec(plugins_dir, "broken", BROKEN, name="stuck")
    corpus = tmp_path / "c.csv"
    corpus.write_text("id,text\n" + "".join(f"{i},good {i}\n" for i in range(8)))
    with pytest.raises(BackendError) as info:
        run_corpus(spec, corpus, tmp_path / "out")
    message = str(info.value)
    assert message.startswith("backend 'stuck': a replica could not start")
    assert "the prompt takes 40 of the model's 32 positions before any document" in message
    assert "killed for lack of memory" not in message


@pytest.mark.parametrize(
    ("documents", "todo", "indexed", "expected"),
    [
        (1_000_010, 10, 1_000_000, 4066),  # hashes of old versions: todo is only a lower bound
        (1_000_010, 1_000_010, 0, 4066),  # an empty output: todo is exact
        (1_000_000, 10, 1_000_000, 3),  # todo counted against the corpus: exact, and small
        (40, 4, 36, 10),  # a small corpus: two chunks per replica, as if all were left
    ],
)
def test_chunks_are_not_planned_from_an_undercount_of_what_is_left(documents, todo, indexed, expected):
    """1M coded, every text re-normalised since and 10 added: ``documents - indexed`` says 10 are
    left, and chunks planned from it (3 documents) would re-code the corpus in ~333,000 shards."""
    from scalecode.corpus import corpus_chunk_rows

    assert corpus_chunk_rows(documents, todo, indexed, batch_size=4096, replicas=2) == expected


@pytest.mark.usefixtures("ray_local")
def test_a_corpus_edited_throughout_is_coded_again_in_full_chunks(spec, tmp_path):
    corpus, out = tmp_path / "corpus.csv", tmp_path / "out"
    corpus.write_text("id,text\n" + "".join(f"{i},good {i}\n" for i in range(16)))
    assert run_corpus(spec, corpus, out).shards_written == 4  # chunks of 4, the batch size
    corpus.write_text("id,text\n" + "".join(f"{i},Good {i}\n" for i in range(17)))  # all edited, 1 new
    again = run_corpus(spec, corpus, out)  # 17 documents, 16 hashes before it: "1 left"
    assert again.coded == 17
    assert again.shards_written <= 6  # chunks of 3: not 17 chunks of one document each


# --- the whole command, killed and resumed ----------------------------------------------------

JOB = """
task: {type: classification, labels: [pos, neg]}
data:
  corpus: {path: corpus}
backends:
%s
output: {dir: %s}
"""


def write_job(root: Path, out: str, backends: list[str], seconds_per_batch: float) -> Path:
    params = f"{{seconds_per_batch: {seconds_per_batch}, batch_size: 25}}"
    entries = "".join(f"  - {{name: {name}, plugin: moody, params: {params}}}\n" for name in backends)
    job = root / f"{out}.yaml"
    job.write_text(JOB % (entries.rstrip("\n"), out))
    return job


def scalecode_run(job: Path, root: Path, num_cpus: int = 2) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "scalecode.cli",
        "run",
        job.name,
        "--plugins-dir",
        "plugins",
        "--num-cpus",
        str(num_cpus),
    ]
    env = {**os.environ, "SCALECODE_PLUGINS": "moody"}
    # A session of its own, so that the kill takes the embedded Ray down with the driver.
    return subprocess.Popen(
        command,
        cwd=root,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


@pytest.fixture
def project(plugins_dir, tmp_path) -> Path:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for part in range(3):
        rows = "".join(f"p{part}-{i},{'bad' if i % 3 == 0 else 'good'} text {i}\n" for i in range(200))
        (corpus / f"part-{part}.csv").write_text("id,text\n" + rows)
    (tmp_path / "plugins").mkdir(exist_ok=True)
    (tmp_path / "plugins" / "moody.py").write_text((plugins_dir / "moody.py").read_text())
    return tmp_path


def test_a_run_killed_with_sigkill_resumes_and_equals_an_unbroken_run(project):
    unbroken = scalecode_run(write_job(project, "unbroken", ["moody"], 0.0), project)
    _, err = unbroken.communicate(timeout=600)
    assert unbroken.returncode == 0, err[-3000:]

    job = write_job(project, "killed", ["moody"], 0.3)
    shards = project / "killed" / "predictions" / "corpus" / "moody"
    run = scalecode_run(job, project)
    deadline = time.monotonic() + 300
    while len(list(shards.glob("*.parquet"))) < 3 and time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.2)
    assert run.poll() is None, "the run ended before it could be killed mid-way"
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    assert len(list(shards.glob("*.parquet"))) >= 3

    resumed = scalecode_run(job, project)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert coded(shards).equals(coded(project / "unbroken" / "predictions" / "corpus" / "moody"))
    assert coded(shards).height == 600


def test_two_backends_on_two_cpus_finish(project):
    """Ray Data's read tasks and two actor pools share 2 CPUs without waiting on each other forever."""
    run = scalecode_run(write_job(project, "two", ["first", "second"], 0.0), project)
    out, err = run.communicate(timeout=600)  # a hang fails here instead of holding CI
    assert run.returncode == 0, err[-3000:]
    for name in ("first", "second"):
        assert coded(project / "two" / "predictions" / "corpus" / name).height == 600
    assert "first" in out and "second" in out


def test_a_run_on_one_cpu_finishes(project):
    """The replicas leave the read task the one CPU there is; asking for half of it each, the read
    task (which asks for a whole CPU) would never start and the run would wait forever."""
    run = scalecode_run(write_job(project, "one", ["moody"], 0.0), project, num_cpus=1)
    try:
        _, err = run.communicate(timeout=240)
    finally:
        if run.poll() is None:  # hung: take the embedded Ray down with the driver
            os.killpg(run.pid, signal.SIGKILL)
            run.wait()
    assert run.returncode == 0, err[-3000:]
    assert coded(project / "one" / "predictions" / "corpus" / "moody").height == 600


def test_a_second_run_over_the_same_directory_is_refused_while_the_first_runs(tmp_path):
    from scalecode.errors import ScalecodeError
    from scalecode.runner import _lock

    held = _lock(tmp_path)
    with pytest.raises(ScalecodeError, match="in use by another scalecode run"):
        _lock(tmp_path)
    held.close()
    _lock(tmp_path).close()  # free again once the first has finished


def test_the_scheduled_job_codes_what_arrived_since_its_last_run(data_dir, tmp_path):
    """jobs/incoming.yaml as a schedule would run it: twice, with a new file and an edit in between."""
    import json
    import shutil

    repo = Path(__file__).resolve().parent.parent
    (tmp_path / "data" / "lexicons").mkdir(parents=True)
    shutil.copy(data_dir / "lexicons" / "vader_lexicon.txt", tmp_path / "data" / "lexicons")
    incoming = tmp_path / "data" / "incoming"
    incoming.mkdir()
    said: list[str] = []

    def run() -> dict:
        result = scalecode("run", str(repo / "jobs" / "incoming.yaml"), "--num-cpus", "2", cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
        said.append(result.stdout + result.stderr)
        return json.loads((tmp_path / "runs" / "incoming" / "manifest.json").read_text())["corpus"][0]

    # Before the first document arrives: nothing to code, and no failure every quarter of an hour.
    before = run()
    assert (before["documents"], before["coded"]) == (0, 0)
    assert "holds no files to read yet" in said[-1]
    (incoming / "monday.jsonl").write_text(
        '{"id": "m1", "text": "A great day."}\n{"id": "m2", "text": "Awful."}\n'
    )
    first = run()
    assert (first["coded"], first["already_coded"]) == (2, 0)
    (incoming / "monday.jsonl").write_text(
        '{"id": "m1", "text": "A great day."}\n{"id": "m2", "text": "Fine."}\n'
    )
    (incoming / "tuesday.csv").write_text("id,text\nt1,Terrible news.\nt2,Good news.\nt3,\n")
    second = run()
    assert (second["coded"], second["errors"], second["already_coded"]) == (3, 1, 1)
    rows = coded(tmp_path / "runs" / "incoming" / "predictions" / "corpus" / "vader")
    assert rows.height == 2 + 4


@pytest.mark.usefixtures("ray_local")
def test_a_corpus_named_by_uri_is_read_through_its_filesystem(spec, tmp_path):
    """The path a cloud corpus takes (s3://, gs://): pyarrow's filesystem from the URI, here file://."""
    corpus, out = tmp_path / "corpus", tmp_path / "out"
    write_corpus(corpus)
    table = TableConfig(path=corpus.as_uri())
    info = inspect_corpus(table, BUILTIN_READERS)
    assert info.n_documents == 59 and info.files[0].relative == "a.csv"
    summary = code_corpus(spec, Resources(batch_size=8), table, info.files, info.n_documents, out)
    assert summary.coded + summary.errors == 59
    assert coded(out)["id"].n_unique() == 59
