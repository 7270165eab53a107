"""Coding with Ray Data: bad rows become error rows, failures stay with one document, shards resume."""

from __future__ import annotations

import textwrap
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from scalecode.backend import Resources
from scalecode.config import TableConfig
from scalecode.data import inspect_corpus
from scalecode.inference import BackendSpec, Pool, code_batch, code_corpus, plan_pool, predict_texts
from scalecode.readers import BUILTIN_READERS
from scalecode.task import Task, TaskType

TASK = Task(type=TaskType.CLASSIFICATION, labels=["pos", "neg"])

MOODY = textwrap.dedent('''
    from scalecode import Backend, Predictions, Resources, TaskType, hookimpl

    class Moody(Backend):
        """Positive unless the text says 'bad'; raises on 'boom'; answers nonsense on 'huh'."""
        name = "moody"
        task_types = frozenset({TaskType.CLASSIFICATION})

        def resources(self):
            return Resources(cpus=1, batch_size=4)

        def predict_batch(self, texts):
            if any("boom" in t for t in texts):
                raise RuntimeError("boom")
            labels = ["Positive!" if "huh" in t else ("neg" if "bad" in t else "pos") for t in texts]
            return Predictions(label=labels)

    @hookimpl
    def register_backends(register):
        register(Moody)
''')


@pytest.fixture
def plugins_dir(tmp_path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "moody.py").write_text(MOODY)
    return folder


@pytest.fixture
def spec(plugins_dir) -> BackendSpec:
    return BackendSpec(
        name="moody",
        plugin="moody",
        params={},
        task=TASK.model_dump(mode="json"),
        plugins_dir=str(plugins_dir),
        allow=("moody",),
    )


def test_bad_rows_become_error_rows_and_one_failure_costs_one_row(spec):
    backend = spec.build()
    backend.load()
    batch = pa.table(
        {
            "id": ["1", "2", "3", "4", "5", "6", "7"],
            "text": pa.array(
                [b"good", None, b"   ", b"caf\xe9", b"boom goes the batch", b"bad day", b"huh?"], pa.binary()
            ),
        }
    )
    rows = code_batch(backend, "moody", batch).to_pylist()
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5", "6", "7"]  # every row back, in order
    assert [r["label"] for r in rows] == ["pos", None, None, None, None, "neg", None]
    errors = [r["error"] for r in rows]
    assert errors[1] == "null text"
    assert errors[2] == "empty text"
    assert errors[3] == "undecodable bytes: the text is not valid UTF-8"
    assert errors[4] == "backend error: RuntimeError: boom"
    assert errors[6] == "invalid label 'Positive!': not in the codebook"
    assert rows[6]["raw"] == "Positive!"


@pytest.mark.parametrize(
    ("resources", "cpus", "gpus", "expected"),
    [
        (Resources(cpus=1), 2, 0, Pool(size=2, cpus=0.5, gpus=0)),  # leaves a CPU for reading: no deadlock
        (Resources(cpus=1), 16, 0, Pool(size=16, cpus=0.938, gpus=0)),
        (Resources(cpus=2), 1, 0, Pool(size=1, cpus=0.5, gpus=0)),
        (Resources(cpus=4, gpus=1), 32, 4, Pool(size=4, cpus=4, gpus=1)),
    ],
)
def test_actor_pool_is_sized_from_the_cluster(resources, cpus, gpus, expected):
    assert plan_pool(resources, cpus, gpus) == expected


def test_a_gpu_backend_on_a_cluster_without_gpus_is_refused():
    with pytest.raises(RuntimeError, match=r"needs 1 GPU\(s\) per replica; the cluster has 0"):
        plan_pool(Resources(gpus=1), 8, 0)


@pytest.mark.usefixtures("ray_local")
def test_gold_texts_go_through_the_same_actor_path(spec):
    table = predict_texts(
        spec, Resources(batch_size=4), [str(i) for i in range(10)], ["good"] * 5 + ["bad"] * 4 + ["boom"]
    )
    rows = {r["id"]: r for r in table.to_pylist()}
    assert len(rows) == 10
    assert rows["0"]["label"] == "pos" and rows["5"]["label"] == "neg"
    assert rows["9"]["error"] == "backend error: RuntimeError: boom"


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


def run_corpus(spec: BackendSpec, corpus: Path, out: Path):
    table = TableConfig(path=str(corpus))
    info = inspect_corpus(table, BUILTIN_READERS)
    return code_corpus(spec, Resources(batch_size=4), table, info.files, info.rows, "csv", out)


def shards(out: Path) -> dict[str, list[dict]]:
    """Every shard's rows, without the timing column (the only thing a rerun may change)."""
    return {
        p.name: pl.read_parquet(p).drop("latency_s", strict=False).to_dicts() for p in sorted(out.iterdir())
    }


@pytest.mark.usefixtures("ray_local")
def test_corpus_shards_are_written_whole_and_a_rerun_resumes(spec, tmp_path):
    corpus = tmp_path / "corpus"
    write_corpus(corpus)
    out = tmp_path / "out"
    summary = run_corpus(spec, corpus, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "a.csv.parquet",
        "b.csv.parquet",
        "more__c.csv.parquet",
        "more__empty.csv.parquet",
    ]
    assert summary.documents == 59 and summary.coded == 56 and summary.errors == 3
    assert summary.error_reasons == {
        "undecodable bytes: the text is not valid UTF-8": 1,
        "empty text": 1,
        "backend error: RuntimeError: boom": 1,
    }
    b = pl.read_parquet(out / "b.csv.parquet")
    assert b["id"].to_list() == ["b1", "b2", "b3", "b4"]
    assert b["label"].to_list() == ["neg", None, None, None]
    unbroken = shards(out)

    # A run killed after some shards: the rest is coded, the finished ones are not touched.
    (out / "a.csv.parquet").unlink()
    (out / ".more__c.csv.parquet.partial").write_bytes(b"half a file")
    finished = (out / "b.csv.parquet").stat().st_mtime_ns
    again = run_corpus(spec, corpus, out)
    assert again.skipped_shards == 3 and again.written_shards == 1
    assert (out / "b.csv.parquet").stat().st_mtime_ns == finished
    assert not list(out.glob(".*.partial"))
    assert shards(out) == unbroken
    ids = pl.concat([pl.read_parquet(p).select("id") for p in out.iterdir()])["id"]
    assert ids.n_unique() == len(ids) == 59  # nothing lost, nothing twice


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
    from scalecode.plugins import load_plugins

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
        spec, Resources(batch_size=2), table, info.files, info.rows, "lines", tmp_path / "out"
    )
    assert summary.documents == 4 and summary.coded == 3
    assert summary.error_reasons == {"empty text": 1}
    one = pl.read_parquet(tmp_path / "out" / "one.lines.parquet")
    assert one["label"].to_list() == ["pos", "neg"]


@pytest.mark.usefixtures("ray_local")
def test_jsonl_corpus_with_numeric_ids_and_null_text(spec, tmp_path):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"id": 1, "text": "good"}\n{"id": 2, "text": null}\n{"id": 3, "text": "bad"}\n')
    table = TableConfig(path=str(corpus))
    info = inspect_corpus(table, BUILTIN_READERS)
    summary = code_corpus(
        spec, Resources(batch_size=2), table, info.files, info.rows, "jsonl", tmp_path / "out"
    )
    rows = pl.read_parquet(tmp_path / "out" / "docs.jsonl.parquet").to_dicts()
    assert [(r["id"], r["label"], r["error"]) for r in rows] == [
        ("1", "pos", None),
        ("2", None, "null text"),
        ("3", "neg", None),
    ]
    assert summary.errors == 1
